"""What the host keeps for a tenant, erased when the tenant is deleted (``tenant.deleted``).

``Host.delete_tenant`` removes the tenant record, keys, secrets and lookup entries and, in the same
Redis transaction, schedules ``tenant.deleted`` to every subscriber. This built-in subscriber erases
the host's own per-tenant data: message records and their indexes, send caps, keyword markers,
jobs, bookings, conversations, reminders, quotes, follow-ups and automation markers. Plugins subscribe for
theirs (lily-s3: the photos).

Kept on purpose: the STOP list (``lily:{t:<tenant>}:sms:suppressed``) and the consent ledger
(``lily:sms:consent:<hash>``, :mod:`lily_host.sms.consent_ledger`). An opt-out must go on being
honoured if the business comes back under the same id; it holds the numbers that asked not to be
texted and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lily_host.builtins.booking_messages import calendar_lock_key
from lily_host.builtins.missed_call import missed_call_key
from lily_host.builtins.review_requests import link_key as review_link_key
from lily_host.operations.correlation import effects_pattern
from lily_host.operations.webhook_log import stream_key
from lily_host.plugin_api.contract import EventSubscription, RetryPolicy, TaskContext, TaskHandler
from lily_host.plugin_api.erasure import deleted_tenant, erase_tracked, tracked_keys
from lily_host.plugin_api.event_names import TENANT_DELETED
from lily_host.plugin_api.host_api import KeyPatterns
from lily_host.plugin_api.markers import hookimpl
from lily_host.records.booking_store import BookingStore
from lily_host.records.followup_registry import followup_key_pattern
from lily_host.records.job_store import JobStore
from lily_host.records.quote_store import quote_key_patterns, token_key
from lily_host.sms.compliance import cap_key, keyword_marker_key
from lily_host.sms.conversation_store import conversation_key_pattern
from lily_host.sms.outbound import index_key, message_dedupe_key, message_key, provider_key
from lily_host.sms.reminder_store import reminder_key_pattern

TASK = "lily.erase_tenant"


def host_key_patterns(t: str) -> tuple[str, ...]:
    """The host's per-tenant keys, as glob patterns, built by the modules that own them. Every key
    of a pattern with a wildcard is recorded in the tenant's key registry by the code that writes
    it (:func:`lily_host.plugin_api.key_registry.track_keys`); a pattern without one names its key."""
    return (
        message_key(t, "*"),
        index_key(t),
        message_dedupe_key(t, "*"),
        provider_key(t, "*"),
        cap_key(t, "*"),
        keyword_marker_key(t, "*"),
        JobStore.key(t, "*"),
        BookingStore.key(t, "*"),
        missed_call_key(t, "*"),
        calendar_lock_key(t),
        conversation_key_pattern(t),
        reminder_key_pattern(t),
        followup_key_pattern(t),
        *quote_key_patterns(t),
        # The webhook log and the delivery → effects index (the audit log is kept: erasure is audited).
        stream_key(t),
        effects_pattern(t),
    )


async def _erase_links(
    redis: Any, tenant_id: str, patterns: KeyPatterns, field: str, link_key: Callable[[str], str]
) -> None:
    async for key in tracked_keys(redis, patterns, tenant_id):
        if await redis.type(key) not in (b"hash", "hash"):
            continue
        token = await redis.hget(key, field)
        if token is not None:
            await redis.unlink(link_key(token.decode() if isinstance(token, bytes) else str(token)))


async def erase_tenant(ctx: TaskContext, payload: dict[str, Any]) -> None:
    tenant_id = await deleted_tenant(ctx, payload)
    if tenant_id is None:
        return
    removed = await erase_host_data(ctx.host.redis, tenant_id)
    ctx.log.info("tenant data erased", keys=removed)


async def erase_host_data(redis: Any, tenant_id: str) -> int:
    """Erase what the host keeps for a deleted tenant; how many keys went."""
    # Short links (quotes, tracked review links) are global keys, since a link carries no tenant: they
    # are found through the tenant's records, before those go.
    await _erase_links(redis, tenant_id, lambda t: [quote_key_patterns(t)[0]], "token", token_key)
    await _erase_links(redis, tenant_id, lambda t: [JobStore.key(t, "*")], "review_token", review_link_key)
    # Found through the tenant's key registry: the time does not grow with the number of tenants.
    return await erase_tracked(redis, host_key_patterns, tenant_id)


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(TASK, erase_tenant, retry=RetryPolicy(max_attempts=8)))


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    register(EventSubscription(TENANT_DELETED, TASK))
