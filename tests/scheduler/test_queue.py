"""The queue's own operations against a real Redis: ordering, dedupe, guards, leases, dead letters."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from lily_host.plugin_api.clock import ManualClock
from lily_host.plugin_api.contract import RetryPolicy
from lily_host.queue import TaskQueue
from lily_host.testing import on_cluster

START = 1_700_000_000.0


def manual_queue(client: aioredis.Redis, **options: object) -> tuple[TaskQueue, ManualClock]:
    clock = ManualClock(START)
    return TaskQueue(client, name="t", clock=clock, **options), clock  # type: ignore[arg-type]


async def test_claim_returns_due_tasks_in_due_order_and_nothing_early(redis_client: aioredis.Redis) -> None:
    queue, clock = manual_queue(redis_client)
    for name, delay in [("c", 30.0), ("a", 10.0), ("d", 40.0), ("b", 20.0)]:
        await queue.schedule("t.order", {"name": name}, tenant="acme", delay=delay)

    clock.advance(25)
    tasks, next_due = await queue.claim("w1", limit=10, lease=600)
    assert [t.payload["name"] for t in tasks] == ["a", "b"]
    assert next_due == START + 30

    clock.advance(100)
    tasks, next_due = await queue.claim("w1", limit=10, lease=600)
    assert [t.payload["name"] for t in tasks] == ["c", "d"]
    assert next_due is None


async def test_run_at_and_jitter_set_the_due_time(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    at = await queue.schedule("t.x", {}, tenant=None, run_at=START + 100)
    jittered = await queue.schedule("t.x", {}, tenant=None, delay=10, jitter=(5, 6))
    task_at, task_jittered = await queue.get(at or ""), await queue.get(jittered or "")
    assert task_at is not None and task_at.due == START + 100 and task_at.first_due == START + 100
    assert task_jittered is not None and task_jittered.due is not None
    assert START + 15 <= task_jittered.due <= START + 16
    assert task_jittered.created == START


async def test_claim_respects_the_limit_and_a_claimed_task_is_in_flight(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    for i in range(5):
        await queue.schedule("t.batch", {"i": i}, tenant=None)
    first, _ = await queue.claim("w1", limit=3, lease=30)
    second, _ = await queue.claim("w2", limit=3, lease=30)
    assert len(first) == 3 and len(second) == 2
    assert {t.id for t in first}.isdisjoint(t.id for t in second)
    stats = await queue.stats()
    assert (stats.due, stats.ready, stats.in_flight) == (0, 0, 5)
    assert [t.state for t in await queue.list_tasks("in_flight")] == ["in_flight"] * 5
    assert await queue.ack(first + second) == []
    stats = await queue.stats()
    assert (stats.due, stats.in_flight, stats.by_type) == (0, 0, {})


async def test_dedupe_returns_the_pending_task_until_it_is_done(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    first = await queue.schedule("t.dedupe", {"n": 1}, tenant="acme", dedupe_key="call-1")
    again = await queue.schedule("t.dedupe", {"n": 2}, tenant="acme", dedupe_key="call-1")
    assert again == first
    assert (await queue.stats()).due == 1

    tasks, _ = await queue.claim("w1", limit=10, lease=30)
    assert [t.payload for t in tasks] == [{"n": 1}]
    assert await queue.schedule("t.dedupe", {"n": 3}, tenant="acme", dedupe_key="call-1") == first  # in flight

    await queue.ack(tasks)
    after = await queue.schedule("t.dedupe", {"n": 4}, tenant="acme", dedupe_key="call-1")
    assert after is not None and after != first


async def test_cancel_and_cancel_dedupe_remove_only_due_tasks(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    plain = await queue.schedule("t.cancel", {}, tenant=None, delay=60)
    keyed = await queue.schedule("t.cancel", {}, tenant=None, delay=60, dedupe_key="review:job-7")
    assert plain is not None and keyed is not None
    assert await queue.cancel(plain) is True
    assert await queue.cancel(plain) is False
    assert await queue.get(plain) is None
    assert await queue.cancel_dedupe("review:job-7") is True
    assert await queue.cancel_dedupe("review:job-7") is False
    # the key is free again
    assert await queue.schedule("t.cancel", {}, tenant=None, dedupe_key="review:job-7") != keyed

    tasks, _ = await queue.claim("w1", limit=10, lease=30)
    assert await queue.cancel(tasks[0].id) is False  # in flight: not cancellable
    assert await queue.cancel_dedupe("review:job-7") is False


async def test_schedule_many_with_a_guard_commits_once(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    batch: list[dict[str, Any]] = [
        {"type": "t.hook", "payload": {"i": 1}, "tenant": "acme"},
        {"type": "t.hook", "payload": {"i": 2}, "tenant": "acme", "delay": 30, "dedupe_key": "d1"},
    ]
    ids = await queue.schedule_many(batch, guard=("seen:twilio:CA1", 3600))
    assert ids is not None and len(ids) == 2
    assert await queue.schedule_many(batch, guard=("seen:twilio:CA1", 3600)) is None
    assert (await queue.stats()).due == 2

    guard_key = queue.keys.guard_prefix + "seen:twilio:CA1"
    assert 3590 < await redis_client.ttl(guard_key) <= 3600

    assert await queue.schedule_many([], guard=("seen:twilio:CA2", 60)) == []
    assert await queue.schedule_many([], guard=("seen:twilio:CA2", 60)) is None

    await queue.release_guard("seen:twilio:CA1")
    again = await queue.schedule_many(batch, guard=("seen:twilio:CA1", 3600))
    assert again is not None and again[0] not in ids and again[1] == ids[1]  # dedupe still holds d1
    assert await queue.schedule_many([]) == []


async def test_scheduling_survives_a_server_that_lost_its_scripts(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    assert await queue.schedule_many([{"type": "t.s", "payload": {}, "tenant": None}], guard=("g1", 60))
    await redis_client.script_flush()  # as after a Redis restart without persistence of scripts
    ids = await queue.schedule_many([{"type": "t.s", "payload": {}, "tenant": None}], guard=("g2", 60))
    assert ids is not None and len(ids) == 1
    assert await queue.schedule_many([{"type": "t.s", "payload": {}, "tenant": None}], guard=("g2", 60)) is None
    assert (await queue.stats()).due == 2


async def test_max_attempts_defaults_to_the_type_policy(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client, policies={"t.sms": RetryPolicy(max_attempts=3)})
    queue.set_policies({"t.sync": RetryPolicy(max_attempts=8)})
    ids = await queue.schedule_many(
        [
            {"type": "t.sms", "payload": {}, "tenant": None},
            {"type": "t.sync", "payload": {}, "tenant": None},
            {"type": "t.other", "payload": {}, "tenant": None},
            {"type": "t.other", "payload": {}, "tenant": None, "max_attempts": 1},
        ]
    )
    assert ids is not None
    assert [(await queue.get(i)).max_attempts for i in ids] == [3, 8, 5, 1]  # type: ignore[union-attr]


async def test_an_expired_lease_is_requeued_and_the_old_owner_can_no_longer_ack(
    redis_client: aioredis.Redis,
) -> None:
    queue, clock = manual_queue(redis_client)
    task_id = await queue.schedule("t.lease", {}, tenant=None)
    (first,), _ = await queue.claim("w1", limit=10, lease=2)
    assert first.attempt == 1

    clock.advance(1)
    assert await queue.extend_leases([first], lease=2) == []
    clock.advance(1.5)
    assert await queue.claim("w2", limit=10, lease=2) == ([], None)  # extended: still w1's

    clock.advance(1)
    (second,), _ = await queue.claim("w2", limit=10, lease=2)
    assert second.id == task_id and second.attempt == 2
    assert await queue.ack([first]) == [task_id]
    assert await queue.extend_leases([first], lease=2) == [task_id]
    assert await queue.ack([second]) == []
    assert await queue.get(task_id or "") is None


async def test_requeue_expired_moves_dead_workers_tasks_back(redis_client: aioredis.Redis) -> None:
    queue, clock = manual_queue(redis_client)
    for _ in range(3):
        await queue.schedule("t.lease", {}, tenant=None)
    await queue.claim("w1", limit=10, lease=5)
    assert await queue.requeue_expired() == 0
    clock.advance(6)
    assert await queue.requeue_expired() == 3
    stats = await queue.stats()
    assert (stats.ready, stats.in_flight) == (3, 0)


async def test_dead_letters_are_listed_retried_and_purged(redis_client: aioredis.Redis) -> None:
    queue, clock = manual_queue(redis_client)
    for i in range(3):
        await queue.schedule("t.dead", {"i": i}, tenant="acme", dedupe_key=f"k{i}")
    tasks, _ = await queue.claim("w1", limit=10, lease=30)
    for task in tasks:
        assert await queue.fail(task, "ValueError: boom", retry_in=None) == START
    dead = await queue.list_tasks("dead")
    assert len(dead) == 3 and all(t.dead_at == START and t.last_error == "ValueError: boom" for t in dead)
    assert dead[0].errors == [{"attempt": 1, "at": START, "error": "ValueError: boom", "outcome": "dead"}]
    assert (await queue.stats()).by_type["t.dead"].dead == 3
    # dead letters released their dedupe keys
    assert await queue.schedule("t.dead", {}, tenant="acme", dedupe_key="k0") not in {t.id for t in dead}

    assert await queue.retry_dead(dead[0].id) == 1
    assert await queue.retry_dead(dead[0].id) == 0
    retried = await queue.get(dead[0].id)
    assert retried is not None and retried.state == "due" and retried.attempt == 1 and retried.due == START

    clock.advance(8 * 86400)
    await queue.schedule("t.dead", {}, tenant=None)  # a newer dead letter survives the purge
    (newer,) = [t for t in (await queue.claim("w1", limit=10, lease=30))[0] if t.dedupe_key is None]
    await queue.fail(newer, "late", retry_in=None)
    assert await queue.purge_dead(7 * 86400) == 2
    assert [t.id for t in await queue.list_tasks("dead")] == [newer.id]
    assert await queue.retry_dead(all_dead=True) == 1
    assert (await queue.stats()).dead == 0


async def test_stats_count_per_type_and_now_follows_the_clock(redis_client: aioredis.Redis) -> None:
    queue, clock = manual_queue(redis_client)
    await queue.schedule("t.a", {}, tenant=None)
    await queue.schedule("t.a", {}, tenant=None, delay=60)
    await queue.schedule("t.b", {}, tenant=None)
    await queue.claim("w1", limit=1, lease=30)
    stats = await queue.stats()
    assert stats.now == START == await queue.now()
    assert (stats.due, stats.ready, stats.in_flight, stats.dead) == (2, 1, 1, 0)
    assert {k: (v.due, v.ready, v.in_flight) for k, v in stats.by_type.items()} == {
        "t.a": (1, 0, 1),
        "t.b": (1, 1, 0),
    }
    clock.advance(60)
    assert (await queue.stats()).ready == 2


async def test_without_a_manual_clock_due_times_come_from_redis(redis_client: aioredis.Redis) -> None:
    queue = TaskQueue(redis_client, name="real")
    before = await queue.now()
    task_id = await queue.schedule("t.real", {}, tenant=None, delay=100)
    task = await queue.get(task_id or "")
    assert task is not None and task.due is not None
    assert before + 100 <= task.due <= await queue.now() + 100
    assert (await queue.claim("w", limit=10, lease=5))[0] == []


async def test_all_keys_share_one_hash_tag(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    task_id = await queue.schedule("t.tag", {}, tenant=None, dedupe_key="x")
    await queue.schedule_many([], guard=("g", 10))
    tasks, _ = await queue.claim("w", limit=1, lease=5)
    await queue.fail(tasks[0], "boom", retry_in=None)
    keys = [k.decode() async for k in redis_client.scan_iter()]  # every primary of a cluster
    assert keys and all("{q:t}" in k for k in keys), keys
    assert task_id is not None


async def test_a_client_with_decode_responses_works_the_same(redis_url: str) -> None:
    client: Any = (
        RedisCluster.from_url(redis_url, decode_responses=True)
        if on_cluster()
        else aioredis.Redis.from_url(redis_url, decode_responses=True)
    )
    queue, clock = manual_queue(client)
    task_id = await queue.schedule("t.str", {"x": "é"}, tenant="acme", dedupe_key="d")
    (task,), next_due = await queue.claim("w", limit=5, lease=10)
    assert task.id == task_id and task.payload == {"x": "é"} and next_due is None
    assert [t.due for t in await queue.list_tasks("in_flight")] == [START]
    assert await queue.fail(task, "boom", retry_in=5) == START + 5
    clock.advance(5)
    (again,), _ = await queue.claim("w", limit=5, lease=10)
    assert again.attempt == 2 and again.last_error == "boom"
    assert await queue.ack([again]) == []
    assert (await queue.stats()).by_type == {}
    await client.aclose()


async def test_schedule_many_sends_large_batches_in_chunks_and_keeps_order(
    redis_client: aioredis.Redis,
) -> None:
    queue, _ = manual_queue(redis_client)
    specs: list[dict[str, Any]] = [{"type": "t.bulk", "payload": {"i": i}, "tenant": None} for i in range(1203)]
    specs[1000]["dedupe_key"] = specs[5]["dedupe_key"] = "same"
    ids = await queue.schedule_many(specs)
    assert ids is not None and len(ids) == 1203 and ids[1000] == ids[5]
    assert (await queue.stats()).due == 1202
