"""The webhook log: every delivery — accepted, duplicate or rejected — with replay.

One Redis stream per tenant, ``lily:webhooks:log:<tenant>`` (``lily:webhooks:log:_`` for deliveries
no tenant could be named for: bad signatures, unknown numbers, malformed bodies). Each XADD trims
its stream by age — the tenant's ``retention_days`` (``LILY_WEBHOOK_LOG_DAYS`` for the unattributed
stream) — and by length, ``LILY_WEBHOOK_LOG_MAX_ENTRIES`` per stream, so the log bounds itself
without a sweeper. A tenant's stream is erased with the tenant.

An entry holds: id (the delivery id, :mod:`lily_host.correlation`), time, integration, method, path,
the endpoint's route and path parameters, tenant, outcome, HTTP status, latency, the provider's
delivery id, the tasks it created, why it was refused, whether its signature was verified, the
headers and the body — values under secret-looking names redacted (see :func:`redact_body`) — and,
for a replay, the id of the delivery it replays.

``LILY_WEBHOOK_LOG=false`` turns the log off (the bench prints what it costs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from lily_host.console.index import index_delivery
from lily_host.correlation import NO_TENANT, parse_delivery_id, ref_key

if TYPE_CHECKING:
    from lily_host.host import Host

PREFIX = "lily:webhooks:log:"
#: SET of the stream keys that exist (to list across tenants without SCAN).
STREAMS = "lily:webhooks:logs"
#: How far after its id's time an entry may have been written (a slow handler): the search window.
WRITE_WINDOW_MS = 15 * 60 * 1000
_SECRET_WORDS = ("token", "secret", "password", "authorization", "api_key", "apikey", "signature", "cookie")
REDACTED = "[redacted]"


def stream_key(tenant: str | None) -> str:
    return PREFIX + (tenant or NO_TENANT)


def _secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): (REDACTED if _secret(name) else value) for name, value in headers}


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _secret(k) else _redact_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value


def redact_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """The body as text with values under secret-looking names redacted; and whether any was.

    JSON and form bodies are parsed and re-encoded only when something is redacted (otherwise the
    bytes are kept as they came, so a replay sees the same body). Other bodies are kept as text.
    """
    text = body.decode("utf-8", "replace")
    try:
        if content_type == "application/json":
            data = json.loads(text)
            redacted = _redact_json(data)
            if redacted != data:
                return json.dumps(redacted), True
        elif content_type == "application/x-www-form-urlencoded":
            pairs = parse_qsl(text, keep_blank_values=True)
            if any(_secret(name) for name, _ in pairs):
                return urlencode([(n, REDACTED if _secret(n) else v) for n, v in pairs]), True
    except (ValueError, RecursionError):
        pass
    return text, False


@dataclass(slots=True)
class Trail:
    """What the pipeline learnt about one delivery, filled in as it goes (for the log entry)."""

    route: str = ""
    params: dict[str, str] = field(default_factory=dict)
    record_id: str | None = None
    tenant: str | None = None
    retention_days: int | None = None
    provider_id: str | None = None
    verified: bool = False
    tasks: list[str] = field(default_factory=list)
    reason: str = ""
    body: bytes = b""
    content_type: str = ""
    replay_of: str | None = None


def _decode(entry_id: Any, fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    data = {k.decode(): v.decode() for k, v in fields.items()}
    out: dict[str, Any] = {
        "id": data.get("id", ""),
        "stream_id": entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
        "at": float(data.get("at", "0")),
        "integration": data.get("integration", ""),
        "method": data.get("method", "POST"),
        "path": data.get("path", ""),
        "route": data.get("route", ""),
        "params": json.loads(data.get("params") or "{}"),
        "tenant": data.get("tenant") or None,
        "outcome": data.get("outcome", ""),
        "status": int(data.get("status", "0")),
        "latency_ms": float(data.get("latency_ms", "0")),
        "provider_id": data.get("provider_id") or None,
        "tasks": [t for t in data.get("tasks", "").split(",") if t],
        "reason": data.get("reason", ""),
        "verified": data.get("verified") == "1",
        "redacted": data.get("redacted") == "1",
        "remote_addr": data.get("remote_addr") or None,
        "replay_of": data.get("replay_of") or None,
        "content_type": data.get("content_type", ""),
        "headers": json.loads(data.get("headers") or "{}"),
        "body": data.get("body", ""),
    }
    return out


def summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry without headers and body (listings)."""
    return {k: v for k, v in entry.items() if k not in ("headers", "body")}


class WebhookLog:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.redis = host.redis
        self.settings = host.settings

    @property
    def enabled(self) -> bool:
        return bool(self.settings.webhook_log)

    async def record(
        self,
        *,
        integration: str,
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]],
        remote_addr: str | None,
        trail: Trail,
        outcome: str,
        status: int,
        latency: float,
    ) -> str:
        """Append one delivery; returns its id."""
        now = time.time()
        record_id = trail.record_id
        if record_id is None or parse_delivery_id(record_id) is None:
            from lily_host.correlation import new_delivery_id

            record_id = new_delivery_id(trail.tenant, now)
        body, redacted = redact_body(trail.body[: self.settings.webhook_log_body_bytes], trail.content_type)
        fields = {
            "id": record_id,
            "at": repr(now),
            "integration": integration,
            "method": method,
            "path": path,
            "route": trail.route,
            "params": json.dumps(trail.params) if trail.params else "",
            "tenant": trail.tenant or "",
            "outcome": outcome,
            "status": str(status),
            "latency_ms": f"{latency * 1000:.3f}",
            "provider_id": trail.provider_id or "",
            "tasks": ",".join(trail.tasks),
            "reason": trail.reason[:500],
            "verified": "1" if trail.verified else "0",
            "redacted": "1" if redacted else "0",
            "remote_addr": remote_addr or "",
            "replay_of": trail.replay_of or "",
            "content_type": trail.content_type,
            "headers": json.dumps(redact_headers(headers)),
            "body": body,
        }
        key = stream_key(trail.tenant)
        days = trail.retention_days if trail.tenant and trail.retention_days else self.settings.webhook_log_days
        min_id = int((now - days * 86400) * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(key, fields, maxlen=self.settings.webhook_log_max_entries, approximate=True)
        # Exact by age (cheap: usually nothing to remove), approximate by length (whole nodes).
        pipe.xtrim(key, minid=min_id, approximate=False)
        pipe.sadd(STREAMS, key)
        trace_ttl = int(self.settings.trace_days * 86400)
        if trail.provider_id and trace_ttl > 0:
            pipe.set(ref_key(trail.provider_id), record_id, ex=trace_ttl)
            head = trail.provider_id.partition(":")[0]
            if head != trail.provider_id:
                pipe.set(ref_key(head), record_id, ex=trace_ttl)
        # The console's cross-tenant summary and per-minute counts, in the same round trip.
        index_delivery(pipe, fields, now, self.settings.webhook_log_days)
        await pipe.execute()
        return record_id

    # --- reading -----------------------------------------------------------------------------------

    async def get(self, record_id: str) -> dict[str, Any] | None:
        parsed = parse_delivery_id(record_id)
        if parsed is None:
            return None
        tenant, ms = parsed
        start, end = f"{ms - 1000}-0", f"{ms + WRITE_WINDOW_MS}-0"
        key = stream_key(tenant)
        while True:
            batch = await self.redis.xrange(key, start, end, count=500)
            for entry_id, fields in batch:
                if fields.get(b"id", b"").decode() == record_id:
                    return _decode(entry_id, fields)
            if len(batch) < 500:
                return None
            start = "(" + batch[-1][0].decode()

    async def streams(self, tenant: str | None = None) -> list[str]:
        if tenant is not None:
            return [stream_key(tenant)]
        return sorted(raw.decode() for raw in await self.redis.smembers(STREAMS))

    async def list(
        self,
        *,
        tenant: str | None = None,
        integration: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: str | None = None,
        replay_of: str | None = None,
        limit: int = 50,
        scan_limit: int = 20000,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Entries newest first matching every filter given, and the cursor of the next page (or None).

        ``before`` is a cursor (a stream id) from a previous page; ``since``/``until`` are Unix times.
        At most ``scan_limit`` entries are read per stream, so a rare filter over a long log ends.
        """
        wanted = set(outcome.split(",")) if outcome else None
        end = "(" + before if before else (f"{int(until * 1000)}-99999999" if until else "+")
        start = f"{int(since * 1000)}-0" if since else "-"
        matches: list[dict[str, Any]] = []
        more = False
        for key in await self.streams(tenant):
            cursor, scanned = end, 0
            found_here = 0
            while scanned < scan_limit and found_here <= limit:
                batch = await self.redis.xrevrange(key, cursor, start, count=min(500, scan_limit - scanned))
                if not batch:
                    break
                scanned += len(batch)
                for entry_id, fields in batch:
                    entry = _decode(entry_id, fields)
                    if integration and entry["integration"] != integration:
                        continue
                    if wanted and entry["outcome"] not in wanted:
                        continue
                    if replay_of and entry["replay_of"] != replay_of:
                        continue
                    matches.append(entry)
                    found_here += 1
                cursor = "(" + batch[-1][0].decode()
                if len(batch) < 500:
                    break
            if found_here > limit:
                more = True
        matches.sort(key=lambda e: _stream_order(e["stream_id"]), reverse=True)
        page = matches[:limit]
        more = more or len(matches) > limit
        return page, (page[-1]["stream_id"] if more and page else None)

    async def erase(self, tenant: str) -> int:
        key = stream_key(tenant)
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(key)
        pipe.srem(STREAMS, key)
        removed, _ = await pipe.execute()
        return int(removed)


def _stream_order(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)
