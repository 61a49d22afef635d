"""Workers as real processes, and Redis itself crashing: what at-least-once has to survive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from lily_host.plugin_api.clock import ManualClock
from lily_host.plugin_api.contract import TaskContext, TaskHandler
from lily_host.queue import TaskQueue, Worker

START = 1_700_000_000.0


async def _hash(client: aioredis.Redis, key: str) -> dict[str, int]:
    raw: dict[bytes, bytes] = await cast(Any, client).hgetall(key)
    return {k.decode(): int(v) for k, v in raw.items()}


async def _subscribers(client: aioredis.Redis, queue: TaskQueue, n: int) -> bool:
    if isinstance(client, RedisCluster):
        # Workers subscribe on the node that holds the queue's slot (TaskQueue.wake_subscription).
        await client.initialize()
        node = client.get_node_from_key(queue.keys.due)
        reply = await client.execute_command("PUBSUB", "NUMSUB", queue.channel, target_nodes=node)
        return int(reply[1]) >= n
    counts = dict(await client.pubsub_numsub(queue.channel))
    return int(counts.get(queue.channel.encode(), 0)) >= n


async def test_a_task_of_a_sigkilled_worker_runs_again_once_its_lease_expires(
    redis_client: aioredis.Redis, spawn_worker: Callable[..., Any], wait_until: Any
) -> None:
    queue = TaskQueue(redis_client, name="kill")
    doomed = spawn_worker("kill", lease=1.0)
    task_id = await queue.schedule("test.work", {"seconds": 60, "first_only": True}, tenant=None)
    await wait_until(lambda: _hash(redis_client, "test:kill:started"), message=doomed.output())
    doomed.kill()

    spawn_worker("kill", lease=1.0)
    done = await wait_until(lambda: _hash(redis_client, "test:kill:done"), within=20)
    assert done == {task_id: 1}
    assert await _hash(redis_client, "test:kill:started") == {task_id: 2}
    await wait_until(lambda: _empty(queue), message="the rerun was acked")


async def _empty(queue: TaskQueue) -> bool:
    stats = await queue.stats()
    return stats.due == 0 and stats.in_flight == 0 and stats.dead == 0


async def test_sigterm_drains_running_tasks_then_exits(
    redis_client: aioredis.Redis, spawn_worker: Callable[..., Any], wait_until: Any
) -> None:
    queue = TaskQueue(redis_client, name="term")
    worker = spawn_worker("term", lease=1.0, drain_timeout=20)
    task_id = await queue.schedule("test.work", {"seconds": 1.5}, tenant=None)
    await wait_until(lambda: _hash(redis_client, "test:term:started"), message=worker.output())
    worker.terminate()
    assert await asyncio.to_thread(worker.wait, 20) == 0, worker.output()
    assert await _hash(redis_client, "test:term:done") == {task_id: 1}
    assert await _empty(queue)
    assert "worker.draining" in worker.output()


async def test_sigterm_hands_back_a_task_that_outlives_the_drain_timeout(
    redis_client: aioredis.Redis, spawn_worker: Callable[..., Any], wait_until: Any
) -> None:
    queue = TaskQueue(redis_client, name="handback")
    worker = spawn_worker("handback", lease=30.0, drain_timeout=0.3)
    task_id = await queue.schedule("test.work", {"seconds": 60}, tenant=None)
    await wait_until(lambda: _hash(redis_client, "test:handback:started"), message=worker.output())
    worker.terminate()
    assert await asyncio.to_thread(worker.wait, 20) == 0, worker.output()
    assert await _hash(redis_client, "test:handback:done") == {}
    task = await queue.get(task_id or "")
    # due again right away (not after the 30 s lease), and the interrupted run was not counted
    assert task is not None and task.state == "due" and task.attempt == 1


async def test_two_worker_processes_run_each_of_2000_tasks_exactly_once(
    redis_client: aioredis.Redis, spawn_worker: Callable[..., Any], wait_until: Any
) -> None:
    queue = TaskQueue(redis_client, name="pair")
    for _ in range(2):
        spawn_worker("pair", lease=5.0, concurrency=8)
    await wait_until(lambda: _subscribers(redis_client, queue, 2), message="both workers listening")
    ids = await queue.schedule_many(
        [{"type": "test.work", "payload": {"seconds": 0.002}, "tenant": None} for _ in range(2000)]
    )
    assert ids is not None and len(set(ids)) == 2000

    async def all_done() -> bool:
        done: int = await cast(Any, redis_client).hlen("test:pair:done")
        return done == 2000 and await _empty(queue)

    await wait_until(all_done, within=40, message="2000 tasks done")
    started = await _hash(redis_client, "test:pair:started")
    assert set(started) == set(ids) and set(started.values()) == {1}
    assert set((await _hash(redis_client, "test:pair:done")).values()) == {1}
    by_worker = await _hash(redis_client, "test:pair:by_worker")
    assert len(by_worker) == 2 and sum(by_worker.values()) == 2000


async def test_a_redis_crash_with_aof_loses_no_scheduled_or_claimed_task(
    make_redis: Callable[..., Any], fake_host: Callable[[TaskQueue], Any]
) -> None:
    server = make_redis(aof=True)
    clock = ManualClock(START)
    client = aioredis.Redis.from_url(server.url)
    queue = TaskQueue(client, name="aof", clock=clock)
    now_ids = await queue.schedule_many(
        [{"type": "t.aof", "payload": {"i": i}, "tenant": "acme", "dedupe_key": f"k{i}"} for i in range(300)]
    )
    later_ids = [await queue.schedule("t.aof", {"i": i}, tenant=None, delay=60 + i) or "" for i in range(200)]
    claimed, _ = await queue.claim("worker-lost-with-redis", limit=50, lease=10)
    await client.aclose()

    server.kill()
    server.start()

    client = aioredis.Redis.from_url(server.url)
    queue = TaskQueue(client, name="aof", clock=clock)
    stats = await queue.stats()
    assert (stats.due, stats.ready, stats.in_flight) == (450, 250, 50)
    assert await queue.schedule("t.aof", {}, tenant=None, dedupe_key="k0") == now_ids[0]  # type: ignore[index]

    ran: list[str] = []

    async def handler(ctx: TaskContext, payload: dict[str, Any]) -> None:
        ran.append(ctx.task_id)

    clock.advance(300)  # past every due time and the claimed tasks' lease
    worker = Worker(queue, {"t.aof": TaskHandler("t.aof", handler)}, host=fake_host(queue))
    assert await worker.run_due() == 500
    assert sorted(ran) == sorted([*(now_ids or []), *later_ids])
    assert {t.id for t in claimed} <= set(ran)
    await client.aclose()


async def test_a_running_worker_survives_a_redis_restart(
    make_redis: Callable[..., Any], fake_host: Callable[[TaskQueue], Any], wait_until: Any
) -> None:
    server = make_redis(aof=True)
    client = aioredis.Redis.from_url(server.url)
    queue = TaskQueue(client, name="live")
    ran: list[int] = []

    async def handler(ctx: TaskContext, payload: dict[str, Any]) -> None:
        ran.append(payload["i"])

    worker = Worker(queue, {"t.live": TaskHandler("t.live", handler)}, host=fake_host(queue), max_sleep=60)
    running = asyncio.create_task(worker.run())
    await queue.schedule_many([{"type": "t.live", "payload": {"i": i}, "tenant": None} for i in range(20)])
    await wait_until(lambda: _count(ran, 20), message="first batch")

    server.kill()
    await asyncio.sleep(0.3)  # the worker notices and backs off
    server.start()

    async def schedule_again() -> bool:
        try:
            await queue.schedule_many([{"type": "t.live", "payload": {"i": i}, "tenant": None} for i in range(20, 40)])
        except (ConnectionError, OSError, aioredis.ConnectionError):
            return False
        return True

    await wait_until(schedule_again, message="redis back")
    await wait_until(lambda: _count(ran, 40), within=20, message="second batch after the restart")
    assert sorted(ran) == list(range(40))
    worker.stop()
    await running
    await client.aclose()


async def _count(items: list[int], n: int) -> bool:
    return len(items) >= n
