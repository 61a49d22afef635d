"""The tenant key registry: every per-tenant key the host writes is recorded, so erasure reads the
tenant's registry instead of walking the keyspace; entries of expired keys are pruned; a tenant
from before the registry is still erased completely (by a walk)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lily_host.builtins.missed_call import claim_window
from lily_host.builtins.tenant_erasure import host_key_patterns
from lily_host.operations.correlation import delivery_scope, new_delivery_id, record_effect
from lily_host.plugin_api.erasure import erase_tracked, glob_regex
from lily_host.plugin_api.key_registry import COMPLETE, PRUNE_GRACE, registry_key, track_keys
from lily_host.records import followup_registry
from lily_host.records.booking_store import Booking, BookingStore
from lily_host.records.job_store import JobCompletion, JobStore
from lily_host.records.quote_store import QuoteStore
from lily_host.sms.reminder_store import ReminderStore
from lily_host.testing import Harness, HarnessFactory

CUSTOMER = "+15557654321"
OTHERS = 300


@pytest.fixture
async def lily(lily_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with lily_harness() as harness:
        harness.clock.set(dt.datetime(2025, 6, 2, 12, tzinfo=ZoneInfo("America/New_York")).timestamp())  # texts may go
        for tenant_id in ("acme", "acme-2"):  # one id a prefix of the other
            await harness.create_tenant(tenant_id, name=tenant_id.title(), review_link="https://g.page/r/x")
        yield harness


def host_pattern_regexes(tenant_id: str) -> list[Any]:
    return [glob_regex(pattern) for pattern in host_key_patterns(tenant_id)]


async def keys_of(lily: Harness, tenant_id: str) -> set[bytes]:
    """Every key of the tenant's host data, found the slow way (for the test's own check)."""
    regexes = host_pattern_regexes(tenant_id)
    return {key async for key in lily.host.redis.scan_iter(count=1000) if any(r.fullmatch(key) for r in regexes)}


async def registry(lily: Harness, tenant_id: str) -> set[bytes]:
    return set(await lily.host.redis.zrange(registry_key(tenant_id), 0, -1))


async def write_everything(lily: Harness, tenant_id: str) -> None:
    """Drive the host's own writers of per-tenant keys once each (texts, caps, STOP markers, jobs,
    bookings, conversations, reminders, follow-ups, quotes, missed-call windows, the effects index)."""
    host = lily.host
    tenant = await host.tenants.get(tenant_id)
    assert tenant is not None
    now = lily.clock.now()
    with delivery_scope(new_delivery_id(tenant_id, now)):
        await host.messaging.queue_sms(tenant_id, CUSTOMER, template="missed_call", dedupe_key="call-1")
        await lily.run_due()  # sent: message record, dedupe key, provider id, cap, conversation, effects
        assert [sent["tenant"] for sent in await lily.outbox()].count(tenant_id) == 1
        await record_effect(host.redis, 30, "booking", "b1")
    await host.messaging.compliance.suppress(tenant_id, "+15550000001", reason="keyword:STOP", at=now, source_id="m1")
    completion = JobCompletion(customer_name="Pat", customer_phone=CUSTOMER)
    await JobStore(host.redis, host.pii).complete(tenant, "j1", completion, now)
    start = dt.datetime.fromtimestamp(now + 86_400, dt.UTC)
    booking = Booking(uid="b1", start=start, end=start + dt.timedelta(hours=1), customer_phone=CUSTOMER)
    await BookingStore(host.redis, pii=host.pii).record_created(tenant_id, booking)
    reminders = ReminderStore(host.redis, host.pii)
    await reminders.replace(tenant_id, "b1", {"start": repr(now + 86_400)}, ttl=3600)
    assert await reminders.lock(tenant_id, "b1", "me")
    await reminders.await_reply(tenant_id, CUSTOMER, "b1", now + 86_400, now)
    await followup_registry.register(host, tenant_id, CUSTOMER, "review", "j1", "task-1", now + 3600)
    quotes = QuoteStore(host.redis, host.pii)
    await quotes.create(tenant_id, "q1", to=CUSTOMER, amount=100, description="Windows", link="x", now=now, ttl=3600)
    await quotes.await_reply(tenant_id, CUSTOMER, "q1", now, 3600)
    await host.messaging.conversations.link_quote(tenant_id, CUSTOMER, "m2", "q1")
    assert await claim_window(host, tenant_id, CUSTOMER, "CA1", now)


async def test_every_key_the_host_writes_for_a_tenant_is_in_its_registry(lily: Harness) -> None:
    await write_everything(lily, "acme")
    written = await keys_of(lily, "acme")
    families = {
        pattern for pattern in host_key_patterns("acme") if any(glob_regex(pattern).fullmatch(k) for k in written)
    }
    assert len(families) >= 14, sorted(set(host_key_patterns("acme")) - families)  # the writers ran
    fixed = {pattern.encode() for pattern in host_key_patterns("acme") if "*" not in pattern}
    assert written - fixed <= await registry(lily, "acme")


async def test_deleting_a_tenant_erases_what_its_registry_names_without_walking_the_keyspace(lily: Harness) -> None:
    await write_everything(lily, "acme")
    await write_everything(lily, "acme-2")
    pipe = lily.host.redis.pipeline(transaction=False)
    for index in range(OTHERS):  # many other tenants' keys, ours among them
        other = f"t{index:04d}"
        for key in (JobStore.key(other, "j1"), BookingStore.key(other, "b1")):
            track_keys(pipe, other, key)
            pipe.set(key, "v")
    await pipe.execute()
    other_keys = await keys_of(lily, "acme-2")
    assert await keys_of(lily, "acme")

    await lily.host.redis.config_resetstat()
    assert await lily.host.delete_tenant("acme")
    await lily.run_due()
    stats = await lily.host.redis.info("commandstats")
    assert "cmdstat_scan" not in stats, "a tenant with a complete registry is erased without SCAN"

    assert await keys_of(lily, "acme") == set()
    assert await keys_of(lily, "acme-2") == other_keys
    assert await lily.host.redis.exists(JobStore.key("t0150", "j1"), BookingStore.key("t0150", "b1")) == 2
    # what is left of the registry: the completeness mark, expiring for subscribers still to run
    assert await registry(lily, "acme") == {COMPLETE.encode()}
    assert await lily.host.redis.ttl(registry_key("acme")) > 0


async def test_a_key_the_registry_does_not_name_is_not_found_for_a_complete_tenant(lily: Harness) -> None:
    # The proof that the registry, not a walk, is read: an unrecorded key stays (writers record theirs).
    tracked, untracked = JobStore.key("acme", "j1"), JobStore.key("acme", "j2")
    pipe = lily.host.redis.pipeline(transaction=False)
    track_keys(pipe, "acme", tracked, ttl=600)
    pipe.set(tracked, "v", ex=600)
    pipe.set(untracked, "v", ex=600)
    await pipe.execute()

    assert await erase_tracked(lily.host.redis, host_key_patterns, "acme") == 1
    assert not await lily.host.redis.exists(tracked)
    assert await lily.host.redis.exists(untracked)


async def test_a_tenant_from_before_the_registry_is_erased_by_a_walk(lily: Harness) -> None:
    # An upgraded deployment: the tenant and its data were written before any registry existed.
    await write_everything(lily, "acme")
    await write_everything(lily, "acme-2")
    await lily.host.redis.delete(registry_key("acme"))
    other_keys = await keys_of(lily, "acme-2")

    assert await lily.host.delete_tenant("acme")
    await lily.run_due()

    assert await keys_of(lily, "acme") == set()
    assert await keys_of(lily, "acme-2") == other_keys


async def test_entries_of_expired_keys_are_pruned_and_a_key_is_recorded_once(lily: Harness) -> None:
    redis = lily.host.redis
    start = 1_900_000_000.0

    async def track(key: str, ttl: float | None, now: float) -> None:
        pipe = redis.pipeline(transaction=False)
        track_keys(pipe, "acme", key, ttl=ttl, now=now)
        await pipe.execute()

    await track("lily:job:acme:short", 60, start)
    await track("lily:job:acme:long", 86_400, start)
    await track("lily:job:acme:kept", None, start)
    await track("lily:job:acme:long", 86_400, start + 10)  # tracked again: one entry, the later expiry
    members = dict(await redis.zrange(registry_key("acme"), 0, -1, withscores=True))
    assert members[b"lily:job:acme:long"] == start + 10 + 86_400 + PRUNE_GRACE
    assert len(members) == 4  # three keys and the completeness mark

    await track("lily:job:acme:new", 60, start + 60 + PRUNE_GRACE + 1)  # the short key has expired
    assert await registry(lily, "acme") == {
        COMPLETE.encode(),
        b"lily:job:acme:long",
        b"lily:job:acme:kept",
        b"lily:job:acme:new",
    }
    await track("lily:job:acme:new", 60, start + 86_400 + 2 * PRUNE_GRACE)
    assert await registry(lily, "acme") == {COMPLETE.encode(), b"lily:job:acme:kept", b"lily:job:acme:new"}
