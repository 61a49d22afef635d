"""The one path every inbound webhook takes.

size limit → content type → parse → tenant → signature → idempotency → handler → atomic commit.
The handler only says what should happen (events, tasks); the commit writes the idempotency key
and every task in one Redis script, so a duplicate schedules nothing, a failure before the commit
stores nothing (the provider retries), and nothing valid is lost.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from quart import Request, Response, jsonify
from quart.globals import request_ctx
from werkzeug.exceptions import RequestEntityTooLarge

from lily_host.contract import WebhookContext, WebhookEndpoint, WebhookRequest, delivery_guard
from lily_host.errors import UnknownTenant, WebhookRejected
from lily_host.host import current_host
from lily_host.log import get_logger
from lily_host.metrics import WEBHOOK_SECONDS, WEBHOOKS
from lily_host.plugins import PluginState

log = get_logger("lily.webhooks")

View = Callable[..., Awaitable[Any]]


def make_webhook_view(plugin: str, endpoint: WebhookEndpoint) -> View:
    integration = endpoint.integration or plugin
    # Label children, looked up once: ``labels()`` takes a lock and builds a key on every call.
    seconds = WEBHOOK_SECONDS.labels(integration)
    counters: dict[str, Any] = {}

    async def view(**path_params: str) -> Any:
        started = time.perf_counter()
        outcome, response = await _run(plugin, integration, endpoint, path_params)
        counter = counters.get(outcome)
        if counter is None:
            counter = counters[outcome] = WEBHOOKS.labels(integration, outcome)
        counter.inc()
        seconds.observe(time.perf_counter() - started)
        return response

    view.__name__ = f"webhook_{plugin}_{endpoint.path}".replace("/", "_").replace("<", "").replace(">", "")
    return view


def _error(status: int, outcome: str, message: str, **extra: Any) -> tuple[str, Any]:
    response = jsonify({"error": outcome, "message": message, **extra})
    response.status_code = status
    return outcome, response


async def _run(
    plugin: str, integration: str, endpoint: WebhookEndpoint, path_params: dict[str, str]
) -> tuple[str, Any]:
    host = current_host()
    settings = host.settings
    # The request object itself: each ``request.x`` through the context-local proxy costs a lookup.
    request = request_ctx.request
    record = host.registry.records[plugin]
    if record.state == PluginState.NOT_CONFIGURED:
        return _error(
            503,
            "not_configured",
            f"{plugin} is not available: set {', '.join(record.missing_settings)}",
            missing=record.missing_settings,
        )
    if record.state != PluginState.LOADED:
        return _error(503, "not_configured", f"{plugin} is not available ({record.state.value})")
    if settings.is_production and not _came_over_https(request, settings.trusted_proxies):
        return _error(403, "invalid", "webhooks must be delivered over https")

    limit = endpoint.max_body_bytes or settings.max_webhook_bytes
    content_length = request.content_length
    if content_length is not None and content_length > limit:
        return _error(413, "too_large", f"body exceeds {limit} bytes")
    media_type = request.mimetype
    if media_type not in endpoint.content_types:
        return _error(
            415,
            "unsupported_media_type",
            f"content type {media_type or '(none)'!r} is not accepted; send {', '.join(endpoint.content_types)}",
        )
    body = await _read_body(request, limit)
    if body is None:
        return _error(413, "too_large", f"body exceeds {limit} bytes")

    query = request.query_string.decode("latin-1")
    path = request.path
    wreq = WebhookRequest(
        method=request.method,
        path=path,
        query_string=query,
        public_url=settings.public_url + path + (f"?{query}" if query else ""),
        headers=cast(Mapping[str, str], request.headers),
        body=body,
        content_type=media_type,
        path_params=path_params,
        settings=record.settings,
    )
    bound = log
    try:
        payload = endpoint.parse(wreq)
        tenant = await endpoint.resolve_tenant(wreq, payload, host.tenants)
        endpoint.verify(wreq, payload, tenant)
        if tenant is None and endpoint.tenant_required:
            raise UnknownTenant("no tenant matches this delivery")
        delivery_id = endpoint.delivery_id(wreq, payload)
        bound = log.bind(integration=integration, tenant=tenant.id if tenant else None, delivery_id=delivery_id)
        ctx = WebhookContext(host=host, tenant=tenant, integration=integration, delivery_id=delivery_id, log=bound)
        response = await endpoint.handle(wreq, payload, ctx)
        guard = (delivery_guard(integration, delivery_id), endpoint.dedupe_ttl) if delivery_id else None
        committed = await host.queue.schedule_many(ctx.pending, guard=guard)
    except WebhookRejected as rejection:
        bound.warning("webhook rejected", integration=integration, outcome=rejection.outcome, reason=rejection.reason)
        return _error(rejection.status, rejection.outcome, rejection.reason)
    except Exception:
        # Nothing was committed: answering 500 makes the provider deliver again later.
        bound.exception("webhook handler failed", integration=integration)
        return _error(500, "error", "internal error; nothing was stored, please retry")

    if committed is None:
        bound.info("duplicate webhook ignored")
        duplicate = endpoint.duplicate_response(wreq, payload)
        return "duplicate", duplicate if duplicate is not None else (response if response is not None else _ok())
    bound.info("webhook accepted", tasks=len(committed))
    return "accepted", response if response is not None else _ok()


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None past ``limit`` bytes: also for chunked bodies that announced no length."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.body:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except RequestEntityTooLarge:  # the app-wide MAX_CONTENT_LENGTH tripped first
        return None
    return b"".join(chunks)


def _ok() -> Response:
    return jsonify({"ok": True})


def _came_over_https(request: Request, trusted_proxies: list[str]) -> bool:
    if request.scheme == "https":
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and _is_trusted(request.remote_addr, trusted_proxies)


def _is_trusted(address: str | None, trusted: list[str]) -> bool:
    if not address:
        return False
    return _address_trusted(address, tuple(trusted))


@functools.lru_cache(maxsize=1024)
def _address_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    """Whether ``address`` is in one of ``trusted``: a pure function of its inputs, so cached."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(trusted))


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            log.warning("LILY_TRUSTED_PROXIES entry is not an address or network; ignored", entry=entry)
    return tuple(networks)
