"""One correlation id from webhook to side effect: the delivery id.

Every webhook delivery gets a delivery record (:mod:`lily_host.operations.webhook_log`) whose id is made
before the handler runs. The pipeline sets it here while the handler runs; the worker sets it while
a task runs (from the task record). Whatever is scheduled or stored meanwhile — follow-up tasks,
message records, bookings, calendar writes, photos — reads it from here, so no call site has to
pass it along by hand, and structlog binds it into every log line of the delivery and its tasks.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import structlog

from lily_host.plugin_api.key_registry import track_keys

#: The delivery being handled (webhook pipeline) or the delivery a running task descends from.
_DELIVERY: ContextVar[str | None] = ContextVar("lily_delivery_id", default=None)

#: Stands for "no tenant" in a delivery id (tenant ids are lowercase slugs: never "_").
NO_TENANT = "_"


def new_delivery_id(tenant: str | None, now: float | None = None) -> str:
    """``<tenant>.<unix ms>.<8 hex>``: the tenant says which log holds it, the time where in it."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{tenant or NO_TENANT}.{ms}.{os.urandom(4).hex()}"


def parse_delivery_id(text: str) -> tuple[str | None, int] | None:
    """(tenant or None, unix ms) of a delivery id; None when ``text`` is not one."""
    parts = text.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 8:
        return None
    tenant = None if parts[0] == NO_TENANT else parts[0]
    if tenant is not None and not all(c.isalnum() or c == "-" for c in tenant):
        return None
    return tenant, int(parts[1])


def current_delivery() -> str | None:
    """The delivery id of the webhook or task being handled in this context, if any."""
    return _DELIVERY.get()


@contextlib.contextmanager
def delivery_scope(delivery_id: str | None) -> Iterator[None]:
    """Within the block, :func:`current_delivery` is ``delivery_id`` and log lines carry it."""
    token = _DELIVERY.set(delivery_id)
    bound = structlog.contextvars.bind_contextvars(delivery=delivery_id) if delivery_id else {}
    try:
        yield
    finally:
        if bound:
            structlog.contextvars.reset_contextvars(**bound)
        _DELIVERY.reset(token)


# --- the effects index: what a delivery led to ---------------------------------------------------------

#: Keys of the index (``lily:trace:<delivery id>`` HASH "<kind>:<id>" → JSON; ``lily:trace:ref:<id>``
#: → delivery id). Both expire after ``LILY_TRACE_DAYS``.
TRACE_PREFIX = "lily:trace:"
REF_PREFIX = "lily:trace:ref:"


def effects_key(delivery_id: str) -> str:
    return TRACE_PREFIX + delivery_id


def ref_key(ref: str) -> str:
    return REF_PREFIX + ref


def effects_pattern(tenant_glob: str) -> str:
    """The SCAN pattern of a tenant's effect indexes (delivery ids start with the tenant id)."""
    return f"{TRACE_PREFIX}{tenant_glob}.*"


def add_effect(
    pipe: Any,
    delivery_id: str,
    kind: str,
    effect_id: str,
    data: Mapping[str, object],
    ttl: int,
    refs: tuple[str, ...] = (),
) -> None:
    """Queue, into a Redis pipeline, the writes that tie one effect to its delivery."""
    key = effects_key(delivery_id)
    parsed = parse_delivery_id(delivery_id)
    if parsed is not None and parsed[0] is not None:
        # A tenant's delivery: its index is erased with the tenant, found through its key registry.
        track_keys(pipe, parsed[0], key, ttl=ttl)
    pipe.hset(key, f"{kind}:{effect_id}", json.dumps(data, separators=(",", ":"), default=str))
    pipe.expire(key, ttl)
    for ref in (effect_id, *refs):
        if ref:
            pipe.set(ref_key(ref), delivery_id, ex=ttl)


async def note_effect(
    host: Any,
    kind: str,
    effect_id: str,
    data: dict[str, object] | None = None,
    *,
    refs: tuple[str, ...] = (),
    delivery: str | None = None,
) -> str | None:
    """Record that the current delivery (or ``delivery``) led to ``kind`` ``effect_id``.

    ``kind`` is ``sms``, ``booking``, ``calendar``, ``photo``...; ``refs`` are other ids that should
    find the delivery too (a provider's message id). A no-op outside a delivery. Returns the
    delivery id it was recorded under. ``host``: the running host (its Redis and ``LILY_TRACE_DAYS``).
    """
    return await record_effect(
        host.redis, host.settings.trace_days, kind, effect_id, data, refs=refs, delivery=delivery
    )


async def record_effect(
    redis: Any,
    trace_days: float,
    kind: str,
    effect_id: str,
    data: dict[str, object] | None = None,
    *,
    refs: tuple[str, ...] = (),
    delivery: str | None = None,
) -> str | None:
    """:func:`note_effect` for a caller handed Redis and the trace period rather than the host."""
    delivery = delivery or current_delivery()
    if not delivery:
        return None
    ttl = int(trace_days * 86400)
    if ttl <= 0:
        return delivery
    pipe = redis.pipeline(transaction=False)
    add_effect(pipe, delivery, kind, effect_id, {"kind": kind, "id": effect_id, **(data or {})}, ttl, refs)
    await pipe.execute()
    return delivery
