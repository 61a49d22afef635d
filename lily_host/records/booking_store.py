"""Bookings: the host's own record of every booking a scheduling provider reported, per tenant.

Providers (Cal.com) deliver ``booking.created`` / ``booking.rescheduled`` / ``booking.cancelled``
at least once and in any order. Instead of trusting the order of arrival, the store keeps facts
that can be merged in any order, and derives the state of a booking from them:

- one record per booking uid: its latest details, whether it was cancelled, and the reschedule
  links ``replaces`` / ``replaced_by`` (Cal.com gives a rescheduled booking a NEW uid and names the
  original in ``rescheduleUid``);
- the *chain* of a booking is the original uid (its head) followed by each uid that replaced the
  one before; its *current* uid is the tail, and the chain is cancelled exactly when the tail is.

So a late ``booking.created`` for a booking that was already rescheduled changes nothing that
matters, a ``booking.cancelled`` for the superseded uid of a reschedule is ignored, and a
cancellation that arrives before the reschedule it belongs to is undone by the reschedule. When
two facts really conflict (one uid "replaced" twice), the one the provider produced later wins.

Storage: ``lily:{t:<tenant>}:booking:<uid>`` holds one JSON record; the braces are a Redis Cluster
hash tag, so all of a tenant's bookings share a slot and multi-key updates stay atomic. With the
host's PII box (``BookingStore(redis, pii=host.pii)``, as the automations build it) the booking's
details are sealed at rest: ``"booking": {"sealed": "enc:v1:..."}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from redis.exceptions import WatchError

from lily_host.operations.correlation import current_delivery
from lily_host.plugin_api.capabilities import CalendarEvent
from lily_host.plugin_api.host_api import PiiBox
from lily_host.plugin_api.key_registry import track_keys
from lily_host.plugin_api.key_slots import slot_transaction, tenant_key
from lily_host.plugin_api.tenant import Tenant
from lily_host.plugin_api.validators import check_timezone

#: Longest reschedule chain followed; a longer one means corrupt data, not a busy customer.
MAX_CHAIN = 50
#: How long a booking record is kept when the caller names no retention (400 days).
DEFAULT_TTL_SECONDS = 400 * 24 * 3600
#: Optimistic-transaction attempts before giving up on a contended record.
MAX_WATCH_RETRIES = 20

CONFIRMED = "confirmed"
CANCELLED = "cancelled"


class Booking(BaseModel):
    """A booking as every provider reports it to the host (the data of the ``booking.*`` events)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    uid: str = Field(min_length=1, max_length=200)
    provider: str = "calcom"
    start: AwareDatetime
    end: AwareDatetime
    #: IANA zone of the customer when the provider knows it, else the organizer's.
    timezone: str = "UTC"
    title: str = ""
    service_type: str = ""
    customer_name: str = ""
    customer_email: str | None = None
    #: E.164 when the booking form asked for a phone number.
    customer_phone: str | None = None
    #: Where the work happens: the service address for an on-site estimate.
    location: str | None = None
    notes: str | None = None
    #: For a rescheduled booking: the uid it replaces.
    replaces_uid: str | None = None
    cancellation_reason: str | None = None
    #: When the provider produced this fact (Unix seconds): the tie-breaker between conflicting facts.
    occurred_at: float | None = None
    organizer_email: str | None = None
    event_type_id: str | None = None

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_start(self) -> datetime:
        return self.start.astimezone(self.tz)

    def when_text(self) -> str:
        """``Tue, Jun 3 at 2:00 PM`` in the customer's zone: what a text message says."""
        return format_when(self.local_start())

    def as_event_data(self) -> dict[str, Any]:
        """JSON-safe form for ``host.events.emit`` and webhook ``ctx.emit``."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data


def format_when(moment: datetime) -> str:
    hour = moment.strftime("%I").lstrip("0") or "12"
    return f"{moment.strftime('%a, %b')} {moment.day} at {hour}:{moment.strftime('%M %p')}"


@dataclass(frozen=True)
class BookingCalendarEvent(CalendarEvent):
    """A CalendarEvent that also names the service, so a calendar can size the event by service type."""

    service_type: str | None = None


@dataclass(frozen=True)
class BookingState:
    """What a booking chain amounts to now."""

    tenant: str
    #: The original booking's uid: stable across reschedules (calendar event ids derive from it).
    root_uid: str
    #: The uid that holds the current time slot.
    current_uid: str
    chain: tuple[str, ...]
    status: str
    booking: Booking
    #: Uids of the chain under which a calendar event was written and not yet removed.
    calendar_uids: tuple[str, ...]

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED

    def is_current(self, uid: str) -> bool:
        return self.current_uid == uid


def _empty_record(uid: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "booking": None,
        "booking_at": None,
        "created": False,
        "cancelled": False,
        "cancelled_at": None,
        "replaces": None,
        "replaced_by": None,
        "replaced_at": None,
        "calendar": False,
    }


def _later_or_equal(incoming: float | None, stored: float | None) -> bool:
    """Does a fact produced at ``incoming`` win over one produced at ``stored``? Unknown times lose."""
    if stored is None:
        return True
    if incoming is None:
        return False
    return incoming >= stored


def _set_details(record: dict[str, Any], booking: Booking) -> None:
    if record["booking"] is None or _later_or_equal(booking.occurred_at, record["booking_at"]):
        record["booking"] = booking.as_event_data()
        record["booking_at"] = booking.occurred_at


class BookingStore:
    """Records bookings per tenant and answers what state a booking chain is in."""

    def __init__(
        self, redis: aioredis.Redis, *, ttl_seconds: int = DEFAULT_TTL_SECONDS, pii: PiiBox | None = None
    ) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        #: With it, a record's booking details (the customer's name, phone, email, address) are sealed at rest.
        self.pii = pii

    def _open(self, record: dict[str, Any]) -> dict[str, Any]:
        details = record.get("booking")
        if isinstance(details, dict) and "sealed" in details:
            if self.pii is None:
                raise RuntimeError("this booking record is sealed: read it with BookingStore(..., pii=host.pii)")
            record["booking"] = json.loads(self.pii.open(details["sealed"]))
        return record

    def _dump(self, record: dict[str, Any]) -> str:
        if self.pii is not None and isinstance(record.get("booking"), dict):
            record = {**record, "booking": {"sealed": self.pii.seal(json.dumps(record["booking"], sort_keys=True))}}
        return json.dumps(record, sort_keys=True)

    @staticmethod
    def key(tenant: str, uid: str) -> str:
        return tenant_key(tenant, "booking", uid)

    # --- facts ------------------------------------------------------------------------------------

    async def record_created(self, tenant: str, booking: Booking) -> None:
        def apply(records: dict[str, dict[str, Any]]) -> None:
            record = records[booking.uid]
            _set_details(record, booking)
            record["created"] = True
            self._note_delivery(record)

        await self._update(tenant, [booking.uid], apply)

    async def record_rescheduled(self, tenant: str, booking: Booking) -> None:
        """``booking`` is the NEW booking; ``booking.replaces_uid`` names the one it replaces."""
        previous = booking.replaces_uid
        if not previous or previous == booking.uid:
            await self.record_created(tenant, booking)
            return

        def apply(records: dict[str, dict[str, Any]]) -> None:
            new, old = records[booking.uid], records[previous]
            _set_details(new, booking)
            new["replaces"] = previous
            self._note_delivery(new)
            if old["replaced_by"] is None or _later_or_equal(booking.occurred_at, old["replaced_at"]):
                old["replaced_by"] = booking.uid
                old["replaced_at"] = booking.occurred_at

        await self._update(tenant, [booking.uid, previous], apply)

    async def record_cancelled(self, tenant: str, booking: Booking) -> None:
        def apply(records: dict[str, dict[str, Any]]) -> None:
            record = records[booking.uid]
            if record["booking"] is None:
                _set_details(record, booking)
            record["cancelled"] = True
            record["cancelled_at"] = booking.occurred_at
            self._note_delivery(record)
            if booking.cancellation_reason and isinstance(record["booking"], dict):
                record["booking"]["cancellation_reason"] = booking.cancellation_reason

        await self._update(tenant, [booking.uid], apply)

    async def mark_calendar(self, tenant: str, uid: str, *, written: bool) -> None:
        """Remember whether a calendar event exists under ``uid`` (so a merged chain can remove strays)."""

        def apply(records: dict[str, dict[str, Any]]) -> None:
            records[uid]["calendar"] = written
            delivery = current_delivery()
            if delivery:
                records[uid]["calendar_delivery"] = delivery

        await self._update(tenant, [uid], apply)

    # --- reading ----------------------------------------------------------------------------------

    async def record(self, tenant: str, uid: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.key(tenant, uid))
        if raw is None:
            return None
        record: dict[str, Any] = json.loads(raw)
        return self._open(record)

    async def state(self, tenant: str, uid: str) -> BookingState | None:
        """The state of the chain ``uid`` belongs to, or None if the host never heard of ``uid``."""
        start = await self.record(tenant, uid)
        if start is None:
            return None
        loaded: dict[str, dict[str, Any]] = {uid: start}

        async def load(name: str) -> dict[str, Any] | None:
            if name not in loaded:
                found = await self.record(tenant, name)
                if found is None:
                    return None
                loaded[name] = found
            return loaded[name]

        head = uid
        seen = {uid}
        for _ in range(MAX_CHAIN):
            previous = loaded[head]["replaces"]
            if not previous or previous in seen or await load(previous) is None:
                break
            seen.add(previous)
            head = previous

        chain = [head]
        for _ in range(MAX_CHAIN):
            following = loaded[chain[-1]]["replaced_by"]
            if not following or following in chain or await load(following) is None:
                break
            chain.append(following)

        # The tail normally has details; if its record lost them, fall back to the nearest one that has.
        current = chain[-1]
        details = next((loaded[name]["booking"] for name in reversed(chain) if loaded[name]["booking"]), None)
        if details is None:
            return None
        return BookingState(
            tenant=tenant,
            root_uid=head,
            current_uid=current,
            chain=tuple(chain),
            status=CANCELLED if loaded[current]["cancelled"] else CONFIRMED,
            booking=Booking.model_validate(details),
            calendar_uids=tuple(name for name in chain if loaded[name]["calendar"]),
        )

    # --- storage ----------------------------------------------------------------------------------

    @staticmethod
    def _note_delivery(record: dict[str, Any]) -> None:
        """Remember the webhook delivery behind this change (lily trace), the last few of them."""
        delivery = current_delivery()
        if delivery:
            seen = [d for d in record.get("deliveries") or [] if d != delivery]
            record["deliveries"] = [*seen, delivery][-10:]

    async def _update(self, tenant: str, uids: list[str], apply: Callable[[dict[str, dict[str, Any]]], None]) -> None:
        """Read the records of ``uids``, let ``apply`` change them, write them back atomically (WATCH)."""
        keys = [self.key(tenant, uid) for uid in uids]
        for _ in range(MAX_WATCH_RETRIES):
            async with await slot_transaction(self.redis, keys[0]) as pipe:
                try:
                    await pipe.watch(*keys)
                    raws = [await pipe.get(key) for key in keys]
                    records = {
                        uid: (self._open(json.loads(raw)) if raw is not None else _empty_record(uid))
                        for uid, raw in zip(uids, raws, strict=True)
                    }
                    before = {uid: json.dumps(record, sort_keys=True) for uid, record in records.items()}
                    apply(records)
                    pipe.multi()
                    for uid, key, raw in zip(uids, keys, raws, strict=True):
                        after = json.dumps(records[uid], sort_keys=True)
                        if raw is None or after != before[uid]:
                            track_keys(pipe, tenant, key, ttl=self.ttl_seconds)
                            pipe.set(key, self._dump(records[uid]), ex=self.ttl_seconds)
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        raise RuntimeError(f"booking records {', '.join(uids)} changed too often to update; try again")


def booking_link(tenant: Tenant) -> str | None:
    """The tenant's public booking page ("Book a time: ..."), from whichever plugin's tenant settings have
    a ``booking_url`` (lily-calcom's), so messages can offer it without knowing the scheduling plugin."""
    for values in tenant.plugins.values():
        link = values.get("booking_url")
        if isinstance(link, str) and link.startswith(("http://", "https://")):
            return link
    return None
