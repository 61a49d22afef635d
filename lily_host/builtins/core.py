"""The host's own built-in plugin: the dev outbox channel, its routes (outbox, sample photo), the Redis health check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response, jsonify, request

from lily_host.plugin_api.contract import Capability, HealthCheck, HealthResult, HealthState, Routes
from lily_host.plugin_api.host_api import LilyHost
from lily_host.plugin_api.markers import hookimpl
from lily_host.runtime.host import current_host
from lily_host.sms.outbox import Outbox, OutboxChannel, held_texts

#: The outbox holds customers' numbers and texts: the web app guards these routes (open only in a
#: ``lily dev`` session, otherwise behind the admin token; see ``lily_host.web.api_auth``).
dev_routes = Blueprint("lily_dev", __name__)


@dev_routes.get("/outbox")
async def show_outbox() -> Any:
    host = current_host()
    if host.settings.is_production:
        return jsonify({"error": "not_found", "message": "the outbox exists only in development"}), 404
    tenant = request.args.get("tenant")
    tenants = await host.tenants.all() if tenant is None else [t for t in [await host.tenants.get(tenant)] if t]
    return jsonify(
        {
            "messages": await Outbox(host.redis).messages(tenant),
            "held": await held_texts(host.messaging, tenants),
        }
    )


#: What `lily simulate twilio.mms_photo` sends as its photo: JPEG-shaped bytes (S3 stores them as sent).
SAMPLE_PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"lily sample photo " * 8 + b"\xff\xd9"


@dev_routes.get("/sample-photo.jpg")
async def sample_photo() -> Any:
    """Stands in for the media URL of a simulated MMS (development only)."""
    if current_host().settings.is_production:
        return jsonify({"error": "not_found", "message": "sample media exist only in development"}), 404
    return Response(SAMPLE_PHOTO, content_type="image/jpeg")


async def _redis_health(host: LilyHost) -> HealthResult:
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
