"""BookingStore: facts merged in any order give the same booking state (real Redis)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from lily_host.plugin_api.tenant import Tenant
from lily_host.records.booking_store import Booking, BookingStore, booking_link, format_when

SLOT = datetime(2030, 6, 5, 14, 0, tzinfo=UTC)


def booking(uid: str, *, hours: int = 0, replaces: str | None = None, at: float = 1.0, **extra: Any) -> Booking:
    start = SLOT + timedelta(hours=hours)
    return Booking(
        uid=uid,
        start=start,
        end=start + timedelta(minutes=30),
        timezone="America/New_York",
        service_type="Window Cleaning",
        customer_name="Jane Doe",
        customer_phone="+15551234567",
        replaces_uid=replaces,
        occurred_at=at,
        **extra,
    )


Fact = Callable[[BookingStore], Awaitable[None]]


def created(uid: str, **options: Any) -> Fact:
    return lambda store: store.record_created("acme", booking(uid, **options))


def rescheduled(uid: str, replaces: str, **options: Any) -> Fact:
    return lambda store: store.record_rescheduled("acme", booking(uid, replaces=replaces, **options))


def cancelled(uid: str, **options: Any) -> Fact:
    return lambda store: store.record_cancelled("acme", booking(uid, **options))


async def replay(redis_client: aioredis.Redis, facts: tuple[Fact, ...]) -> Any:
    await redis_client.flushall()
    store = BookingStore(redis_client)
    for fact in facts:
        await fact(store)
    return store


async def test_created_booking_is_confirmed(redis_client: aioredis.Redis) -> None:
    store = await replay(redis_client, (created("a"),))
    state = await store.state("acme", "a")
    assert (state.root_uid, state.current_uid, state.chain, state.status) == ("a", "a", ("a",), "confirmed")
    assert await store.state("acme", "unknown") is None
    assert await store.state("other-tenant", "a") is None


async def test_every_order_of_a_double_reschedule_converges(redis_client: aioredis.Redis) -> None:
    facts = (
        created("a", at=1),
        rescheduled("b", "a", hours=24, at=2),
        cancelled("a", at=2),  # Cal.com's cancellation of the old slot, if it sends one
        rescheduled("c", "b", hours=48, at=3),
        created("a", at=1),  # a redelivery
    )
    for order in itertools.permutations(facts):
        store = await replay(redis_client, order)
        for uid in ("a", "b", "c"):
            state = await store.state("acme", uid)
            assert (state.root_uid, state.current_uid, state.status) == ("a", "c", "confirmed"), order
            assert state.chain == ("a", "b", "c")
            assert state.booking.start == SLOT + timedelta(hours=48)


async def test_every_order_ends_cancelled_when_the_current_slot_is_cancelled(redis_client: aioredis.Redis) -> None:
    facts = (
        created("a", at=1),
        rescheduled("b", "a", hours=24, at=2),
        cancelled("b", hours=24, at=3, cancellation_reason="moved away"),
    )
    for order in itertools.permutations(facts):
        store = await replay(redis_client, order)
        state = await store.state("acme", "a")
        assert (state.current_uid, state.status) == ("b", "cancelled"), order
        assert state.booking.cancellation_reason == "moved away"


async def test_conflicting_reschedules_of_one_uid_keep_the_later_one(redis_client: aioredis.Redis) -> None:
    for order in itertools.permutations((rescheduled("b", "a", at=5), rescheduled("c", "a", hours=3, at=9))):
        store = await replay(redis_client, (created("a", at=1), *order))
        state = await store.state("acme", "a")
        assert state.current_uid == "c", order
        # The loser is not current, whoever asks.
        assert not (await store.state("acme", "b")).is_current("b")


async def test_calendar_marks_are_kept_per_uid(redis_client: aioredis.Redis) -> None:
    store = await replay(redis_client, (rescheduled("b", "a"),))
    await store.mark_calendar("acme", "b", written=True)
    assert (await store.state("acme", "a")).calendar_uids == ("b",)
    await store.mark_calendar("acme", "b", written=False)
    assert (await store.state("acme", "a")).calendar_uids == ()


async def test_records_expire_and_are_tenant_scoped(redis_client: aioredis.Redis) -> None:
    store = BookingStore(redis_client, ttl_seconds=3600)
    await store.record_created("acme", booking("a"))
    key = BookingStore.key("acme", "a")
    assert key == "lily:{t:acme}:booking:a"
    assert 0 < await redis_client.ttl(key) <= 3600


def test_when_text_is_local_to_the_customer() -> None:
    assert booking("a").when_text() == "Wed, Jun 5 at 10:00 AM"
    assert format_when(datetime(2030, 1, 7, 0, 5, tzinfo=UTC)) == "Mon, Jan 7 at 12:05 AM"


def test_booking_link_comes_from_any_plugins_settings() -> None:
    tenant = Tenant(id="acme", name="Acme", plugins={"calcom": {"booking_url": "https://cal.com/acme"}})
    assert booking_link(tenant) == "https://cal.com/acme"
    assert booking_link(Tenant(id="bare", name="Bare")) is None
