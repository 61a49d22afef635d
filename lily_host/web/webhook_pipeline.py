"""The one path every inbound webhook takes.

size limit → content type → parse → tenant → signature → idempotency → handler → atomic commit.
The handler only says what should happen (events, tasks); the commit writes the idempotency key
and every task in one Redis script, so a duplicate schedules nothing, a failure before the commit
stores nothing (the provider retries), and nothing valid is lost.

Two doors lead to that path: :mod:`lily_host.web.front_door` (POSTs to a webhook's fixed path, ahead
of Quart) and :meth:`WebhookRoute.quart_view` (the rest: other methods, paths with converters such
as ``/webhooks/calcom/<tenant_id>``). Each turns its request into an :class:`Inbound` and calls
:meth:`WebhookRoute.respond`.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from quart import Response
from quart.globals import request_ctx
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from lily_host.observability.log import get_logger
from lily_host.observability.metrics import WEBHOOK_SECONDS, WEBHOOKS
from lily_host.operations.correlation import delivery_scope, new_delivery_id
from lily_host.operations.webhook_log import Trail
from lily_host.plugin_api.contract import (
    RequestHeaders,
    WebhookEndpoint,
    WebhookRequest,
    WebhookResponse,
    delivery_guard,
)
from lily_host.plugin_api.errors import ConfigurationError, UnknownTenant, WebhookRejected
from lily_host.queue.group_commit import NotReplicated
from lily_host.runtime.host import Host, current_host
from lily_host.runtime.registry import PluginState
from lily_host.web.load_shedding import LoadShedder, client_source

log = get_logger("lily.webhooks")

View = Callable[..., Awaitable[Any]]


@dataclass(slots=True)
class Inbound:
    """What the pipeline needs of an HTTP request, whichever door it came through."""

    method: str
    scheme: str
    path: str
    query_string: bytes
    headers: RequestHeaders
    remote_addr: str | None
    path_params: dict[str, str]
    #: Reads the body: the bytes, or None once more than ``limit`` bytes arrived.
    read_body: Callable[[int], Awaitable[bytes | None]]


class WebhookRoute:
    """One plugin's endpoint, with its metric children looked up once."""

    def __init__(self, plugin: str, endpoint: WebhookEndpoint, shedder: LoadShedder | None = None) -> None:
        self.plugin = plugin
        self.endpoint = endpoint
        #: Load shedding (one per app); None: every request goes on to the pipeline.
        self.shedder = shedder
        self.integration = endpoint.integration or plugin
        # ``labels()`` takes a lock and builds a key on every call: look each child up once.
        self._seconds = WEBHOOK_SECONDS.labels(self.integration)
        self._counters: dict[str, Any] = {}

    async def respond(self, host: Host, inbound: Inbound) -> Response | WebhookResponse:
        started = time.perf_counter()
        trail = Trail(route=self.endpoint.path, params=inbound.path_params)
        shedding = self.shedder
        if shedding is None:
            outcome, response = await _run(host, self, inbound, trail)
            self._finish(host, inbound, trail, outcome, response, started)
            return response
        source = None
        if shedding.sources.enabled:
            source = client_source(inbound.remote_addr, inbound.headers.get("X-Forwarded-For"), shedding.trusted)
        outcome, response = _shed(shedding, source)
        if outcome == "rate_limited":
            await shedding.hold()
        elif not outcome:
            outcome, response = await _run(host, self, inbound, trail)
            # A rejected request (bad signature, no such tenant, malformed) spends its source's budget.
            if source is not None and outcome not in _NOT_CHARGED:
                shedding.sources.charge(source)
            self._finish(host, inbound, trail, outcome, response, started)
            return response
        # Shed before it was read: counted, not logged (logging is work the shedding saves).
        self._count(outcome, time.perf_counter() - started)
        return response

    def _finish(
        self,
        host: Host,
        inbound: Inbound,
        trail: Trail,
        outcome: str,
        response: Response | WebhookResponse,
        started: float,
    ) -> None:
        elapsed = time.perf_counter() - started
        self._count(outcome, elapsed)
        webhook_log = host.webhook_log
        if webhook_log.enabled:
            status = response.status if isinstance(response, WebhookResponse) else response.status_code
            try:
                webhook_log.record(
                    integration=self.integration,
                    method=inbound.method,
                    path=inbound.path,
                    headers=inbound.headers,
                    remote_addr=inbound.remote_addr,
                    trail=trail,
                    outcome=outcome,
                    status=status,
                    latency=elapsed,
                )
            except Exception as error:  # the answer is decided; a log write must not turn it into a 500
                log.warning("webhook log write failed", integration=self.integration, error=repr(error))

    def _count(self, outcome: str, elapsed: float) -> None:
        counter = self._counters.get(outcome)
        if counter is None:
            counter = self._counters[outcome] = WEBHOOKS.labels(self.integration, outcome)
        counter.inc()
        self._seconds.observe(elapsed)

    def quart_view(self) -> View:
        """The Quart view: the same pipeline for requests the front door leaves to Quart."""

        async def view(**path_params: str) -> Response:
            request = request_ctx.request
            inbound = Inbound(
                method=request.method,
                scheme=request.scheme,
                path=request.path,
                query_string=request.query_string,
                headers=RequestHeaders(request.headers.items()),
                remote_addr=request.remote_addr,
                path_params=path_params,
                read_body=functools.partial(_read_quart_body, request.body),
            )
            response = await self.respond(current_host(), inbound)
            return response.to_quart() if isinstance(response, WebhookResponse) else response

        view.__name__ = (
            f"webhook_{self.plugin}_{self.endpoint.path}".replace("/", "_").replace("<", "").replace(">", "")
        )
        return view


async def _read_quart_body(body: AsyncIterator[bytes], limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except RequestEntityTooLarge:  # the app-wide MAX_CONTENT_LENGTH tripped first
        return None
    except RequestTimeout as error:  # Quart's BODY_TIMEOUT
        raise TimeoutError from error
    return b"".join(chunks)


def _error(
    status: int, outcome: str, message: str, *, retry_after: int | None = None, **extra: Any
) -> tuple[str, WebhookResponse]:
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return outcome, WebhookResponse.json({"error": outcome, "message": message, **extra}, status, headers)


#: Seconds a provider is asked to wait when the commit could not be confirmed on the replicas.
REPLICA_RETRY_AFTER = 5

#: The answers every request may share.
_OK = WebhookResponse.json({"ok": True})
INTERNAL_ERROR = WebhookResponse.json({"error": "error", "message": "internal error; nothing was stored"}, 500)


async def _run(
    host: Host, route: WebhookRoute, inbound: Inbound, trail: Trail
) -> tuple[str, Response | WebhookResponse]:
    outcome, response = await _pipeline(host, route, inbound, trail)
    if outcome not in ("accepted", "duplicate") and not trail.reason:
        trail.reason = _reason(response)
    return outcome, response


def _reason(response: Response | WebhookResponse) -> str:
    if isinstance(response, WebhookResponse) and response.content_type == "application/json":
        import json

        try:
            data = json.loads(response.body)
        except ValueError:
            return ""
        return str(data.get("message", "")) if isinstance(data, dict) else ""
    return ""


async def _pipeline(
    host: Host, route: WebhookRoute, inbound: Inbound, trail: Trail
) -> tuple[str, Response | WebhookResponse]:
    plugin, endpoint, integration = route.plugin, route.endpoint, route.integration
    settings = host.settings
    record = host.registry.records[plugin]
    if record.state == PluginState.NOT_CONFIGURED:
        return _error(
            503,
            "not_configured",
            f"{plugin} is not available: set {', '.join(record.missing_settings)}",
            missing=record.missing_settings,
        )
    if record.state != PluginState.LOADED:
        # Logged on every delivery: the provider retries a 503, and whoever reads the log sees why.
        log.warning("webhook refused: plugin not loaded", plugin=plugin, state=record.state.value, reason=record.error)
        return _error(503, "unavailable", f"{plugin} is not available ({record.state.value}); see the server log")
    headers = inbound.headers
    if settings.is_production and not _came_over_https(inbound, settings.trusted_proxies):
        return _error(403, "invalid", "webhooks must be delivered over https")

    limit = endpoint.max_body_bytes or settings.max_webhook_bytes
    declared = headers.get("Content-Length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):  # "²".isdigit() is true, int("²") fails
            return _error(400, "invalid", "Content-Length is not a number")
        if int(declared) > limit:
            return _error(413, "too_large", f"body exceeds {limit} bytes")
    media_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media_type not in endpoint.content_types:
        return _error(
            415,
            "unsupported_media_type",
            f"content type {media_type or '(none)'!r} is not accepted; send {', '.join(endpoint.content_types)}",
        )
    try:
        body = await inbound.read_body(limit)
    except TimeoutError:
        return _error(408, "timeout", "the body did not arrive in time")
    if body is None:
        return _error(413, "too_large", f"body exceeds {limit} bytes")
    trail.body, trail.content_type = body, media_type

    query = trail.query = inbound.query_string.decode("latin-1")
    path = inbound.path
    wreq = WebhookRequest(
        method=inbound.method,
        path=path,
        query_string=query,
        public_url=settings.public_url + path + (f"?{query}" if query else ""),
        headers=headers,
        body=body,
        content_type=media_type,
        path_params=inbound.path_params,
        settings=record.settings,
    )
    bound = log
    try:
        payload = endpoint.parse(wreq)
        tenant = await endpoint.resolve_tenant(wreq, payload, host.tenants)
        if tenant is not None and record.tenant_settings_model is not None:
            # The endpoint's plugin sees its own tenant settings (a per-tenant secret for verify).
            tenant = host.tenants.view_for(tenant, plugin)
        if tenant is not None:
            trail.tenant, trail.retention_days = tenant.id, tenant.retention_days
        endpoint.verify(wreq, payload, tenant)
        trail.verified = True
        if tenant is None and endpoint.tenant_required:
            raise UnknownTenant("no tenant matches this delivery")
        delivery_id = endpoint.delivery_id(wreq, payload)
        trail.provider_id = delivery_id
        record_id = trail.record_id = new_delivery_id(trail.tenant)
        bound = log.bind(integration=integration, tenant=trail.tenant, delivery_id=delivery_id, delivery=record_id)
        ctx = host.webhook_context(
            plugin=plugin,
            tenant=tenant,
            integration=integration,
            delivery_id=delivery_id,
            log=bound,
            record_id=record_id,
        )
        with delivery_scope(record_id):
            response = await endpoint.handle(wreq, payload, ctx)
        guard = (delivery_guard(integration, delivery_id), endpoint.dedupe_ttl) if delivery_id else None
        committed = await host.queue.schedule_many(ctx.pending, guard=guard)
    except NotReplicated as shortfall:
        # Stored on the primary only: not yet safe to acknowledge. The provider delivers again; if
        # the primary survived, the delivery guard turns that into a duplicate (nothing twice).
        bound.warning("webhook not acknowledged: replicas behind", error=str(shortfall))
        trail.reason = str(shortfall)
        return _error(503, "unavailable", "storage is catching up; please retry", retry_after=REPLICA_RETRY_AFTER)
    except WebhookRejected as rejection:
        bound.warning("webhook rejected", integration=integration, outcome=rejection.outcome, reason=rejection.reason)
        trail.reason = rejection.reason
        return _error(rejection.status, rejection.outcome, rejection.reason)
    except ConfigurationError as error:
        # Lily's own configuration (a stored secret LILY_SECRET_KEY cannot decrypt, a secret nobody
        # set): not the provider's fault and not a crash. 503 makes the provider retry once it is
        # fixed; the reason goes to the log (and the webhook log), not to the caller.
        bound.error("webhook refused: configuration", integration=integration, reason=str(error))
        trail.reason = str(error)
        return _error(503, "unavailable", "Lily cannot process this delivery right now; retry later")
    except Exception as error:
        # Nothing was committed: answering 500 makes the provider deliver again later.
        bound.exception("webhook handler failed", integration=integration)
        trail.reason = f"{type(error).__name__}: {error}"
        return _error(500, "error", "internal error; nothing was stored, please retry")

    if committed is not None:
        trail.tasks = committed
    if committed is None:
        bound.info("duplicate webhook ignored")
        duplicate = endpoint.duplicate_response(wreq, payload)
        return "duplicate", _marked_duplicate(duplicate if duplicate is not None else response)
    bound.info("webhook accepted", tasks=len(committed))
    return "accepted", response if response is not None else _OK


#: Outcomes that do not spend a source's budget: work done, or refusals that are Lily's doing.
_NOT_CHARGED = frozenset({"accepted", "duplicate", "error", "unavailable", "not_configured", "shed", "rate_limited"})


_RATE_LIMITED: dict[int, WebhookResponse] = {}


def _shed(shedding: LoadShedder, source: str | None) -> tuple[str, Response | WebhookResponse]:
    """The answer when the request is shed before any work ("" when it goes on)."""
    if source is not None:
        wait = shedding.sources.retry_after(source)
        if wait is not None:
            # The flood's answer: built once per wait, since it is what a flood gets thousands of times.
            response = _RATE_LIMITED.get(wait)
            if response is None:
                response = _RATE_LIMITED[wait] = _error(
                    429, "rate_limited", "too many rejected requests from this address; slow down", retry_after=wait
                )[1]
            return "rate_limited", response
    overload = shedding.overload
    if overload is not None:
        return _error(503, "shed", "Lily is overloaded; please retry later", retry_after=overload.retry_after)
    return "", _OK


#: The header that tells a duplicate apart (for people and `lily simulate`): providers want the same
#: body for a redelivery as for the first delivery, so the body cannot say it.
OUTCOME_HEADER = "Lily-Outcome"
_DUPLICATE_OK = WebhookResponse(_OK.body, _OK.status, _OK.content_type, ((OUTCOME_HEADER, "duplicate"),))


def _marked_duplicate(response: Response | WebhookResponse | None) -> Response | WebhookResponse:
    if response is None:
        return _DUPLICATE_OK
    if isinstance(response, WebhookResponse):
        return dataclasses.replace(response, headers=(*response.headers, (OUTCOME_HEADER, "duplicate")))
    response.headers[OUTCOME_HEADER] = "duplicate"
    return response


def _came_over_https(inbound: Inbound, trusted_proxies: list[str]) -> bool:
    if inbound.scheme == "https":
        return True
    forwarded = inbound.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and _is_trusted(inbound.remote_addr, trusted_proxies)


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
