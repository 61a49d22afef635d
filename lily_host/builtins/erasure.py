"""What the host keeps for a tenant, erased when the tenant is deleted (``tenant.deleted``).

``Host.delete_tenant`` removes the tenant record, keys, secrets and lookup entries and, in the same
Redis transaction, schedules ``tenant.deleted`` to every subscriber. This built-in subscriber erases
the host's own per-tenant data: message records and their indexes, send caps, keyword markers,
jobs, bookings and automation markers. Plugins subscribe for theirs (lily-s3: the photos).

Kept on purpose: the STOP list (``lily:sms:suppressed:<tenant>``). An opt-out must go on being
honoured if the business comes back under the same id; it holds the numbers that asked not to be
texted and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lily_host.plugin_api.markers import hookimpl
from lily_host.builtins.review_requests import JobStore
from lily_host.records.booking_store import BookingStore
from lily_host.sms.compliance import cap_key, keyword_marker_key
from lily_host.plugin_api.contract import EventSubscription, RetryPolicy, TaskContext, TaskHandler
from lily_host.plugin_api.errors import PermanentError
from lily_host.runtime.event_bus import TENANT_DELETED
from lily_host.sms.outbound import index_key, message_dedupe_key, message_key, provider_key

TASK = "lily.erase_tenant"
#: Patterns of a tenant's keys, given its glob-escaped id (see :func:`erase_keys`).
KeyPatterns = Callable[[str], Iterable[str]]


def host_key_patterns(t: str) -> tuple[str, ...]:
    """The host's per-tenant keys, as SCAN patterns, built by the modules that own them."""
    return (
        message_key(t, "*"),
        index_key(t),
        message_dedupe_key(t, "*"),
        provider_key(t, "*"),
        cap_key(t, "*"),
        keyword_marker_key(t, "*"),
        JobStore.key(t, "*"),
        BookingStore.key(t, "*"),
        f"lily:automations:missed_call:{t}:*",
        f"lily:bookings:calendar_lock:{t}",
    )


#: Keys unlinked per round trip.
BATCH = 500


def glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis glob pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


async def erase_keys(redis: Any, patterns: KeyPatterns, tenant_id: str) -> int:
    """UNLINK every key matching ``patterns(glob-escaped tenant_id)``; returns how many were removed."""
    removed = 0
    for match in patterns(glob_escape(tenant_id)):
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=match, count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                removed += int(await redis.unlink(*batch))
                batch = []
        if batch:
            removed += int(await redis.unlink(*batch))
    return removed


async def deleted_tenant(ctx: TaskContext, payload: dict[str, Any]) -> str | None:
    """The id a ``tenant.deleted`` payload names, or None when a tenant of that id exists again
    (created since: what is stored under the id is the new tenant's). For every subscriber."""
    tenant_id = payload.get("tenant")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise PermanentError("tenant.deleted without a tenant id", code="invalid_event")
    if await ctx.host.tenants.get(tenant_id) is not None:
        ctx.log.warning("tenant exists again; nothing erased")
        return None
    return tenant_id


async def erase_tenant(ctx: TaskContext, payload: dict[str, Any]) -> None:
    tenant_id = await deleted_tenant(ctx, payload)
    if tenant_id is None:
        return
    removed = await erase_keys(ctx.host.redis, host_key_patterns, tenant_id)
    ctx.log.info("tenant data erased", keys=removed)


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(TASK, erase_tenant, retry=RetryPolicy(max_attempts=8)))


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    register(EventSubscription(TENANT_DELETED, TASK))
