"""The ``lily`` command line: serve, worker, dev, plugins, health, tenants, tasks, outbox, simulate,
and the operators' trace, webhooks, audit and workers (lily_host/cli/ops_commands.py).

Importing this module must stay cheap (click only): ``lily --help`` and ``lily --version`` answer in
well under 0.3 s, and each command imports what it uses when it runs. ``tasks`` and ``tenants``
are imported on use, plugin commands (``jobs``, ``sms``, ``gcal``, ``billing``, ...) when one of
them is asked for (lily_host/cli/lazy_group.py). tests/host/test_cli_startup.py keeps Quart,
hypercorn, boto3 and redis out of the import; ``nox -s bench`` times it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lily_host.cli.cli_audit import AuditedGroup
from lily_host.cli.lazy_group import PluginCommandHint, PluginLoadResult
from lily_host.plugin_api.cli_output import Column, echo_json, json_option, local_time, masked, print_listing
from lily_host.plugin_api.errors import ConfigurationError
from lily_host.plugin_api.versions import HOST_VERSION as __version__

if TYPE_CHECKING:
    from lily_host.config.host_settings import HostSettings
    from lily_host.queue import TaskQueue
    from lily_host.runtime.host import Host

T = TypeVar("T")


def cli_settings() -> HostSettings:
    """Host settings for a CLI command (beside a running `lily dev`, its Redis and dev settings)."""
    from lily_host.config.host_settings import HostSettings
    from lily_host.config.settings_errors import load_settings
    from lily_host.dev.dev_mode import load_dev_environment

    load_dev_environment()
    _configure_cli_logging()  # here, not in the group: `lily tasks --help` must not import structlog
    return load_settings(HostSettings)  # a bad variable: one line naming it (ConfigurationError)


@contextmanager
def quiet_logging() -> Iterator[None]:
    """Only this command's own message: plugin loads that are repeated later (or whose failure the
    command reports itself) log nothing."""
    from lily_host.observability.log import configure_logging

    env, level = os.environ.get("LILY_ENV", "development"), os.environ.get("LILY_LOG_LEVEL", "WARNING")
    configure_logging(env, "CRITICAL")
    try:
        yield
    finally:
        configure_logging(env, level)


@asynccontextmanager
async def open_host() -> AsyncIterator[Host]:
    from lily_host.config.redis_connection import ensure_redis
    from lily_host.web.app import build_host

    host = build_host(cli_settings())
    try:
        await ensure_redis(host.redis, host.settings)
        yield host
    finally:
        await host.redis.aclose()


@asynccontextmanager
async def open_checked_host() -> AsyncIterator[Host]:
    """The host of a command that works with tenant data (``with_host``): a wrong LILY_SECRET_KEY
    fails here, with how to rotate, not deep in the command."""
    from lily_host.tenants.canary import require_secret_key

    async with open_host() as host:
        await require_secret_key(host.redis, host.tenants.secret_box)
        await host.require_current_key_layout()
        yield host


@asynccontextmanager
async def open_queue() -> AsyncIterator[TaskQueue]:
    async with open_host() as host:
        yield host.queue


def _configure_cli_logging() -> None:
    from lily_host.observability.log import configure_logging

    configure_logging(os.environ.get("LILY_ENV", "development"), os.environ.get("LILY_LOG_LEVEL", "WARNING"))


def _load_plugin_commands(group: click.Group) -> PluginLoadResult:
    """Load the plugins and let every active one add its commands (called by the group on demand)."""
    from lily_host.runtime.registry import PluginRegistry

    try:
        settings = cli_settings()
    except ConfigurationError as error:  # the group reports it in one line (see LazyGroup.get_command)
        return PluginLoadResult(inactive={}, error=str(error))
    try:
        with quiet_logging():  # the command loads them again if it needs them, and logs then
            registry = PluginRegistry(settings)
    except ConfigurationError as error:
        click.echo(f"warning: plugins not loaded: {error}", err=True)
        return PluginLoadResult(inactive={}, error=str(error))
    inactive: dict[str, str] = {}
    for record in registry.records.values():
        if not record.active:
            inactive[record.name] = record.error or record.state.value
            continue
        try:
            registry._call(record, "register_commands", cli=group)
        except Exception as error:  # a plugin's broken command must not break the whole CLI
            click.echo(f"warning: plugin {record.name} could not add its commands: {error}", err=True)
            inactive[record.name] = f"its commands failed: {error}"
    return PluginLoadResult(inactive=inactive)


#: Commands the built-in plugins add (their modules import Quart; the help is known without them).
#: tests/host/test_cli_tree.py checks these against what the built-ins really register.
BUILTIN_PLUGIN_COMMANDS = {
    "jobs": PluginCommandHint("jobs", "lily.reviews", "Completed jobs and their review requests."),
    "sms": PluginCommandHint("sms", "lily.messaging", "A tenant's texts and suppression list."),
}


# --- the group --------------------------------------------------------------------------------------


class LilyGroup(AuditedGroup):
    """Turns a configuration problem met by any command (plugins' too) into click's one-line error;
    commands that touch tenant data are audited (lily_host/cli/cli_audit.py)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as error:
            raise click.ClickException(str(error)) from None


@click.group(
    cls=LilyGroup,
    help="Lily: webhooks in, automations out. Run `lily dev` to try it locally.",
    lazy_commands={
        "tasks": "lily_host.cli.task_commands:tasks",
        "tenants": "lily_host.cli.tenant_commands:tenants",
        "plugin": "lily_host.cli.plugin_commands:plugin_group",
        "docs": "lily_host.cli.plugin_commands:docs",
        "trace": "lily_host.cli.ops_commands:trace",
        "webhooks": "lily_host.cli.ops_commands:webhooks",
        "audit": "lily_host.cli.ops_commands:audit",
        "workers": "lily_host.cli.ops_commands:workers",
        "migrate-keys": "lily_host.cli.ops_commands:migrate_keys",
    },
    builtin_plugin_commands=BUILTIN_PLUGIN_COMMANDS,
    plugin_loader=_load_plugin_commands,
)
@click.version_option(__version__, prog_name="lily", help="Print Lily's version and exit.")
@click.help_option(help="Show this message and exit.")
@click.pass_context
def main(ctx: click.Context) -> None:
    from lily_host.plugin_api.commands import HOST_OPENER, set_default_host_opener

    ctx.obj = open_queue
    ctx.meta[HOST_OPENER] = open_checked_host
    set_default_host_opener(open_checked_host)


@main.command()
@click.option("--bind", default="0.0.0.0:8000", show_default=True, help="host:port to listen on")
@click.option("--workers", default=1, show_default=True, help="hypercorn worker processes")
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    help="address or network of a TLS-terminating proxy whose X-Forwarded-Proto is believed (repeatable)",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="log every request (on stdout)")
@click.option(
    "--loop",
    type=click.Choice(["auto", "uvloop", "asyncio"]),
    default="auto",
    show_default=True,
    help="event loop of the workers: auto picks uvloop when it is installed (faster), else asyncio",
)
def serve(bind: str, workers: int, trusted_proxies: tuple[str, ...], access_log: bool, loop: str) -> None:
    """Serve the HTTP app with hypercorn (production). Run `lily worker` beside it for tasks."""
    import asyncio

    from hypercorn.config import Config
    from hypercorn.run import run

    from lily_host.config.redis_connection import require_redis
    from lily_host.web.app import build_host, refuse_failed_plugins

    if trusted_proxies:
        os.environ["LILY_TRUSTED_PROXIES"] = ",".join(trusted_proxies)
    # Fail fast, with the message, before forking workers: settings, plugins, then Redis itself.
    # Quietly: each worker process loads the plugins again and logs what it finds.
    settings = cli_settings()
    with quiet_logging():
        host = build_host(settings)
    refuse_failed_plugins(host)
    require_redis(settings)
    asyncio.run(_check_secret_key(host))  # a wrong LILY_SECRET_KEY: one line, before forking workers
    config = Config()
    config.application_path = "lily_host.web.asgi:app"
    config.bind = [bind]
    config.workers = workers
    config.accesslog = "-" if access_log else None
    config.worker_class = _event_loop(loop)
    sys.exit(run(config))


async def _check_secret_key(host: Host) -> None:
    from lily_host.tenants.canary import require_secret_key

    try:
        await require_secret_key(host.redis, host.tenants.secret_box)
        await host.require_current_key_layout()
    finally:
        await host.redis.aclose()


def _event_loop(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


@main.command()
@click.option("--concurrency", default=32, show_default=True, help="tasks run at once by this process")
@click.option(
    "--lease", default=30.0, show_default=True, help="seconds a claimed task is held before others may run it"
)
@click.option("--batch", default=64, show_default=True, help="tasks claimed per round trip")
def worker(concurrency: int, lease: float, batch: int) -> None:
    """Run tasks from the queue until SIGTERM (which drains in-flight tasks first)."""

    import asyncio

    async def run() -> None:
        from lily_host.observability.log import configure_logging
        from lily_host.tenants.canary import require_secret_key
        from lily_host.web.app import refuse_failed_plugins

        async with open_host() as host:
            configure_logging(host.settings.env, host.settings.log_level)
            refuse_failed_plugins(host)
            await require_secret_key(host.redis, host.tenants.secret_box)
            await host.require_current_key_layout()
            await host.finish_tenant_deletions()  # any a process left half done
            await host.startup()
            try:
                task_worker = host.make_worker(concurrency=concurrency, lease=lease, batch=batch)
                task_worker.install_signal_handlers()
                await task_worker.run()
            finally:
                await host.shutdown()

    try:
        asyncio.run(run())
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.option("--port", default=8000, show_default=True, help="port the app listens on")
@click.option("--bind-host", default="127.0.0.1", show_default=True, help="address the app listens on")
def dev(port: int, bind_host: str) -> None:
    """Run Lily locally with every installed plugin: app + worker, embedded Redis, dev outbox."""
    from lily_host.dev.dev_mode import run_dev

    _configure_cli_logging()
    try:
        run_dev(port=port, bind_host=bind_host)
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.option("--details", is_flag=True, help="also list each plugin's tasks, routes, subscriptions and capabilities")
@json_option
def plugins(details: bool, as_json: bool) -> None:
    """List plugins: name, version, the plugin API it targets, state (and why), and the hooks it implements."""
    from quart import Quart

    from lily_host.cli.plugin_commands import plugin_rows
    from lily_host.runtime.registry import PluginRegistry
    from lily_host.web.app import mount_plugins

    registry = PluginRegistry(cli_settings())
    try:
        mount_plugins(Quart("lily_plugins_listing"), registry)  # fills in each plugin's routes
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error
    rows = plugin_rows(list(registry.records.values()))
    if as_json:
        echo_json(rows)
        return

    def why(item: dict[str, Any]) -> str:
        if item["error"]:
            return str(item["error"])
        return "set " + ", ".join(item["missing_settings"]) if item["missing_settings"] else ""

    columns = [
        Column("name", lambda item: item["name"]),
        Column("version", lambda item: item["version"]),
        Column("api", lambda item: item["api_version"], right=True),
        Column("state", lambda item: item["state"]),
        Column("why", why),
    ]
    print_listing(rows, columns, as_json=False, empty="no plugins")
    labels = ("hooks", "tasks", "routes", "subscriptions", "capabilities") if details else ("hooks",)
    for item in rows:
        if any(item[label] for label in labels):
            click.echo(f"\n{item['name']}")
        for label in labels:
            if item[label]:
                click.echo(f"    {label}: {', '.join(item[label])}")


@main.command()
@json_option
def health(as_json: bool) -> None:
    """Run every plugin's health checks; exit status 1 when any failed."""
    from lily_host.plugin_api.commands import HOST_OPENER, with_host
    from lily_host.runtime.health import collect_health

    # Health reports a wrong LILY_SECRET_KEY (one of its checks) rather than refusing to run.
    click.get_current_context().meta[HOST_OPENER] = open_host
    report = with_host(collect_health)
    if as_json:
        echo_json(report)
    else:
        click.echo(f"overall: {report['status']}")
        rows = sorted(report["plugins"].items())
        columns = [
            Column("plugin", lambda row: row[0]),
            Column("state", lambda row: row[1]["state"]),
            Column("message", lambda row: row[1]["message"]),
        ]
        print_listing(rows, columns, as_json=False, empty="no plugin has health checks")
    if report["status"] == "failed":
        sys.exit(1)


@main.command()
def keygen() -> None:
    """Print a new key for LILY_SECRET_KEY."""
    from lily_host.tenants.secret_box import SecretBox

    click.echo(SecretBox.generate_key())


@main.command()
@click.option("--tenant", default=None, help="only this tenant's messages")
@click.option("--clear", is_flag=True, help="empty the outbox")
@json_option
def outbox(tenant: str | None, clear: bool, as_json: bool) -> None:
    """Show the SMS that development mode recorded instead of sending (oldest first), and those Lily holds."""
    from lily_host.plugin_api.commands import with_host
    from lily_host.sms.outbox import Outbox, held_texts

    async def work(host: Host) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        box = Outbox(host.redis)
        if clear:
            await box.clear()
            return [], []
        found = await host.tenants.get(tenant) if tenant else None
        tenants = await host.tenants.all() if tenant is None else [found] if found else []
        return await box.messages(tenant), await held_texts(host.messaging, tenants)

    messages, held = with_host(work)
    if clear:
        click.echo("outbox cleared")
        return
    if as_json:
        echo_json(messages + held)
        return
    # The outbox is development's phone: bodies in full (they are what is being tried out).
    columns = [
        Column("time", lambda m: local_time(m.get("at") or m.get("created_at"), seconds=True)),
        Column("tenant", lambda m: m.get("tenant")),
        Column("to", lambda m: masked(m.get("to"))),
        Column("from", lambda m: masked(m.get("from"))),
        Column("body", lambda m: m.get("body")),
    ]
    print_listing(messages, columns, as_json=False, empty="nothing sent yet" if held else "the outbox is empty")
    if held:
        click.echo("")
        click.echo("held (Lily sends them when the rule allows; `lily tasks list` shows their sms.send tasks):")
        held_columns = [
            Column("goes at", lambda m: local_time(m.get("until"))),
            Column("why", lambda m: m.get("reason")),
            Column("tenant", lambda m: m.get("tenant")),
            Column("to", lambda m: masked(m.get("to"))),
            Column("body", lambda m: m.get("body")),
        ]
        print_listing(held, held_columns, as_json=False, empty="")


@main.command()
@click.argument("name", required=False)
@click.option("--tenant", default="demo", show_default=True, help="tenant the sample webhook is for")
@click.option(
    "--url",
    default=None,
    show_default="the `lily dev` running in this folder, else http://127.0.0.1:8000",
    help="where the running Lily listens",
)
@click.option(
    "--id",
    "delivery_id",
    default=None,
    help="the delivery's id (call, message, booking uid, event); default: a fresh one. Repeat one to see a duplicate.",
)
@json_option
def simulate(name: str | None, tenant: str, url: str | None, delivery_id: str | None, as_json: bool) -> None:
    """Send a signed sample webhook to a running Lily (list them without NAME)."""
    import inspect

    import httpx

    from lily_host.plugin_api.commands import with_host
    from lily_host.plugin_api.contract import simulation_id_given
    from lily_host.runtime.registry import PluginRegistry
    from lily_host.web.webhook_pipeline import OUTCOME_HEADER

    async def work(host: Host) -> tuple[str, int, str, bool] | None:
        if name is None:
            return None
        if name not in host.registry.simulations:
            known = ", ".join(sorted(host.registry.simulations)) or "none (no plugin with credentials offers one)"
            raise click.ClickException(f"no simulation {name!r}; known: {known}")
        record = await host.tenants.get(tenant)
        if record is None:
            raise click.ClickException(f"no tenant {tenant!r} (lily tenants list)")
        _owner, simulation = host.registry.simulations[name]
        try:
            with simulation_id_given(delivery_id):
                built = simulation.build(host, record)
                path, headers, body = await built if inspect.isawaitable(built) else built
        except ValueError as error:  # e.g. the tenant lacks the number the simulation needs
            raise click.ClickException(str(error)) from None
        # Read only now: opening the host loaded the folder's `lily dev` environment (LILY_DEV_URL).
        base = url or os.environ.get("LILY_DEV_URL", "http://127.0.0.1:8000")
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(base.rstrip("/") + path, headers=dict(headers), content=body)
        except httpx.TransportError as error:
            raise click.ClickException(f"no Lily answers at {base} ({error}); start one with `lily dev`") from None
        duplicate = response.headers.get(OUTCOME_HEADER) == "duplicate"
        return path, response.status_code, response.text, duplicate

    if name is None:
        registry = PluginRegistry(cli_settings())
        rows = [
            {"name": sim_name, "plugin": owner, "description": simulation.description}
            for sim_name, (owner, simulation) in sorted(registry.simulations.items())
        ]
        columns = [Column("name", lambda r: r["name"]), Column("plugin", lambda r: r["plugin"])]
        columns.append(Column("description", lambda r: r["description"]))
        empty = "no simulations: run under `lily dev` (development credentials) or configure a provider"
        print_listing(rows, columns, as_json=as_json, empty=empty)
        return
    result = with_host(work)
    assert result is not None
    path, status, text, duplicate = result
    if as_json:
        echo_json({"path": path, "status": status, "body": text, "duplicate": duplicate})
        if status >= 400:
            sys.exit(1)
        return
    click.echo(f"POST {path} -> {status}\n{text}")
    if duplicate:
        click.echo(
            "duplicate: Lily had this delivery already (same id), so nothing new happened; drop --id for a fresh one"
        )
    if status >= 400:
        sys.exit(1)


if __name__ == "__main__":
    main()
