"""Operator commands: ``lily trace``, ``lily webhooks list/show/replay``, ``lily audit``,
``lily workers`` and ``lily tasks show``. Each prints a readable view, or JSON with ``--json``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from lily_host.operations.timeparse import parse_since

if TYPE_CHECKING:  # `lily --help` imports this module: no Quart, no Redis
    from lily_host.runtime.host import Host


def _with_host(work: Any) -> Any:
    from lily_host.plugin_api.commands import with_host

    return with_host(work)


def _json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _when(ts: Any) -> str:
    if ts in (None, ""):
        return "-"
    return datetime.fromtimestamp(float(ts)).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from error


def _delivery_line(entry: dict[str, Any]) -> str:
    tasks = f" tasks={len(entry['tasks'])}" if entry.get("tasks") else ""
    replay = f" replay_of={entry['replay_of']}" if entry.get("replay_of") else ""
    reason = f"  ({entry['reason']})" if entry.get("reason") else ""
    return (
        f"{_when(entry['at'])}  {entry['id']}  {entry['integration']:<8} {entry['outcome']:<22} "
        f"{entry['status']}  tenant={entry['tenant'] or '-'}{tasks}{replay}{reason}"
    )


# --- lily trace ----------------------------------------------------------------------------------------


@click.command("trace")
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same as GET /api/trace/<id>).")
def trace(ident: str, as_json: bool) -> None:
    """Follow one webhook delivery to its tasks and side effects.

    IDENT is a delivery id, a task id, a message id, or a provider's id (a Twilio CallSid or
    message SID, a Stripe event id...).
    """
    from lily_host.runtime.delivery_trace import assemble

    async def work(host: Host) -> Any:
        return await assemble(host, ident)

    result = _with_host(work)
    if result is None:
        raise click.ClickException(
            f"nothing known of {ident!r} (traces are kept for LILY_TRACE_DAYS, 7 days by default)"
        )
    if as_json:
        _json(result)
        return
    delivery = result.get("delivery")
    if delivery:
        click.echo("delivery  " + _delivery_line(delivery))
        if delivery.get("provider_id"):
            click.echo(f"          provider id {delivery['provider_id']}")
    elif result.get("id"):
        click.echo(f"delivery  {result['id']} (no longer in the webhook log)")
    for task in result["tasks"]:
        click.echo(
            f"  task    {task['id']}  {task['state']}  attempts {task['attempts']}/{task['max_attempts']}  "
            f"ran {task['total_duration']:.3f} s"
        )
        for run in task["runs"]:
            error = f"  {run['error']}" if run.get("error") else ""
            when = _when(run["started"])
            click.echo(f"            run {run['attempt']}: {run['outcome']} at {when} ({run['duration']:.3f} s){error}")
        if task.get("last_error") and not task["runs"]:
            click.echo(f"            last error: {task['last_error']}")
    for effect in result["effects"]:
        if effect.get("kind") == "sms":
            click.echo(
                f"  sms     {effect['id']} to {effect['to']}  status={effect['status']}  "
                f"provider id={effect['provider_id'] or '-'}"
                + (f"  error={effect['error']}" if effect.get("error") else "")
            )
        else:
            extra = "  ".join(f"{k}={v}" for k, v in effect.items() if k not in ("kind", "id"))
            click.echo(f"  {effect.get('kind', 'effect'):<7} {effect.get('id')}  {extra}")
    for replay in result["replays"]:
        click.echo("  replay  " + _delivery_line(replay))


# --- lily webhooks -----------------------------------------------------------------------------------------

webhooks = click.Group("webhooks", help="The webhook log: every delivery, accepted or refused, and replay.")


@webhooks.command("list")
@click.option("--tenant", default=None, help="Only this tenant's deliveries.")
@click.option("--integration", default=None, help="Only this integration's (twilio, stripe, calcom...).")
@click.option("--outcome", default=None, help="Only these outcomes, comma-separated (error,bad_signature...).")
@click.option("--since", callback=_since, default=None, help="Only newer ones: 30m, 2h, 7d, Unix seconds or ISO 8601.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500), help="How many to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_webhooks(
    tenant: str | None, integration: str | None, outcome: str | None, since: float | None, limit: int, as_json: bool
) -> None:
    """List logged deliveries, newest first."""

    async def work(host: Host) -> Any:
        entries, _ = await host.webhook_log.list(
            tenant=tenant, integration=integration, outcome=outcome, since=since, limit=limit
        )
        return entries

    from lily_host.operations.webhook_log import summary

    entries = [summary(entry) for entry in _with_host(work)]
    if as_json:
        _json(entries)
        return
    if not entries:
        click.echo("no deliveries match")
    for entry in entries:
        click.echo(_delivery_line(entry))


@webhooks.command("show")
@click.argument("delivery_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_webhook(delivery_id: str, as_json: bool) -> None:
    """Show one delivery with its headers and (redacted) body."""

    async def work(host: Host) -> Any:
        return await host.webhook_log.get(delivery_id)

    entry = _with_host(work)
    if entry is None:
        raise click.ClickException(f"no delivery {delivery_id!r} in the webhook log (lily webhooks list)")
    if as_json:
        _json(entry)
        return
    click.echo(_delivery_line(entry))
    click.echo(
        f"  {entry['method']} {entry['path']}  latency {entry['latency_ms']:.1f} ms  verified={entry['verified']}"
    )
    if entry["provider_id"]:
        click.echo(f"  provider id: {entry['provider_id']}")
    for task_id in entry["tasks"]:
        click.echo(f"  task: {task_id}")
    click.echo("  headers: " + json.dumps(entry["headers"], sort_keys=True))
    click.echo("  body" + (" (redacted)" if entry["redacted"] else "") + ": " + entry["body"])


@webhooks.command("replay")
@click.argument("delivery_id", required=False)
@click.option("--tenant", default=None, help="Bulk: only this tenant's deliveries.")
@click.option("--integration", default=None, help="Bulk: only this integration's.")
@click.option("--outcome", default=None, help="Bulk: only these outcomes, comma-separated (e.g. error).")
@click.option("--since", callback=_since, default=None, help="Bulk: only newer ones (2h, 30m, ISO 8601...).")
@click.option("--dry-run", is_flag=True, help="Bulk: only count what would be replayed.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 5000), help="Bulk: at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def replay_webhooks(
    delivery_id: str | None,
    tenant: str | None,
    integration: str | None,
    outcome: str | None,
    since: float | None,
    dry_run: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Run a logged delivery (DELIVERY_ID), or every one matching the filters, through the pipeline again.

    The provider's idempotency guard is bypassed on purpose; replaying the same delivery twice
    creates its tasks once. Count first with --dry-run.
    """
    from lily_host.runtime.webhook_replay import ReplayRefused, replay, replay_many

    if delivery_id is not None and (tenant or integration or outcome or since or dry_run):
        raise click.UsageError("give a delivery id or filters, not both")
    if delivery_id is None and not (outcome or since):
        raise click.UsageError("give a delivery id, or --outcome and/or --since (e.g. --outcome error --since 2h)")

    async def work(host: Host) -> Any:
        if delivery_id is not None:
            entry = await host.webhook_log.get(delivery_id)
            if entry is None:
                raise click.ClickException(f"no delivery {delivery_id!r} in the webhook log (lily webhooks list)")
            try:
                return await replay(host, entry)
            except ReplayRefused as refusal:
                raise click.ClickException(str(refusal)) from refusal
        return await replay_many(
            host, dry_run=dry_run, limit=limit, tenant=tenant, integration=integration, outcome=outcome, since=since
        )

    result = _with_host(work)
    if as_json:
        _json(result)
        return
    if delivery_id is not None:
        click.echo(
            f"replayed {delivery_id} as {result['id']}: {result['outcome']} ({result['status']}), "
            f"{len(result['tasks'])} task(s)" + (f"; {result['reason']}" if result.get("reason") else "")
        )
        if result["outcome"] not in ("accepted", "duplicate"):
            sys.exit(1)
        return
    if result["dry_run"]:
        click.echo(
            f"{result['replayable']} deliver{'y' if result['replayable'] == 1 else 'ies'} would be replayed "
            f"({result['skipped']} matching one(s) cannot be: unverified or replays themselves); "
            "run again without --dry-run to replay"
        )
        return
    for item in result["replayed"]:
        click.echo(
            f"{item['replay_of']} -> {item.get('id', '-')}: {item['outcome']}"
            + (f" ({item['reason']})" if item.get("reason") else "")
        )
    click.echo(f"replayed {len(result['replayed'])} deliver{'y' if len(result['replayed']) == 1 else 'ies'}")


# --- lily audit / workers / tasks show -----------------------------------------------------------------------------


@click.command("audit")
@click.option("--tenant", default=None, help="Only entries about this tenant.")
@click.option("--actor", default=None, help="Only this actor (substring: admin, key:ab12, cli:alice).")
@click.option("--since", callback=_since, default=None, help="Only newer ones: 30m, 2h, 7d, Unix seconds or ISO 8601.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000), help="How many to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit(tenant: str | None, actor: str | None, since: float | None, limit: int, as_json: bool) -> None:
    """Who read or changed what: API calls and lily commands, newest first."""

    async def work(host: Host) -> Any:
        entries, _ = await host.audit.list(tenant=tenant, actor=actor, since=since, limit=limit)
        return entries

    entries = _with_host(work)
    if as_json:
        _json(entries)
        return
    if not entries:
        click.echo("no audit entries match")
    for entry in entries:
        where = f" from {entry['remote_addr']}" if entry["remote_addr"] else ""
        click.echo(
            f"{_when(entry['at'])}  {entry['actor']:<28} {entry['action']:<40} {entry['outcome']:<6} "
            f"tenant={entry['tenant'] or '-'}{where}"
        )


@click.command("workers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def workers(as_json: bool) -> None:
    """Live workers (those that sent a heartbeat in the last 30 s)."""
    from lily_host.operations.worker_registry import WorkerRegistry

    async def work(host: Host) -> Any:
        return await WorkerRegistry(host.redis, host.queue.name).live()

    found = _with_host(work)
    if as_json:
        _json(found)
        return
    if not found:
        click.echo("no live worker: tasks are not running (start one with `lily worker`)")
        sys.exit(1)
    for worker in found:
        click.echo(
            f"{worker['id']}  pid {worker.get('pid')}  up since {_when(worker.get('started'))}  "
            f"running {worker.get('running', 0)}/{worker.get('concurrency', '?')}  "
            f"tasks run {worker.get('tasks_run', 0)}  "
            f"last seen {worker['age_seconds']:.0f} s ago"
        )


@click.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_task(task_id: str, as_json: bool) -> None:
    """One task, due, running, dead or finished (finished ones are kept for LILY_TRACE_DAYS)."""
    from lily_host.runtime.delivery_trace import task_view

    async def work(host: Host) -> Any:
        return await task_view(host, task_id)

    view = _with_host(work)
    if view is None:
        raise click.ClickException(
            f"no task {task_id!r} (finished tasks are kept for LILY_TRACE_DAYS, 7 days by default)"
        )
    if as_json:
        _json(view)
        return
    click.echo(f"{view['id']}  {view['state']}  tenant={view['tenant'] or '-'}  delivery={view['delivery'] or '-'}")
    click.echo(f"  attempts {view['attempts']}/{view['max_attempts']}  ran {view['total_duration']:.3f} s in all")
    if view.get("due"):
        click.echo(f"  due {_when(view['due'])}")
    if view.get("dead_at"):
        click.echo(f"  dead since {_when(view['dead_at'])}")
    for run in view["runs"]:
        error = f"  {run['error']}" if run.get("error") else ""
        click.echo(
            f"  run {run['attempt']}: {run['outcome']} at {_when(run['started'])} ({run['duration']:.3f} s){error}"
        )
    if view.get("last_error"):
        click.echo(f"  last error: {view['last_error']}")


@click.command("migrate-keys")
def migrate_keys() -> None:
    """Rename Redis keys of Lily's previous key layout to the current names (once, after an upgrade)."""
    import asyncio

    from lily_host.cli.main import open_host
    from lily_host.plugin_api.errors import ConfigurationError
    from lily_host.runtime.key_layout import migrate_keys as migrate

    async def run() -> Any:
        async with open_host() as host:
            return await migrate(host.redis, plugins=host.registry.records)

    try:
        report = asyncio.run(run())
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{len(report.moved)} keys renamed to the current layout")
    if report.conflicts:
        for move in report.conflicts[:10]:
            click.echo(f"  not renamed: {move.old} ({move.new} exists already)", err=True)
        raise click.ClickException(
            f"{len(report.conflicts)} keys not renamed: their new names hold data already (written by this "
            "version while the old keys were there). Keep the one you want (DEL the other), then run "
            "`lily migrate-keys` again"
        )
