"""What the console needs indexed so its pages stay cheap at 10,000 tenants and 100,000 deliveries.

The webhook log keeps one stream per tenant (:mod:`lily_host.webhook_log`), which is right for a
tenant's page and for erasure but would make "the newest deliveries of every tenant" read one
stream per tenant. So every logged delivery is also written, in the log's own pipeline, to:

- ``lily:console:webhooks``: one stream across tenants holding only a summary (id, time,
  integration, tenant, outcome, status, latency, task count, replay_of; never headers, body,
  numbers or reasons), trimmed by ``LILY_WEBHOOK_LOG_DAYS`` and to :data:`GLOBAL_MAX_ENTRIES`;
- ``lily:console:webhooks:failed``: the summaries of failed deliveries only (bulk replay, filters);
- ``lily:console:wh:m:<minute>``: a hash ``integration|outcome`` → count per minute, kept two
  hours, so "webhooks in the last hour" is 60 small reads whatever the traffic.

The detail of a delivery is always read from its tenant's stream (by id), so an erased tenant's
deliveries vanish from the console with its stream; the summaries left here hold no personal data.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

GLOBAL_STREAM = "lily:console:webhooks"
#: The same summaries of failed deliveries only (every outcome but accepted and duplicate), so
#: "what failed" and bulk replay read failures, not the whole traffic.
FAILED_STREAM = "lily:console:webhooks:failed"
SUCCESS = frozenset({"accepted", "duplicate"})
FAILED_MAX_ENTRIES = 50_000
MINUTE_PREFIX = "lily:console:wh:m:"
#: Summaries kept across tenants (approximate trim: whole stream nodes).
GLOBAL_MAX_ENTRIES = 200_000
MINUTE_TTL_SECONDS = 2 * 3600
_SUMMARY_FIELDS = ("id", "at", "integration", "tenant", "outcome", "status", "latency_ms", "replay_of")


def index_delivery(pipe: Any, fields: Mapping[str, str], now: float, days: float) -> None:
    """Queue, into the webhook log's pipeline, the console's summary and per-minute count of a delivery."""
    summary = {name: fields.get(name, "") for name in _SUMMARY_FIELDS}
    summary["ntasks"] = str(len([t for t in fields.get("tasks", "").split(",") if t]))
    # What lily_host.replay.replayable() asks, so a bulk replay counts without reading each entry.
    summary["replayable"] = "1" if fields.get("verified") == "1" and fields.get("route") else "0"
    min_id = int((now - days * 86400) * 1000)
    pipe.xadd(GLOBAL_STREAM, summary, maxlen=GLOBAL_MAX_ENTRIES, approximate=True)
    pipe.xtrim(GLOBAL_STREAM, minid=min_id, approximate=True)
    if fields.get("outcome") not in SUCCESS:
        pipe.xadd(FAILED_STREAM, summary, maxlen=FAILED_MAX_ENTRIES, approximate=True)
        pipe.xtrim(FAILED_STREAM, minid=min_id, approximate=True)
    minute = MINUTE_PREFIX + str(int(now // 60))
    pipe.hincrby(minute, f"{fields.get('integration', '')}|{fields.get('outcome', '')}", 1)
    pipe.expire(minute, MINUTE_TTL_SECONDS)


def decode_summary(entry_id: bytes | str, raw: Mapping[bytes, bytes]) -> dict[str, Any]:
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return {
        "id": data.get("id", ""),
        "stream_id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        "at": float(data.get("at") or 0),
        "integration": data.get("integration", ""),
        "tenant": data.get("tenant") or None,
        "outcome": data.get("outcome", ""),
        "status": int(data.get("status") or 0),
        "latency_ms": float(data.get("latency_ms") or 0),
        "replay_of": data.get("replay_of") or None,
        "ntasks": int(data.get("ntasks") or 0),
        "replayable": data.get("replayable") == "1",
    }


async def recent(
    redis: Any,
    *,
    integration: str | None = None,
    outcomes: set[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    before: str | None = None,
    limit: int = 50,
    scan_limit: int = 5000,
) -> tuple[list[dict[str, Any]], str | None, int]:
    """Summaries newest first across tenants: (page, cursor of the next page, entries scanned).

    At most ``scan_limit`` summaries are read per call, so a rare filter answers quickly with a
    cursor to look further back rather than reading the whole index.
    """
    end = "(" + before if before else (f"{int(until * 1000)}-99999999" if until else "+")
    start = f"{int(since * 1000)}-0" if since else "-"
    stream = FAILED_STREAM if outcomes and not outcomes & SUCCESS else GLOBAL_STREAM
    page: list[dict[str, Any]] = []
    scanned = 0
    cursor = end
    last_id: str | None = None
    exhausted = False
    while scanned < scan_limit and len(page) < limit:
        batch = await redis.xrevrange(stream, cursor, start, count=min(500, scan_limit - scanned))
        if not batch:
            exhausted = True
            break
        for entry_id, fields in batch:
            scanned += 1
            last_id = entry_id.decode()
            entry = decode_summary(entry_id, fields)
            if integration and entry["integration"] != integration:
                continue
            if outcomes and entry["outcome"] not in outcomes:
                continue
            page.append(entry)
            if len(page) == limit:
                break
        cursor = "(" + batch[-1][0].decode()
        if len(batch) < 500 and len(page) < limit and scanned < scan_limit:
            exhausted = True
            break
    return page, (None if exhausted or last_id is None else last_id), scanned


async def last_hour(redis: Any, now: float | None = None) -> dict[str, dict[str, int]]:
    """integration → outcome → deliveries in the last 60 minutes."""
    now = time.time() if now is None else now
    minute = int(now // 60)
    pipe = redis.pipeline(transaction=False)
    for m in range(minute - 59, minute + 1):
        pipe.hgetall(MINUTE_PREFIX + str(m))
    counts: dict[str, dict[str, int]] = {}
    for bucket in await pipe.execute():
        for raw_field, raw_count in bucket.items():
            integration, _, outcome = raw_field.decode().partition("|")
            by_outcome = counts.setdefault(integration, {})
            by_outcome[outcome] = by_outcome.get(outcome, 0) + int(raw_count)
    return dict(sorted(counts.items()))
