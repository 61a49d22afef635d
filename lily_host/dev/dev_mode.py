"""``lily dev``: everything in one process for trying Lily on a laptop.

App and worker together; an embedded redis-server (data in .lily/redis) when REDIS_URL is unset;
local stand-ins for providers that need an account (a fake Stripe and Google, moto's S3: see
:mod:`lily_host.dev.standins`); development credentials for plugins that offer them, so signed
sample webhooks work; and the outbox instead of real SMS for any provider without credentials.
One ``lily dev`` per folder: a second one says where the first runs and touches nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from lily_host.config.host_settings import HostSettings
from lily_host.config.redis_connection import redis_target, require_redis
from lily_host.config.settings_errors import load_settings
from lily_host.console import signin_link
from lily_host.dev.dev_lock import check_port_free, dev_lock, running_dev
from lily_host.dev.embedded_redis import RedisServer
from lily_host.dev.standins import StandIn, start_standins, stop_standins, tenant_preparation
from lily_host.plugin_api.dev_standin import DevContext
from lily_host.runtime.host import Host
from lily_host.runtime.registry import PluginRecord, PluginRegistry, PluginState
from lily_host.web.api_auth import DEV_SESSION
from lily_host.web.app import create_app

DEMO_TENANT = "demo"
DEV_ENV_FILE = "dev.env"
#: What `lily dev` shares with the other commands run beside it.
SHARED_VARIABLES = (
    "REDIS_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_SERVICE",
    "LILY_ENV",
    "LILY_DEV_CREDENTIALS",
    "LILY_PUBLIC_URL",
    "LILY_ADMIN_TOKEN",
    "LILY_DEV_URL",
)
DEV_ADMIN_TOKEN = "dev-admin-token"


def run_dev(*, port: int, bind_host: str) -> None:
    data_dir = Path(os.environ.get("LILY_DATA_DIR", ".lily"))
    # First of all: a second `lily dev` in this folder must touch nothing of the first one's.
    with dev_lock(data_dir, port):
        check_port_free(bind_host, port)
        os.environ.setdefault("LILY_ENV", "development")
        os.environ.setdefault("LILY_DEV_CREDENTIALS", "1")
        os.environ.setdefault("LILY_PUBLIC_URL", f"http://localhost:{port}")
        os.environ.setdefault("LILY_ADMIN_TOKEN", DEV_ADMIN_TOKEN)
        # Where `lily simulate` posts by default: this server, whatever --port it was given.
        local_host = "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host
        os.environ["LILY_DEV_URL"] = f"http://{local_host}:{port}"
        load_settings(HostSettings)  # a bad variable is reported before anything starts
        embedded: RedisServer | None = None
        standins: dict[str, StandIn] = {}
        try:
            if not os.environ.get("REDIS_URL") and not os.environ.get("REDIS_SENTINELS"):
                embedded = RedisServer(data_dir / "redis", appendonly=True).start()
                os.environ["REDIS_URL"] = embedded.url
            else:
                require_redis(load_settings(HostSettings))
            # Local stand-ins first (a plugin's fake provider): their variables configure the plugins.
            context = DevContext(data_dir, os.environ["LILY_PUBLIC_URL"], dict(os.environ))
            registry = PluginRegistry(load_settings(HostSettings))
            standins = start_standins(registry, context)
            if embedded is not None:
                # This laptop's own Redis, kept from an older version: renamed here, not refused.
                asyncio.run(_migrate_local_keys(embedded.url, list(registry.records)))
            # Other `lily` commands run in this folder (simulate, outbox, tenants) talk to this instance.
            write_dev_environment(data_dir, extra=[name for standin in standins.values() for name in standin.env])
            try:
                _run_app(port=port, bind_host=bind_host, embedded=embedded is not None, standins=standins)
            finally:
                (data_dir / DEV_ENV_FILE).unlink(missing_ok=True)
        finally:
            stop_standins(standins)
            if embedded is not None:
                embedded.stop()


def _run_app(*, port: int, bind_host: str, embedded: bool, standins: dict[str, StandIn]) -> None:
    app = create_app(load_settings(HostSettings), run_worker=True)
    app.config[DEV_SESSION] = True  # GET /dev/outbox without the admin token, on this laptop only
    host: Host = app.extensions["lily"]

    @app.before_serving
    async def welcome() -> None:
        api_key = await ensure_demo_tenant(host)
        for name, standin in standins.items():
            prepare = tenant_preparation(standin)
            if prepare is not None and host.registry.records[name].state == PluginState.LOADED:
                await prepare(host, DEMO_TENANT)
        console = await signin_link(host, f"http://{bind_host}:{port}")
        click.echo(
            banner(
                host,
                port=port,
                bind_host=bind_host,
                api_key=api_key,
                embedded=embedded,
                standins=standins,
                console=console,
            )
        )

    asyncio.run(_serve(app, f"{bind_host}:{port}"))


async def _migrate_local_keys(url: str, plugins: list[str]) -> None:
    """Rename the keys of the previous key layout in the embedded Redis (``lily migrate-keys``)."""
    import redis.asyncio as aioredis

    from lily_host.runtime.key_layout import migrate_keys

    client = aioredis.Redis.from_url(url)
    try:
        report = await migrate_keys(client, plugins=plugins)
    finally:
        await client.aclose()
    if report.moved:
        click.echo(f"{len(report.moved)} keys of the previous key layout renamed to the current names")


async def _serve(app: Any, bind: str) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [bind]
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


async def ensure_demo_tenant(host: Host) -> str:
    """Create the demo tenant (once) with each plugin's documented demo settings; mint a fresh key.

    A plugin installed since the demo tenant was made gets its demo settings now."""
    tenant = await host.tenants.get(DEMO_TENANT)
    if tenant is None:
        tenant = await host.tenants.create(
            DEMO_TENANT,
            "Demo Pressure Washing",
            timezone="America/New_York",
            review_link="https://g.page/r/demo-review",
            contact_phone="+15555550100",
        )
    for name, record in host.registry.records.items():
        model = record.tenant_settings_model
        demo = getattr(model, "lily_dev_tenant", None) if model is not None else None
        if record.active and isinstance(demo, dict) and name not in tenant.plugins:
            await host.tenants.set_plugin_settings(DEMO_TENANT, name, demo)
    _key_id, secret = await host.tenants.mint_key(DEMO_TENANT, "lily dev")
    return secret


def banner(
    host: Host,
    *,
    port: int,
    bind_host: str,
    api_key: str,
    embedded: bool,
    standins: Mapping[str, StandIn] | None = None,
    console: str = "",
) -> str:
    base = f"http://{bind_host}:{port}"
    lines = [
        "",
        f"Lily is running at {base}  (Ctrl-C stops it)",
        f"  Redis:       {'embedded, data in .lily/redis' if embedded else _redis_where(host)}",
        f"  Admin token: {host.settings.admin_token}",
        f"  Demo tenant: {DEMO_TENANT}   API key: {api_key}",
        f"  Health:      {base}/health     Metrics: {base}/metrics     Outbox: {base}/dev/outbox",
        f"  Console:     {console or base + '/console'}"
        + ("   (one-click sign-in, valid once for 15 minutes)" if console else ""),
        "",
        "Point each provider's webhooks at (through a tunnel such as cloudflared for real providers;",
        "set LILY_PUBLIC_URL to the tunnel's https URL so signatures verify):",
    ]
    for plugin, endpoint in host.registry.webhooks:
        lines.append(f"  {plugin:<8} {host.public_url(endpoint.path)}")
    lines.append("")
    lines.append("Plugins:")
    for name, record in host.registry.records.items():
        if record.builtin:
            continue
        note = record.state.value
        if record.dev_credentials:
            note += " (development credentials" + ("; outbound SMS go to the outbox)" if _texts(record) else ")")
        elif record.state == PluginState.NOT_CONFIGURED:
            note += f": set {', '.join(record.missing_settings)}"
        lines.append(f"  {name:<8} {note}")
    if standins:
        lines.append("")
        lines.append("Local stand-ins for providers:")
        for name, standin in standins.items():
            lines.append(f"  {name:<8} {standin.description}")
    if host.registry.simulations:
        lines.append("")
        lines.append("Try a flow with a signed sample request, then look at the outbox:")
        lily = lily_command()
        for sim_name, (_owner, simulation) in sorted(host.registry.simulations.items()):
            lines.append(f"  {lily} simulate {sim_name} --tenant {DEMO_TENANT}     # {simulation.description}")
        lines.append(f"  {lily} outbox")
        lines.append("  (SMS law applies here too: a text due between 21:00 and 09:00 in the demo tenant's time zone,")
        lines.append("   America/New_York, is held until morning; the outbox lists it under held, with when it goes.)")
    lines.append("")
    return "\n".join(lines)


def _texts(record: PluginRecord) -> bool:
    """Whether a plugin would send texts if it had real credentials (its SMS then go to the outbox)."""
    model = record.settings_model
    return bool(getattr(model, "lily_sends_sms", False))


def _redis_where(host: Host) -> str:
    target = redis_target(host.settings)
    return target.describe() if target is not None else "(not configured)"


def write_dev_environment(data_dir: Path, extra: Sequence[str] = ()) -> None:
    """``extra``: more variables to share (the stand-ins': the commands beside must see the same fakes)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={os.environ[name]}" for name in (*SHARED_VARIABLES, *extra) if name in os.environ]
    (data_dir / DEV_ENV_FILE).write_text("\n".join(lines) + "\n")


def load_dev_environment() -> None:
    """In a folder where `lily dev` runs, point this command at it (variables already set win)."""
    if os.environ.get("REDIS_URL") or os.environ.get("REDIS_SENTINELS") or os.environ.get("LILY_ENV") == "production":
        return
    data_dir = Path(os.environ.get("LILY_DATA_DIR", ".lily"))
    path = data_dir / DEV_ENV_FILE
    # Only while its `lily dev` runs: a file left by one that was killed names a Redis that is gone.
    if not path.exists() or running_dev(data_dir) is None:
        return
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name:  # the file is `lily dev`'s own: its variables and its stand-ins'
            os.environ.setdefault(name, value)


def lily_command() -> str:
    """How to call `lily` from this folder: a virtualenv below it (nox's) is not on the user's PATH."""
    script = Path(sys.executable).parent / "lily"
    try:
        return str(script.relative_to(Path.cwd())) if script.exists() else "lily"
    except ValueError:
        return "lily"
