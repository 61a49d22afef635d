"""The host's own built-in plugin: the dev outbox channel, its route, and the Redis health check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, current_app, jsonify, request

from lily_host import hookimpl
from lily_host.auth import admin_refusal
from lily_host.contract import Capability, HealthCheck, HealthResult, HealthState, Routes
from lily_host.host import Host, current_host
from lily_host.outbox import Outbox, OutboxChannel

dev_routes = Blueprint("lily_dev", __name__)


#: Set on the app by ``lily dev``: the one server whose outbox anyone on the machine may read.
DEV_SESSION = "LILY_DEV_SESSION"


@dev_routes.get("/outbox")
async def show_outbox() -> Any:
    host = current_host()
    if host.settings.is_production:
        return jsonify({"error": "not_found", "message": "the outbox exists only in development"}), 404
    # The outbox holds customers' numbers and texts: open only in a `lily dev` session on a laptop,
    # otherwise (a development or test server somewhere) behind the admin token.
    if not current_app.config.get(DEV_SESSION):
        refusal = await admin_refusal()
        if refusal is not None:
            return refusal
    return jsonify({"messages": await Outbox(host.redis).messages(request.args.get("tenant"))})


async def _redis_health(host: Host) -> HealthResult:
    await host.redis.ping()
    return HealthResult(HealthState.OK, "redis reachable")


@hookimpl
def register_capabilities(register: Callable[[Capability], None]) -> None:
    # Lowest priority: any real SMS plugin that is configured wins over the outbox.
    register(Capability("sms", OutboxChannel(), priority=-100))


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(dev_routes, url_prefix="/dev", always_available=True))


@hookimpl
def register_health_checks(register: Callable[[HealthCheck], None]) -> None:
    register(HealthCheck("redis", _redis_health, timeout=2.0))
