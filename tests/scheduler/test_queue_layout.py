"""The queue's compact Redis layout (lua_scripts): one hash entry per task, the dedupe index folded
into keyed tasks' record fields, and tasks stored by older versions still read, run and retried."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from lily_host.plugin_api.clock import ManualClock
from lily_host.plugin_api.contract import TaskContext, TaskHandler
from lily_host.queue import TaskQueue, Worker
from lily_host.queue.task_queue import key_field

START = 1_700_000_000.0


def manual_queue(client: aioredis.Redis, name: str = "layout") -> tuple[TaskQueue, ManualClock]:
    clock = ManualClock(START)
    return TaskQueue(client, name=name, clock=clock), clock


async def write_old_task(
    client: aioredis.Redis,
    queue: TaskQueue,
    task_id: str,
    *,
    payload: dict[str, Any],
    due: float,
    dedupe_key: str | None = None,
) -> None:
    """A pending task exactly as the schedule script before the compact layout stored it."""
    record = {
        "type": task_id.rpartition(":")[0],
        "tenant": "acme",
        "payload": payload,
        "max_attempts": 3,
        "dedupe_key": dedupe_key,
        "created": START - 60,
        "first_due": due,
    }
    await client.hset(queue.keys.tasks, task_id, json.dumps(record, separators=(",", ":")))
    await client.zadd(queue.keys.due, {task_id: due})
    if dedupe_key:
        await client.hset(queue.keys.dedupe, dedupe_key, task_id)
    await client.hincrby(queue.keys.counts, "due|" + task_id.rpartition(":")[0], 1)


OLD_ID = "reviews.send_request:" + "0123456789abcdef01234567"
OLD_PLAIN = "acme.sync:" + "fedcba9876543210fedcba98"


async def test_a_task_stored_by_an_older_version_is_read_listed_retried_and_run(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    queue, clock = manual_queue(redis_client)
    await write_old_task(redis_client, queue, OLD_ID, payload={"job": "j1"}, due=START + 10, dedupe_key="review:j1")
    await write_old_task(redis_client, queue, OLD_PLAIN, payload={"n": 1}, due=START + 20)

    old = await queue.get(OLD_ID)
    assert old is not None and old.state == "due" and old.type == "reviews.send_request"
    assert (old.tenant, old.payload, old.max_attempts, old.dedupe_key) == ("acme", {"job": "j1"}, 3, "review:j1")
    assert (old.created, old.first_due, old.due, old.attempt) == (START - 60, START + 10, START + 10, 1)
    assert [t.id for t in await queue.list_tasks("due")] == [OLD_ID, OLD_PLAIN]
    # its dedupe key still holds: scheduling the same key returns the old task
    assert await queue.schedule("reviews.send_request", {"job": "j1"}, tenant="acme", dedupe_key="review:j1") == OLD_ID
    assert (await queue.stats()).due == 2
    assert await queue.run_now(OLD_PLAIN) is True

    clock.advance(10)
    tasks, _ = await queue.claim("w1", limit=10, lease=30)
    assert [t.id for t in tasks] == [OLD_PLAIN, OLD_ID]
    retried = next(t for t in tasks if t.id == OLD_ID)
    assert await queue.fail(retried, "TimeoutError: slow", retry_in=5) == START + 15
    assert await queue.ack([t for t in tasks if t.id == OLD_PLAIN]) == []
    again = await queue.get(OLD_ID)
    assert again is not None and again.attempt == 2 and again.last_error == "TimeoutError: slow"
    assert (again.payload, again.first_due, again.dedupe_key) == ({"job": "j1"}, START + 10, "review:j1")

    clock.advance(5)
    (claimed,), _ = await queue.claim("w1", limit=10, lease=30)
    await queue.fail(claimed, "ValueError: bad", retry_in=None)
    (dead,) = await queue.list_tasks("dead")
    assert dead.id == OLD_ID and [e["outcome"] for e in dead.errors] == ["retry", "dead"]
    assert await queue.retry_dead(OLD_ID) == 1
    # retried, it holds its key again
    assert await queue.schedule("reviews.send_request", {}, tenant="acme", dedupe_key="review:j1") == OLD_ID

    ran: list[tuple[str, str | None, dict[str, Any]]] = []

    async def send(ctx: TaskContext, payload: dict[str, Any]) -> None:
        ran.append((ctx.task_id, ctx.tenant_id, payload))

    handler = TaskHandler("reviews.send_request", send)
    worker = Worker(queue, {"reviews.send_request": handler}, host=fake_host(queue))
    assert await worker.run_due() == 1
    assert ran == [(OLD_ID, "acme", {"job": "j1"})]
    assert await queue.get(OLD_ID) is None
    stats = await queue.stats()
    assert (stats.due, stats.in_flight, stats.dead, stats.by_type) == (0, 0, 0, {})
    assert await redis_client.hlen(queue.keys.tasks) == 0 and await redis_client.hlen(queue.keys.dedupe) == 0


async def test_old_tasks_can_be_cancelled_by_id_and_by_dedupe_key(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    await write_old_task(redis_client, queue, OLD_ID, payload={}, due=START + 10, dedupe_key="review:j1")
    await write_old_task(redis_client, queue, OLD_PLAIN, payload={}, due=START + 10)
    assert await queue.cancel_dedupe("review:j1") is True
    assert await queue.cancel(OLD_PLAIN) is True
    assert await queue.get(OLD_ID) is None and await queue.get(OLD_PLAIN) is None
    assert await redis_client.hlen(queue.keys.tasks) == 0 and await redis_client.hlen(queue.keys.dedupe) == 0


async def test_a_keyed_task_is_one_hash_entry_and_its_key_holds_across_types(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    first = await queue.schedule("t.a", {"n": 1}, tenant="acme", dedupe_key="job:7")
    plain = await queue.schedule("t.a", {"n": 2}, tenant="acme")
    assert first is not None and plain is not None
    assert first.startswith("t.a:") and plain.startswith("t.a:") and first != plain
    # the record lives in the key's own field; no separate dedupe index entry
    assert await redis_client.hlen(queue.keys.dedupe) == 0
    assert set(await redis_client.hkeys(queue.keys.tasks)) == {key_field("job:7").encode(), plain.encode()}
    # a dedupe key is the queue's, whatever the type
    assert await queue.schedule("t.b", {}, tenant="acme", dedupe_key="job:7") == first
    task = await queue.get(first)
    assert task is not None and (task.type, task.payload, task.dedupe_key) == ("t.a", {"n": 1}, "job:7")


async def test_a_key_whose_field_holds_a_dead_letter_is_indexed_apart(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    dead_id = await queue.schedule("t.k", {"n": 1}, tenant=None, dedupe_key="k")
    (task,), _ = await queue.claim("w1", limit=10, lease=30)
    await queue.fail(task, "boom", retry_in=None)

    # the dead letter keeps its record (and the key's field); a new task of the key goes elsewhere
    second = await queue.schedule("t.k", {"n": 2}, tenant=None, dedupe_key="k")
    assert second is not None and second != dead_id
    assert await queue.schedule("t.k", {"n": 3}, tenant=None, dedupe_key="k") == second
    assert await redis_client.hget(queue.keys.dedupe, "k") == second.encode()

    # retried while the second holds the key, the dead letter does not take it ...
    assert dead_id is not None and await queue.retry_dead(dead_id) == 1
    assert await queue.schedule("t.k", {}, tenant=None, dedupe_key="k") == second
    tasks, _ = await queue.claim("w1", limit=10, lease=30)
    by_id = {t.id: t for t in tasks}
    assert set(by_id) == {dead_id, second} and by_id[dead_id].payload == {"n": 1}
    await queue.ack([by_id[second]])
    # ... not even once the second is done (as before the compact layout)
    third = await queue.schedule("t.k", {"n": 4}, tenant=None, dedupe_key="k")
    assert third not in (None, dead_id, second)
    await queue.fail(by_id[dead_id], "again", retry_in=None)

    # a dead letter retried when nobody holds its key takes it back
    (held,), _ = await queue.claim("w1", limit=10, lease=30)
    await queue.ack([held])
    assert await queue.retry_dead(dead_id) == 1
    assert await queue.schedule("t.k", {}, tenant=None, dedupe_key="k") == dead_id
    assert await queue.cancel_dedupe("k") is True
    assert await queue.schedule("t.k", {}, tenant=None, dedupe_key="k") not in (None, dead_id)


async def test_a_key_field_holding_another_keys_record_is_no_dedupe_hit(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    # what a hash collision of two keys would look like: key "b"'s field holds key "a"'s task
    other = await queue.schedule("t.c", {}, tenant=None, dedupe_key="a")
    assert other is not None
    record = await redis_client.hget(queue.keys.tasks, key_field("a"))
    assert record is not None
    await redis_client.hset(queue.keys.tasks, key_field("b"), record)
    mine = await queue.schedule("t.c", {}, tenant=None, dedupe_key="b")
    assert mine not in (None, other)
    assert await queue.schedule("t.c", {}, tenant=None, dedupe_key="b") == mine


async def test_a_rewritten_record_leaves_out_absent_values_and_reads_back(redis_client: aioredis.Redis) -> None:
    queue, _ = manual_queue(redis_client)
    task_id = await queue.schedule("t.r", {}, tenant=None, max_attempts=2)
    assert task_id is not None
    (task,), _ = await queue.claim("w1", limit=1, lease=30)
    # what Task.record writes for a task with no tenant, key, delivery or error: no trailing nulls
    record = task.record()
    assert record == f"[{START!r},{START!r},0,null,{{}},2]"
    await redis_client.hset(queue.keys.tasks, task_id, record)
    assert await queue.defer(task, START + 5) == START + 5
    again = await queue.get(task_id)
    assert again is not None
    assert (again.tenant, again.dedupe_key, again.delivery, again.errors) == (None, None, None, [])
    assert (again.created, again.first_due, again.max_attempts, again.due) == (START, START, 2, START + 5)
