"""The ``lily`` command line: serve, worker, dev, plugins, health, tenants, tasks, outbox, simulate."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import click

from lily_host.cli.task_commands import tasks as tasks_group
from lily_host.config.host_settings import HostSettings
from lily_host.config.redis_url import ensure_reachable, require_redis
from lily_host.config.settings_errors import load_settings
from lily_host.observability.log import configure_logging
from lily_host.plugin_api.commands import HOST_OPENER, echo_json, set_default_host_opener, with_host
from lily_host.plugin_api.errors import ConfigurationError
from lily_host.plugin_api.versions import HOST_VERSION as __version__
from lily_host.queue import TaskQueue
from lily_host.runtime.health import collect_health
from lily_host.runtime.host import Host
from lily_host.runtime.registry import PluginRegistry
from lily_host.sms.outbox import Outbox
from lily_host.tenants.secret_box import SecretBox
from lily_host.web.app import build_host, refuse_failed_plugins

T = TypeVar("T")


def cli_settings() -> HostSettings:
    """Host settings for a CLI command (beside a running `lily dev`, its Redis and dev settings)."""
    return load_settings(HostSettings)


@contextmanager
def quiet_logging() -> Iterator[None]:
    """Only this command's own message: plugin loads that are repeated later (or whose failure the
    command reports itself) log nothing."""
    env, level = os.environ.get("LILY_ENV", "development"), os.environ.get("LILY_LOG_LEVEL", "WARNING")
    configure_logging(env, "CRITICAL")
    try:
        yield
    finally:
        configure_logging(env, level)


@asynccontextmanager
async def open_host() -> AsyncIterator[Host]:
    host = build_host(cli_settings())
    try:
        await ensure_reachable(host.redis, host.settings.redis_url or "")
        yield host
    finally:
        await host.redis.aclose()


set_default_host_opener(open_host)


@asynccontextmanager
async def open_queue() -> AsyncIterator[TaskQueue]:
    async with open_host() as host:
        yield host.queue


# --- the group --------------------------------------------------------------------------------------


class LilyGroup(click.Group):
    """Turns a configuration problem met by any command (plugins' too) into click's one-line error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=LilyGroup, help="Lily: webhooks in, automations out. Run `lily dev` to try it locally.")
@click.version_option(__version__, prog_name="lily")
@click.pass_context
def main(ctx: click.Context) -> None:
    ctx.obj = open_queue
    ctx.meta[HOST_OPENER] = open_host
    configure_logging(os.environ.get("LILY_ENV", "development"), os.environ.get("LILY_LOG_LEVEL", "WARNING"))


main.add_command(tasks_group)


@main.command()
@click.option("--bind", default="0.0.0.0:8000", show_default=True, help="host:port to listen on")
@click.option("--workers", default=1, show_default=True, help="hypercorn worker processes")
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    help="address or network of a TLS-terminating proxy whose X-Forwarded-Proto is believed (repeatable)",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@click.option(
    "--loop",
    type=click.Choice(["auto", "uvloop", "asyncio"]),
    default="auto",
    show_default=True,
    help="event loop of the workers: auto picks uvloop when it is installed (faster), else asyncio",
)
def serve(bind: str, workers: int, trusted_proxies: tuple[str, ...], access_log: bool, loop: str) -> None:
    """Serve the HTTP app with hypercorn (production). Run `lily worker` beside it for tasks."""
    from hypercorn.config import Config
    from hypercorn.run import run

    if trusted_proxies:
        os.environ["LILY_TRUSTED_PROXIES"] = ",".join(trusted_proxies)
    # Fail fast, with the message, before forking workers: settings, plugins, then Redis itself.
    # Quietly: each worker process loads the plugins again and logs what it finds.
    settings = cli_settings()
    with quiet_logging():
        host = build_host(settings)
    refuse_failed_plugins(host)
    require_redis(settings.redis_url)
    config = Config()
    config.application_path = "lily_host.web.asgi:app"
    config.bind = [bind]
    config.workers = workers
    config.accesslog = "-" if access_log else None
    config.worker_class = _event_loop(loop)
    sys.exit(run(config))


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

    async def run() -> None:
        async with open_host() as host:
            configure_logging(host.settings.env, host.settings.log_level)
            refuse_failed_plugins(host)
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
@click.option("--port", default=8000, show_default=True)
@click.option("--bind-host", default="127.0.0.1", show_default=True)
def dev(port: int, bind_host: str) -> None:
    """Run Lily locally with every installed plugin: app + worker, embedded Redis, dev outbox."""
    from lily_host.dev.dev_mode import run_dev

    try:
        run_dev(port=port, bind_host=bind_host)
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plugins(as_json: bool) -> None:
    """List plugins: name, version, state, hooks, tasks and routes."""
    from quart import Quart

    from lily_host.web.app import mount_plugins

    registry = PluginRegistry(cli_settings())
    try:
        mount_plugins(Quart("lily_plugins_listing"), registry)  # fills in each plugin's routes
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error
    listing = registry.listing()
    if as_json:
        echo_json(listing)
        return
    for item in listing:
        version = item["version"] or "-"
        click.echo(f"{item['name']:<18} {version:<8} {item['state']}")
        if item["error"] or item["missing_settings"]:
            click.echo(f"    why: {item['error'] or 'set ' + ', '.join(item['missing_settings'])}")
        for label in ("hooks", "tasks", "routes", "subscriptions", "capabilities"):
            if item[label]:
                click.echo(f"    {label}: {', '.join(item[label])}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def health(as_json: bool) -> None:
    """Run every plugin's health checks; exit status 1 when any failed."""
    report = with_host(collect_health)
    if as_json:
        echo_json(report)
    else:
        click.echo(f"overall: {report['status']}")
        for name, entry in report["plugins"].items():
            click.echo(f"  {name:<18} {entry['state']:<15} {entry['message']}")
    if report["status"] == "failed":
        sys.exit(1)


@main.command()
def keygen() -> None:
    """Print a new key for LILY_SECRET_KEY."""
    click.echo(SecretBox.generate_key())


@main.command()
@click.option("--tenant", default=None, help="only this tenant's messages")
@click.option("--clear", is_flag=True, help="empty the outbox")
def outbox(tenant: str | None, clear: bool) -> None:
    """Show the SMS that development mode recorded instead of sending."""

    async def work(host: Host) -> list[dict[str, Any]]:
        box = Outbox(host.redis)
        if clear:
            await box.clear()
            return []
        return await box.messages(tenant)

    messages = with_host(work)
    if clear:
        click.echo("outbox cleared")
    for message in messages:
        click.echo(f"[{message['tenant']}] to {message['to']} from {message['from']}: {message['body']}")
    if not messages and not clear:
        click.echo("the outbox is empty")


@main.command()
@click.argument("name", required=False)
@click.option("--tenant", default="demo", show_default=True)
@click.option(
    "--url",
    default=lambda: os.environ.get("LILY_DEV_URL", "http://127.0.0.1:8000"),
    show_default="the `lily dev` running in this folder, else http://127.0.0.1:8000",
    help="where the running Lily listens",
)
@click.option(
    "--id",
    "delivery_id",
    default=None,
    help="the delivery's id (call, message, booking uid, event); default: a fresh one. Repeat one to see a duplicate.",
)
def simulate(name: str | None, tenant: str, url: str, delivery_id: str | None) -> None:
    """Send a signed sample webhook to a running Lily (list them without NAME)."""
    import inspect

    import httpx

    from lily_host.plugin_api.contract import simulation_id_given
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
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(url.rstrip("/") + path, headers=dict(headers), content=body)
        except httpx.TransportError as error:
            raise click.ClickException(f"no Lily answers at {url} ({error}); start one with `lily dev`") from None
        duplicate = response.headers.get(OUTCOME_HEADER) == "duplicate"
        return path, response.status_code, response.text, duplicate

    if name is None:
        registry = PluginRegistry(cli_settings())
        for sim_name, (owner, simulation) in sorted(registry.simulations.items()):
            click.echo(f"{sim_name:<28} ({owner}) {simulation.description}")
        if not registry.simulations:
            click.echo("no simulations: run under `lily dev` (development credentials) or configure a provider")
        return
    result = with_host(work)
    assert result is not None
    path, status, text, duplicate = result
    click.echo(f"POST {path} -> {status}\n{text}")
    if duplicate:
        click.echo(
            "duplicate: Lily had this delivery already (same id), so nothing new happened; drop --id for a fresh one"
        )
    if status >= 400:
        sys.exit(1)


def _attach_plugin_commands() -> None:
    from lily_host.cli.tenant_commands import tenants as tenants_group
    from lily_host.dev.dev_mode import load_dev_environment

    main.add_command(tenants_group)
    load_dev_environment()
    configure_logging(os.environ.get("LILY_ENV", "development"), os.environ.get("LILY_LOG_LEVEL", "WARNING"))
    try:
        settings = cli_settings()
    except ConfigurationError:
        return  # the command itself reports the settings error, in one line
    try:
        with quiet_logging():  # the command loads them again if it needs them, and logs then
            registry = PluginRegistry(settings)
    except ConfigurationError as error:
        click.echo(f"warning: plugins not loaded: {error}", err=True)
        return
    for record in registry.records.values():
        if not record.active:
            continue
        try:
            registry._call(record, "register_commands", cli=main)
        except Exception as error:  # a plugin's broken command must not break the whole CLI
            click.echo(f"warning: plugin {record.name} could not add its commands: {error}", err=True)


_attach_plugin_commands()


if __name__ == "__main__":
    main()
