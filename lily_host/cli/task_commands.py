"""``lily tasks``: inspect and repair the task queue from a shell.

The commands need a queue but not how to build one: ``ctx.obj`` must be a callable returning an
async context manager that yields a :class:`TaskQueue` (the host's CLI passes ``open_queue``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from lily_host.plugin_api.cli_output import Column, echo_json, echo_table, json_option, local_time, print_listing

if TYPE_CHECKING:  # the queue (and redis) load when a command runs, not when `lily --help` does
    from lily_host.queue.task_queue import QueueStats, Task, TaskQueue

__all__ = ["QueueFactory", "parse_duration", "tasks"]

QueueFactory = Callable[[], AbstractAsyncContextManager["TaskQueue"]]
T = TypeVar("T")

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)\s*")


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``12h``, ``7d``, ``2w`` or a bare number of seconds."""
    match = _DURATION.fullmatch(text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 15m, 12h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _duration_option(ctx: click.Context, param: click.Parameter, value: str) -> float:
    # A callback rather than a click.ParamType: ParamType is generic only in recent click releases.
    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from error


def _with_queue(ctx: click.Context, work: Callable[[TaskQueue], Awaitable[T]]) -> T:
    factory = ctx.obj
    if not callable(factory):
        raise click.UsageError("no queue configured: ctx.obj must be a callable returning a TaskQueue context")

    import asyncio  # here, not at the top: `lily --help` imports this module

    async def run() -> T:
        async with factory() as queue:
            return await work(queue)

    return asyncio.run(run())


def _task_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "type": task.type,
        "tenant": task.tenant,
        "state": task.state,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "dedupe_key": task.dedupe_key,
        "due": task.due,
        "first_due": task.first_due,
        "created": task.created,
        "lease_expires": task.lease_expires,
        "dead_at": task.dead_at,
        "last_error": task.last_error,
        "errors": task.errors,
        "payload": task.payload,
    }


def _stats_json(stats: QueueStats) -> dict[str, Any]:
    return {
        "queue": stats.queue,
        "now": stats.now,
        "due": stats.due,
        "ready": stats.ready,
        "in_flight": stats.in_flight,
        "dead": stats.dead,
        "by_type": {
            name: {"due": t.due, "ready": t.ready, "in_flight": t.in_flight, "dead": t.dead}
            for name, t in stats.by_type.items()
        },
    }


tasks = click.Group("tasks", help="Inspect and repair the delayed-task queue: depth, dead letters, retries.")


@tasks.command("stats")
@json_option
@click.pass_context
def stats_command(ctx: click.Context, as_json: bool) -> None:
    """Tasks due (scheduled, incl. future), ready now, in flight and dead, per type."""
    stats = _with_queue(ctx, lambda queue: queue.stats())
    if as_json:
        echo_json(_stats_json(stats))
        return
    rows: list[tuple[str, Any]] = [("total", stats), *stats.by_type.items()]
    click.echo(f"queue {stats.queue} at {local_time(stats.now, seconds=True)}")
    echo_table(
        rows,
        [
            Column("type", lambda row: row[0]),
            Column("due", lambda row: row[1].due, right=True),
            Column("ready", lambda row: row[1].ready, right=True),
            Column("in flight", lambda row: row[1].in_flight, right=True),
            Column("dead", lambda row: row[1].dead, right=True),
        ],
    )


@tasks.command("list")
@click.option("--due", "which", flag_value="due", default=True, help="Scheduled tasks, soonest first (default).")
@click.option("--dead", "which", flag_value="dead", help="Dead letters, oldest first.")
@click.option("--in-flight", "which", flag_value="in_flight", help="Tasks a worker is running.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Show at most this many.")
@json_option
@click.pass_context
def list_command(ctx: click.Context, which: Literal["due", "dead", "in_flight"], limit: int, as_json: bool) -> None:
    """List due, dead or in-flight tasks (--json adds payloads and error history)."""
    found = _with_queue(ctx, lambda queue: queue.list_tasks(which, limit))
    label = {"due": "due", "dead": "dead at", "in_flight": "lease until"}[which]

    def when(task: Task) -> str:
        return local_time({"due": task.due, "dead": task.dead_at, "in_flight": task.lease_expires}[which], seconds=True)

    columns = [
        Column("id", lambda task: task.id),
        Column("type", lambda task: task.type),
        Column("tenant", lambda task: task.tenant),
        Column("attempt", lambda task: f"{task.attempt}/{task.max_attempts}", right=True),
        Column(label, when),
        Column("last error", lambda task: (task.last_error or "").split("\n")[0], width=80),
    ]
    print_listing(
        found,
        columns,
        as_json=as_json,
        empty=f"no {which.replace('_', '-')} tasks",
        json_data=[_task_json(task) for task in found],
    )


@tasks.command("retry")
@click.argument("task_id", required=False)
@click.option("--all-dead", is_flag=True, help="Requeue every dead task.")
@click.pass_context
def retry_command(ctx: click.Context, task_id: str | None, all_dead: bool) -> None:
    """Requeue a dead task (or all of them) to run now with fresh attempts."""
    if (task_id is None) == (not all_dead):
        raise click.UsageError("give a task id or --all-dead (not both)")
    count = _with_queue(ctx, lambda queue: queue.retry_dead(task_id, all_dead=all_dead))
    if task_id is not None and count == 0:
        raise click.ClickException(f"{task_id} is not a dead task; see `lily tasks list --dead`")
    click.echo(f"requeued {count} task{'s' if count != 1 else ''}")


@tasks.command("purge-dead")
@click.option(
    "--older-than",
    callback=_duration_option,
    default="7d",
    show_default=True,
    help="Age of the dead letters to delete, e.g. 30s, 15m, 12h, 7d.",
)
@click.pass_context
def purge_dead_command(ctx: click.Context, older_than: float) -> None:
    """Delete dead tasks dead-lettered longer ago than --older-than."""
    count = _with_queue(ctx, lambda queue: queue.purge_dead(older_than))
    click.echo(f"purged {count} dead task{'s' if count != 1 else ''}")


@tasks.command("run-now")
@click.argument("task_id")
@click.pass_context
def run_now_command(ctx: click.Context, task_id: str) -> None:
    """Development only: run a scheduled task now (e.g. the review request `lily jobs complete` schedules)."""
    if os.environ.get("LILY_ENV", "development") == "production":
        raise click.ClickException("`lily tasks run-now` is for development; it is refused when LILY_ENV=production")
    if not _with_queue(ctx, lambda queue: queue.run_now(task_id)):
        raise click.ClickException(f"{task_id} is not a scheduled task; see `lily tasks list`")
    click.echo(f"{task_id} is due now; a running worker (`lily dev` or `lily worker`) runs it")


def _add_show() -> None:
    # `lily tasks show` lives with the other operator views (the runs of a finished task, its trace).
    from lily_host.cli.ops_commands import show_task

    tasks.add_command(show_task)


_add_show()
