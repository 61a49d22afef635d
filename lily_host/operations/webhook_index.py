"""What the console needs indexed so its pages stay cheap at 10,000 tenants and 100,000 deliveries.

The webhook log keeps one stream per tenant (:mod:`lily_host.operations.webhook_log`), which is right for a
tenant's page and for erasure but would make "the newest deliveries of every tenant" read one
stream per tenant. So every logged delivery is also written, by the log's own append script, to:

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

import json
import time
from collections.abc import Mapping
from typing import Any

import orjson

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
#: Entries are encoded on the request path of every webhook: orjson, ~15x the stdlib encoder here.
_ENCODE_OPTIONS = orjson.OPT_NON_STR_KEYS


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str, option=_ENCODE_OPTIONS).decode()


def index_args(
    entry: Mapping[str, Any], now: float, days: float, *, trim_by_age: bool = True
) -> tuple[list[str], list[str]]:
    """The keys and arguments the webhook log's append script writes the console's index with.

    Keys: the summary stream, the stream of failures ('' for a success), the minute's counts.
    Arguments: the summary (JSON), the min id by age ('' when ``trim_by_age`` is off: the trim runs at
    most every few seconds), both streams' caps, the count's field and ttl.
    """
    get = entry.get
    outcome = str(get("outcome") or "")
    summary = {
        "id": get("id"),
        "at": get("at"),
        "integration": get("integration"),
        "tenant": get("tenant"),
        "outcome": get("outcome"),
        "status": get("status"),
        "latency_ms": get("latency_ms"),
        "replay_of": get("replay_of"),
        "ntasks": len(get("tasks") or ()),
        # What lily_host.runtime.webhook_replay.replayable() asks, so a bulk replay counts without
        # reading each entry.
        "replayable": bool(get("verified") and get("route")),
    }
    keys = [GLOBAL_STREAM, "" if outcome in SUCCESS else FAILED_STREAM, MINUTE_PREFIX + str(int(now // 60))]
    values = [
        _json(summary),
        str(int((now - days * 86400) * 1000)) if trim_by_age else "",
        str(GLOBAL_MAX_ENTRIES),
        str(FAILED_MAX_ENTRIES),
        f"{entry.get('integration') or ''}|{outcome}",
        str(MINUTE_TTL_SECONDS),
    ]
    return keys, values


def decode_summary(entry_id: bytes | str, raw: Mapping[bytes, bytes]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw.get(b"s", b"{}"))
    return {
        "id": str(data.get("id") or ""),
        "stream_id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        "at": float(data.get("at") or 0),
        "integration": str(data.get("integration") or ""),
        "tenant": data.get("tenant") or None,
        "outcome": str(data.get("outcome") or ""),
        "status": int(data.get("status") or 0),
        "latency_ms": float(data.get("latency_ms") or 0),
        "replay_of": data.get("replay_of") or None,
        "ntasks": int(data.get("ntasks") or 0),
        "replayable": bool(data.get("replayable")),
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
