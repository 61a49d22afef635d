"""Appointment reminders: when each reminder of a booking goes, and what is remembered about it.

For each booking chain (:mod:`lily_host.records.booking_store`) Lily plans one reminder per tenant offset
(``tenant.reminder_offsets_minutes``, default 24 h and 2 h before the start). The plan is redone
whenever the chain changes, so a reschedule moves every reminder and a cancellation drops them.

**The quiet-hour rule.** A reminder is due ``offset`` before the start. When that moment is outside
the hours a text may go (federal, state and the tenant's, :mod:`lily_host.sms.send_windows`), it goes
at the *last allowed minute before* instead (a 7:00 reminder goes at 20:59 the evening before, or
19:59 in a state that closes at 20:00). It is *skipped* when that would make it more than twice
its offset early (a 2 h reminder for an 8:30 visit would go 11.5 h early: the 24 h reminder
already covers that), and when its time has already passed (a booking made for this afternoon gets
its confirmation text, not a stale 24 h reminder). Offsets are real durations, so across a DST
change "24 h before" is 24 hours, and the allowed hours are local wall-clock hours on each day.

Redis keys:

- ``lily:{t:<tenant>}:reminders:<root uid>``          hash: start, due:<offset>, task:<offset>,
  skipped:<offset>, sent:<offset>, confirmed_at
- ``lily:{t:<tenant>}:reminders:awaiting:<hash>``     JSON {root, start}: the booking a reply C / R
  from this number (keyed hash) answers; expires an hour after the start
- ``lily:{t:<tenant>}:reminders:lock:<root uid>``     one plan at a time per chain
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lily_host.plugin_api.key_registry import set_tracked, track_keys
from lily_host.plugin_api.key_slots import slot_transaction, tenant_key
from lily_host.plugin_api.redis_typing import awaited
from lily_host.sms.send_windows import last_allowed, rules_for

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from lily_host.plugin_api.host_api import PiiBox
    from lily_host.plugin_api.tenant import Tenant
    from lily_host.records.booking_store import Booking

#: A reminder moved earlier by quiet hours is skipped beyond this many times its offset before the start.
MAX_EARLY_FACTOR = 2.0
#: The "awaiting reply" marker outlives the appointment start by this much (late "C" replies).
AWAITING_GRACE_SECONDS = 3600


@dataclass(frozen=True)
class Planned:
    offset_minutes: int
    due: float
    #: When it goes: ``due``, or the last allowed minute before it; None when skipped.
    at: float | None
    reason: str


def plan(tenant: Tenant, booking: Booking, offset_minutes: int, now: float) -> Planned:
    """When the reminder ``offset_minutes`` before ``booking`` goes (see the module's quiet-hour rule)."""
    start = booking.start.timestamp()
    offset = offset_minutes * 60
    due = start - offset
    rules = rules_for(tenant, booking.customer_phone, booking.timezone)
    at = last_allowed(rules, due)
    if at is None:
        return Planned(offset_minutes, due, None, "no allowed time before it")
    if at < start - MAX_EARLY_FACTOR * offset:
        return Planned(offset_minutes, due, None, "quiet hours would make it too early")
    if at <= now:
        return Planned(offset_minutes, due, None, "its time has passed")
    return Planned(offset_minutes, due, at, "on time" if at == due else "moved before quiet hours")


def _prefix(tenant_id: str) -> str:
    return tenant_key(tenant_id, "reminders")


def reminder_key_pattern(tenant_id: str) -> str:
    """Every reminder key of a (glob-escaped) tenant id, for erasure."""
    return f"{_prefix(tenant_id)}:*"


class ReminderStore:
    def __init__(self, redis: aioredis.Redis, pii: PiiBox) -> None:
        self.redis = redis
        self.pii = pii

    def key(self, tenant_id: str, root: str) -> str:
        return f"{_prefix(tenant_id)}:{root}"

    async def state(self, tenant_id: str, root: str) -> dict[str, str]:
        raw = await awaited(self.redis.hgetall(self.key(tenant_id, root)))
        return {key.decode(): value.decode() for key, value in raw.items()}

    async def replace(self, tenant_id: str, root: str, fields: dict[str, str], ttl: int) -> None:
        key = self.key(tenant_id, root)
        pipe = await slot_transaction(self.redis, key)
        pipe.delete(key)
        if fields:
            track_keys(pipe, tenant_id, key, ttl=ttl)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, ttl)
        await pipe.execute()

    async def set(self, tenant_id: str, root: str, **fields: str) -> None:
        await awaited(self.redis.hset(self.key(tenant_id, root), mapping=fields))

    async def lock(self, tenant_id: str, root: str, holder: str) -> bool:
        key = f"{_prefix(tenant_id)}:lock:{root}"
        pipe = self.redis.pipeline(transaction=False)
        track_keys(pipe, tenant_id, key, ttl=60)
        pipe.set(key, holder, nx=True, ex=60)
        return bool((await pipe.execute())[-1])

    async def unlock(self, tenant_id: str, root: str, holder: str) -> None:
        key = f"{_prefix(tenant_id)}:lock:{root}"
        current = await self.redis.get(key)
        if current is not None and current.decode() == holder:
            await self.redis.delete(key)

    # --- replies ---------------------------------------------------------------------------------------

    async def await_reply(self, tenant_id: str, number: str, root: str, start: float, now: float) -> None:
        """Remember that a reply C / R from ``number`` answers the booking ``root`` until after its start."""
        digest = await self.pii.digest(number)
        ttl = max(60, int(start - now) + AWAITING_GRACE_SECONDS)
        value = json.dumps({"root": root, "start": start, "at": now})
        await set_tracked(self.redis, tenant_id, f"{_prefix(tenant_id)}:awaiting:{digest}", value, ttl=ttl)

    async def awaiting(self, tenant_id: str, number: str) -> dict[str, Any] | None:
        digest = await self.pii.digest(number)
        raw = await self.redis.get(f"{_prefix(tenant_id)}:awaiting:{digest}")
        if raw is None:
            return None
        found: dict[str, Any] = json.loads(raw)
        return found
