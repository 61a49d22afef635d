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
from pathlib import Path
from typing import Any

import click

from lily_host.app import create_app
from lily_host.host import Host
from lily_host.plugins import PluginState
from lily_host.redis_connect import redis_target
from lily_host.redis_server import RedisServer
from lily_host.settings import HostSettings

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
)
DEV_ADMIN_TOKEN = "dev-admin-token"


def run_dev(*, port: int, bind_host: str) -> None:
    os.environ.setdefault("LILY_ENV", "development")
    os.environ.setdefault("LILY_DEV_CREDENTIALS", "1")
    os.environ.setdefault("LILY_PUBLIC_URL", f"http://localhost:{port}")
    os.environ.setdefault("LILY_ADMIN_TOKEN", DEV_ADMIN_TOKEN)
    data_dir = Path(os.environ.get("LILY_DATA_DIR", ".lily"))
    embedded: RedisServer | None = None
    if not os.environ.get("REDIS_URL") and not os.environ.get("REDIS_SENTINELS"):
        embedded = RedisServer(data_dir / "redis", appendonly=True).start()
        os.environ["REDIS_URL"] = embedded.url
    # Other `lily` commands run in this folder (simulate, outbox, tenants) talk to this instance.
    write_dev_environment(data_dir)
    try:
        settings = HostSettings()
        app = create_app(settings, run_worker=True)
        host: Host = app.extensions["lily"]

        @app.before_serving
        async def welcome() -> None:
            api_key = await ensure_demo_tenant(host)
            click.echo(banner(host, port=port, bind_host=bind_host, api_key=api_key, embedded=embedded is not None))

        asyncio.run(_serve(app, f"{bind_host}:{port}"))
    finally:
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
    """Create the demo tenant (once) with each plugin's documented demo settings; mint a fresh key."""
    if await host.tenants.get(DEMO_TENANT) is None:
        await host.tenants.create(
            DEMO_TENANT,
            "Demo Pressure Washing",
            timezone="America/New_York",
            review_link="https://g.page/r/demo-review",
            contact_phone="+15555550100",
        )
        for name, record in host.registry.records.items():
            model = record.tenant_settings_model
            demo = getattr(model, "lily_dev_tenant", None) if model is not None else None
            if record.active and isinstance(demo, dict):
                await host.tenants.set_plugin_settings(DEMO_TENANT, name, demo)
    _key_id, secret = await host.tenants.mint_key(DEMO_TENANT, "lily dev")
    return secret


def banner(host: Host, *, port: int, bind_host: str, api_key: str, embedded: bool) -> str:
    base = f"http://{bind_host}:{port}"
    lines = [
        "",
        f"Lily is running at {base}  (Ctrl-C stops it)",
        f"  Redis:       {'embedded, data in .lily/redis' if embedded else _redis_where(host)}",
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
    if host.registry.simulations:
        lines.append("")
        lines.append("Try a flow with a signed sample request, then look at the outbox:")
        lily = lily_command()
        for sim_name, (_owner, simulation) in sorted(host.registry.simulations.items()):
            lines.append(f"  {lily} simulate {sim_name} --tenant {DEMO_TENANT}     # {simulation.description}")
        lines.append(f"  {lily} outbox")
    lines.append("")
    return "\n".join(lines)


def _redis_where(host: Host) -> str:
    target = redis_target(host.settings)
    return target.describe() if target is not None else "(not configured)"


def write_dev_environment(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={os.environ[name]}" for name in SHARED_VARIABLES if name in os.environ]
    (data_dir / DEV_ENV_FILE).write_text("\n".join(lines) + "\n")


def load_dev_environment() -> None:
    """In a folder where `lily dev` runs, point this command at it (variables already set win)."""
    if os.environ.get("REDIS_URL") or os.environ.get("REDIS_SENTINELS") or os.environ.get("LILY_ENV") == "production":
        return
    path = Path(os.environ.get("LILY_DATA_DIR", ".lily")) / DEV_ENV_FILE
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name in SHARED_VARIABLES:
            os.environ.setdefault(name, value)


def lily_command() -> str:
    """How to call `lily` from this folder: a virtualenv below it (nox's) is not on the user's PATH."""
    script = Path(sys.executable).parent / "lily"
    try:
        return str(script.relative_to(Path.cwd())) if script.exists() else "lily"
    except ValueError:
        return "lily"
