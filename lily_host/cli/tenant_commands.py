"""``lily tenants``: the admin API's operations from the command line."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from lily_host.plugin_api.cli_output import Column, echo_json, json_option, local_time, print_listing
from lily_host.plugin_api.untrusted import UntrustedInput, loads_json

if TYPE_CHECKING:  # the host (Redis, Quart, plugins) loads when a command runs, not for `lily --help`
    from lily_host.runtime.host import Host

#: Tenant fields `tenants set` does not change (the record's identity, its plugins' own settings, timestamps).
_NOT_SETTABLE = frozenset({"id", "plugins", "created_at", "updated_at"})


def _with_host(work: Any) -> Any:
    from lily_host.plugin_api.commands import with_host

    return with_host(work)


def _parse_value(text: str) -> Any:
    try:
        return loads_json(text)
    except UntrustedInput:  # not JSON (or unusable JSON): the text as typed
        return text


#: What each settable field of a tenant means (the Tenant model carries no descriptions).
#: tests/host/test_cli_tree.py fails when a field is added without a line here.
HOST_FIELD_HELP = {
    "name": "the business name used in messages",
    "timezone": "IANA time zone, e.g. America/Chicago",
    "quiet_hours_start": "HH:MM (24-hour): texts due from then to quiet_hours_end wait (STOP/HELP replies do not)",
    "quiet_hours_end": "HH:MM (24-hour): when the texts held by quiet hours go out",
    "review_delay_seconds": "seconds from a completed job to its review request (up to 90 days)",
    "review_link": "the http(s) link texted with review requests",
    "contact_phone": "the business's phone number, E.164 (+15551234567)",
    "contact_email": "the business's email address",
    "jitter_seconds": "random delay added to automated texts, LOW-HIGH seconds, e.g. 10-45",
    "templates": 'message text overrides, a JSON object: {"missed_call": "..."}',
    "plan": "billing plan (lily-stripe keeps it up to date)",
    "subscription_status": "subscription status (lily-stripe keeps it up to date)",
    "trial_end": "Unix time the trial ends (lily-stripe keeps it up to date)",
    "status_since": "Unix time of the last status change (lily-stripe keeps it up to date)",
    "billing": "billing details (lily-stripe keeps them up to date)",
    "retention_days": "days texts, jobs, bookings and photos are kept (1-3650)",
    "reminder_offsets_minutes": "reminder times, minutes before a visit, JSON list (default [1440, 120]; [] off)",
    "reschedule_link": "the http(s) link texted to a customer who replies R to a reminder",
    "quote_follow_up_days": "days after a texted quote to send one follow-up unless the customer answered (1-60)",
    "review_follow_up_days": "days after a review request to send one follow-up unless the customer acted (1-60)",
}


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    if name is not None and not getattr(annotation, "__args__", None):
        text = str(name)
    else:
        text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    return "secret" + (" | None" if "None" in text else "") if "SecretStr" in text else text


def _field_rows(model: Any, prefix: str = "", descriptions: dict[str, str] | None = None) -> list[tuple[str, str]]:
    rows = []
    for name, info in model.model_fields.items():
        if name in _NOT_SETTABLE and not prefix:
            continue
        text = _type_name(info.annotation)
        description = info.description or (descriptions or {}).get(name)
        if description:
            text += f": {description}"
        rows.append((prefix + name, text))
    return rows


class _SetCommand(click.Command):
    """``tenants set``: its help lists the host's tenant fields and those of every loaded plugin."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from lily_host.cli.main import cli_settings
        from lily_host.plugin_api.errors import ConfigurationError
        from lily_host.plugin_api.tenant import Tenant
        from lily_host.runtime.registry import PluginRegistry

        with formatter.section("Host fields"):
            formatter.write_dl(_field_rows(Tenant, descriptions=HOST_FIELD_HELP))
        try:
            models = PluginRegistry(cli_settings()).tenant_models
        except ConfigurationError as error:
            with formatter.section("Plugin fields"):
                formatter.write_text(f"unavailable: the plugins did not load ({error})")
            return
        for plugin, model in sorted(models.items()):
            with formatter.section(f"Fields of plugin {plugin}"):
                formatter.write_dl(_field_rows(model, prefix=f"{plugin}."))
        super().format_epilog(ctx, formatter)


@click.group(help="Create, inspect and change tenants (the businesses Lily serves).")
def tenants() -> None:
    pass


@tenants.command("add")
@click.argument("tenant_id")
@click.option("--name", required=True, help="the business name used in messages")
@click.option("--timezone", default="America/New_York", show_default=True, help="IANA timezone")
@click.option("--review-link", default=None, help="the http(s) link texted with review requests")
@click.option("--contact-phone", default=None, help="the business's phone number, E.164 (+15551234567)")
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
@json_option
def list_(as_json: bool) -> None:
    """List tenants with their plan and status."""

    async def work(host: Host) -> list[Any]:
        return await host.tenants.all()

    rows = _with_host(work)
    columns = [
        Column("id", lambda t: t.id),
        Column("name", lambda t: t.name, width=40),
        Column("timezone", lambda t: t.timezone),
        Column("plan", lambda t: t.plan),
        Column("status", lambda t: t.subscription_status),
        Column("created", lambda t: local_time(t.created_at)),
    ]
    print_listing(
        rows,
        columns,
        as_json=as_json,
        empty="no tenants yet: lily tenants add ID --name NAME",
        json_data=[tenant.public_view() for tenant in rows],
    )


@tenants.command("show")
@click.argument("tenant_id")
@json_option
def show(tenant_id: str, as_json: bool) -> None:
    """Show one tenant: plan, status, trial end, settings (secrets masked)."""

    async def work(host: Host) -> dict[str, Any]:
        return (await host.tenants.require(tenant_id)).public_view()

    view = _with_host(work)
    if as_json:
        echo_json(view)
        return
    click.echo(f"{view['id']}: {view['name']} ({view['timezone']})")
    click.echo(
        f"  plan: {view['plan']}  status: {view['subscription_status']}  trial end: {local_time(view['trial_end'])}"
    )
    click.echo(f"  quiet hours: {view['quiet_hours_start']}-{view['quiet_hours_end']}")
    click.echo(f"  review delay: {view['review_delay_seconds']} s  review link: {view['review_link'] or '-'}")
    for plugin, values in view["plugins"].items():
        click.echo(f"  {plugin}: {json.dumps(values, default=str)}")


@tenants.command("set", cls=_SetCommand)
@click.argument("tenant_id")
@click.argument("assignments", nargs=-1, required=True)
def set_(tenant_id: str, assignments: tuple[str, ...]) -> None:
    """Change settings: FIELD=VALUE, or PLUGIN.FIELD=VALUE for a plugin's tenant settings.

    Values are JSON when they parse as JSON (lists, numbers), else text. Example:

    \b
    lily tenants set acme timezone=America/Chicago 'twilio.business_numbers=["+15551234567"]'

    The fields that can be set follow.
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
            top[name] = (
                _parse_value(text) if name not in ("name", "review_link", "contact_phone", "reschedule_link") else text
            )

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
@json_option
def list_keys(tenant_id: str, as_json: bool) -> None:
    """List TENANT_ID's API keys: id, when minted, label (the keys themselves are never shown again)."""

    async def work(host: Host) -> list[dict[str, Any]]:
        await host.tenants.require(tenant_id)
        return await host.tenants.list_keys(tenant_id)

    columns = [
        Column("key id", lambda item: item.get("key_id")),
        Column("created", lambda item: local_time(item.get("created"))),
        Column("label", lambda item: item.get("label")),
    ]
    empty = f"{tenant_id} has no API keys: lily tenants key mint {tenant_id}"
    print_listing(_with_host(work), columns, as_json=as_json, empty=empty)


@key.command("revoke")
@click.argument("tenant_id")
@click.argument("key_id")
def revoke(tenant_id: str, key_id: str) -> None:
    """Revoke TENANT_ID's key KEY_ID (see `lily tenants key list`)."""

    async def work(host: Host) -> bool:
        return await host.tenants.revoke_key(tenant_id, key_id)

    if not _with_host(work):
        raise click.ClickException(f"tenant {tenant_id!r} has no key {key_id!r}")
    click.echo(f"key {key_id} revoked")


@tenants.command("rotate-secrets")
def rotate_secrets() -> None:
    """Re-encrypt every stored secret and sealed customer data with the first key of LILY_SECRET_KEY."""

    async def work(host: Host) -> int:
        from lily_host.tenants.canary import rotate_canary
        from lily_host.tenants.customer_pii import rotate_customer_data

        count = await host.tenants.rotate_secrets() + await rotate_customer_data(host.pii)
        await rotate_canary(host.redis, host.tenants.secret_box)
        return count

    click.echo(f"{_with_host(work)} secret(s) re-encrypted with the newest key")
