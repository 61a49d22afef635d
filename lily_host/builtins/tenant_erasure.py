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

from collections.abc import Callable
from typing import Any

from lily_host.builtins.review_requests import JobStore
from lily_host.plugin_api.contract import EventSubscription, RetryPolicy, TaskContext, TaskHandler
from lily_host.plugin_api.erasure import deleted_tenant, erase_keys
from lily_host.plugin_api.event_names import TENANT_DELETED
from lily_host.plugin_api.markers import hookimpl
from lily_host.records.booking_store import BookingStore
from lily_host.sms.compliance import cap_key, keyword_marker_key
from lily_host.sms.outbound import index_key, message_dedupe_key, message_key, provider_key

TASK = "lily.erase_tenant"


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
