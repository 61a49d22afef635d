"""``lily dev``: everything in one process for trying Lily on a laptop.

App and worker together; an embedded redis-server (data in .lily/redis) when REDIS_URL is unset;
development credentials for plugins that offer them, so signed sample webhooks work; and the
outbox instead of real SMS for any provider without credentials.
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
from lily_host.dev.embedded_redis import RedisServer
from lily_host.dev.standins import DevContext, DevStandIn, start_standins, stop_standins
from lily_host.runtime.host import Host
from lily_host.runtime.registry import PluginRegistry, PluginState
from lily_host.web.api_auth import DEV_SESSION
from lily_host.web.app import create_app

DEMO_TENANT = "demo"
DEV_ENV_FILE = "dev.env"
#: What `lily dev` shares with the other commands run beside it.
SHARED_VARIABLES = ("REDIS_URL", "LILY_ENV", "LILY_DEV_CREDENTIALS", "LILY_PUBLIC_URL", "LILY_ADMIN_TOKEN")
DEV_ADMIN_TOKEN = "dev-admin-token"


def run_dev(*, port: int, bind_host: str) -> None:
    os.environ.setdefault("LILY_ENV", "development")
    os.environ.setdefault("LILY_DEV_CREDENTIALS", "1")
    os.environ.setdefault("LILY_PUBLIC_URL", f"http://localhost:{port}")
    os.environ.setdefault("LILY_ADMIN_TOKEN", DEV_ADMIN_TOKEN)
    data_dir = Path(os.environ.get("LILY_DATA_DIR", ".lily"))
    embedded: RedisServer | None = None
    if not os.environ.get("REDIS_URL"):
        embedded = RedisServer(data_dir / "redis", appendonly=True).start()
        os.environ["REDIS_URL"] = embedded.url
    standins: dict[str, DevStandIn] = {}
    try:
        # Local stand-ins first (a plugin's fake provider): their variables configure the plugins.
        context = DevContext(data_dir, os.environ["LILY_PUBLIC_URL"], dict(os.environ))
        standins = start_standins(PluginRegistry(HostSettings()), context)
        # Other `lily` commands run in this folder (simulate, outbox, tenants) talk to this instance.
        write_dev_environment(data_dir, extra=[name for standin in standins.values() for name in standin.env])
        settings = HostSettings()
        app = create_app(settings, run_worker=True)
        app.config[DEV_SESSION] = True  # GET /dev/outbox without the admin token, on this laptop only
        host: Host = app.extensions["lily"]

        @app.before_serving
        async def welcome() -> None:
            api_key = await ensure_demo_tenant(host)
            click.echo(
                banner(
                    host,
                    port=port,
                    bind_host=bind_host,
                    api_key=api_key,
                    embedded=embedded is not None,
                    standins=standins,
                )
            )

        asyncio.run(_serve(app, f"{bind_host}:{port}"))
    finally:
        stop_standins(standins)
        (data_dir / DEV_ENV_FILE).unlink(missing_ok=True)
        if embedded is not None:
            embedded.stop()


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
    standins: Mapping[str, DevStandIn] | None = None,
) -> str:
    base = f"http://{bind_host}:{port}"
    lines = [
        "",
        f"Lily is running at {base}  (Ctrl-C stops it)",
        f"  Redis:       {'embedded, data in .lily/redis' if embedded else os.environ['REDIS_URL']}",
        f"  Admin token: {host.settings.admin_token}",
        f"  Demo tenant: {DEMO_TENANT}   API key: {api_key}",
        f"  Health:      {base}/health     Metrics: {base}/metrics     Outbox: {base}/dev/outbox",
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
            note += " (development credentials; outbound SMS go to the outbox)"
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
    lines.append("")
    return "\n".join(lines)


def write_dev_environment(data_dir: Path, extra: Sequence[str] = ()) -> None:
    """``extra``: more variables to share (the stand-ins': the commands beside must see the same fakes)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={os.environ[name]}" for name in (*SHARED_VARIABLES, *extra) if name in os.environ]
    (data_dir / DEV_ENV_FILE).write_text("\n".join(lines) + "\n")


def load_dev_environment() -> None:
    """In a folder where `lily dev` runs, point this command at it (variables already set win)."""
    if os.environ.get("REDIS_URL") or os.environ.get("LILY_ENV") == "production":
        return
    path = Path(os.environ.get("LILY_DATA_DIR", ".lily")) / DEV_ENV_FILE
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name:
            os.environ.setdefault(name, value)


def lily_command() -> str:
    """How to call `lily` from this folder: a virtualenv below it (nox's) is not on the user's PATH."""
    script = Path(sys.executable).parent / "lily"
    try:
        return str(script.relative_to(Path.cwd())) if script.exists() else "lily"
    except ValueError:
        return "lily"
