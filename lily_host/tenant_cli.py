"""``lily tenants``: the admin API's operations from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from lily_host.host import Host
from lily_host.untrusted import UntrustedInput, loads_json


def _with_host(work: Any) -> Any:
    from lily_host.cli import with_host

    return with_host(work)


def _parse_value(text: str) -> Any:
    try:
        return loads_json(text)
    except UntrustedInput:  # not JSON (or unusable JSON): the text as typed
        return text


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


@click.group(help="Create, inspect and change tenants (the businesses Lily serves).")
def tenants() -> None:
    pass


@tenants.command("add")
@click.argument("tenant_id")
@click.option("--name", required=True, help="the business name used in messages")
@click.option("--timezone", default="America/New_York", show_default=True, help="IANA timezone")
@click.option("--review-link", default=None)
@click.option("--contact-phone", default=None)
def add(tenant_id: str, name: str, timezone: str, review_link: str | None, contact_phone: str | None) -> None:
    """Create a tenant TENANT_ID (a slug such as acme-wash)."""

    async def work(host: Host) -> None:
        fields: dict[str, Any] = {"timezone": timezone}
        if review_link:
            fields["review_link"] = review_link
        if contact_phone:
            fields["contact_phone"] = contact_phone
        await host.tenants.create(tenant_id, name, **fields)

    _with_host(work)
    click.echo(f"tenant {tenant_id} created; mint an API key with: lily tenants key mint {tenant_id}")


@tenants.command("list")
def list_() -> None:
    """List tenants with their plan and status."""

    async def work(host: Host) -> list[Any]:
        return await host.tenants.all()

    rows = _with_host(work)
    if not rows:
        click.echo("no tenants yet: lily tenants add ID --name NAME")
    for tenant in rows:
        click.echo(f"{tenant.id:<24} {tenant.name:<32} plan={tenant.plan:<8} status={tenant.subscription_status}")


@tenants.command("show")
@click.argument("tenant_id")
@click.option("--json", "as_json", is_flag=True)
def show(tenant_id: str, as_json: bool) -> None:
    """Show one tenant: plan, status, trial end, settings (secrets masked)."""

    async def work(host: Host) -> dict[str, Any]:
        return (await host.tenants.require(tenant_id)).public_view()

    view = _with_host(work)
    if as_json:
        click.echo(json.dumps(view, indent=2, default=str))
        return
    click.echo(f"{view['id']}: {view['name']} ({view['timezone']})")
    click.echo(f"  plan: {view['plan']}  status: {view['subscription_status']}  trial end: {_when(view['trial_end'])}")
    click.echo(f"  quiet hours: {view['quiet_hours_start']}-{view['quiet_hours_end']}")
    click.echo(f"  review delay: {view['review_delay_seconds']} s  review link: {view['review_link'] or '-'}")
    for plugin, values in view["plugins"].items():
        click.echo(f"  {plugin}: {json.dumps(values, default=str)}")


@tenants.command("set")
@click.argument("tenant_id")
@click.argument("assignments", nargs=-1, required=True)
def set_(tenant_id: str, assignments: tuple[str, ...]) -> None:
    """Change settings: FIELD=VALUE, or PLUGIN.FIELD=VALUE for a plugin's tenant settings.

    Values are JSON when they parse as JSON (lists, numbers), else text. Example:
    lily tenants set acme timezone=America/Chicago 'twilio.business_numbers=["+15551234567"]'
    """
    top: dict[str, Any] = {}
    per_plugin: dict[str, dict[str, Any]] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep:
            raise click.UsageError(f"{assignment!r} is not FIELD=VALUE")
        plugin, dot, field_name = name.partition(".")
        if dot:
            per_plugin.setdefault(plugin, {})[field_name] = _parse_value(text)
        else:
            top[name] = _parse_value(text) if name not in ("name", "review_link", "contact_phone") else text

    async def work(host: Host) -> None:
        # One change: a refused plugin value leaves the top-level fields untouched too.
        await host.tenants.change(tenant_id, top, per_plugin)

    _with_host(work)
    click.echo(f"tenant {tenant_id} updated")


@tenants.command("delete")
@click.argument("tenant_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def delete(tenant_id: str, yes: bool) -> None:
    """Delete a tenant, its keys, secrets and lookup entries; its stored data is erased by the workers."""
    if not yes:
        click.confirm(f"Delete tenant {tenant_id} and all its settings?", abort=True)

    async def work(host: Host) -> bool:
        return await host.delete_tenant(tenant_id)

    if not _with_host(work):
        raise click.ClickException(f"no tenant {tenant_id!r}")
    click.echo(f"tenant {tenant_id} deleted; a worker erases its texts, jobs, bookings and files (tenant.deleted)")


@tenants.group("key", help="Mint, list and revoke a tenant's API keys.")
def key() -> None:
    pass


@key.command("mint")
@click.argument("tenant_id")
@click.option("--label", default="", help="a note to recognise the key by")
def mint(tenant_id: str, label: str) -> None:
    """Create an API key; it is shown once."""

    async def work(host: Host) -> tuple[str, str]:
        return await host.tenants.mint_key(tenant_id, label)

    key_id, secret = _with_host(work)
    click.echo(f"key id: {key_id}\nkey:    {secret}\nStore it now: it is not shown again.")


@key.command("list")
@click.argument("tenant_id")
def list_keys(tenant_id: str) -> None:
    async def work(host: Host) -> list[dict[str, Any]]:
        return await host.tenants.list_keys(tenant_id)

    for item in _with_host(work):
        click.echo(f"{item['key_id']}  created {_when(item['created'])}  {item['label']}")


@key.command("revoke")
@click.argument("tenant_id")
@click.argument("key_id")
def revoke(tenant_id: str, key_id: str) -> None:
    async def work(host: Host) -> bool:
        return await host.tenants.revoke_key(tenant_id, key_id)

    if not _with_host(work):
        raise click.ClickException(f"tenant {tenant_id!r} has no key {key_id!r}")
    click.echo(f"key {key_id} revoked")


@tenants.command("rotate-secrets")
def rotate_secrets() -> None:
    """Re-encrypt every stored secret with the first key of LILY_SECRET_KEY."""

    async def work(host: Host) -> int:
        return await host.tenants.rotate_secrets()

    click.echo(f"{_with_host(work)} secret(s) re-encrypted with the newest key")


@tenants.command("google-connect")
@click.argument("tenant_id")
@click.pass_context
def google_connect(ctx: click.Context, tenant_id: str) -> None:
    """Print a one-time link that connects TENANT_ID's Google Calendar (needs lily-gcal)."""
    root = ctx.find_root().command
    gcal = root.commands.get("gcal") if isinstance(root, click.Group) else None
    connect = gcal.commands.get("connect") if isinstance(gcal, click.Group) else None
    if connect is None:
        raise click.ClickException("Google Calendar is not available: install and configure lily-gcal")
    ctx.invoke(connect, tenant=tenant_id)
