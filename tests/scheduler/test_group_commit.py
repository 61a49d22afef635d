"""Group commit: the schedule calls of one loop turn share a pipeline, each still its own script run."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from lily_host.plugin_api.clock import ManualClock
from lily_host.queue import TaskQueue
from lily_host.queue.group_commit import ScriptBatcher

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def batcher(client: aioredis.Redis) -> ScriptBatcher:
    return ScriptBatcher(client, client.register_script(INCR))


async def test_calls_of_one_loop_turn_travel_in_one_pipeline_each_with_its_own_result(
    redis_client: aioredis.Redis,
) -> None:
    run = batcher(redis_client)
    results = await asyncio.gather(*(run([f"k{i % 3}"], [str(i)]) for i in range(30)))
    assert run.batches == 1 and run.calls == 30
    # each call saw the running total of its own key at its turn: the scripts ran one by one, in order
    for key in range(3):
        steps = [i for i in range(30) if i % 3 == key]
        assert [results[i] for i in steps] == [sum(steps[: n + 1]) for n in range(len(steps))]


async def test_a_lone_call_is_sent_at_once_and_later_turns_make_new_batches(redis_client: aioredis.Redis) -> None:
    run = batcher(redis_client)
    assert await run(["solo"], ["5"]) == 5
    assert await run(["solo"], ["1"]) == 6
    assert run.batches == 2 and run.calls == 2


async def test_one_failing_call_fails_alone(redis_client: aioredis.Redis) -> None:
    await redis_client.rpush("a-list", "x")
    run = batcher(redis_client)
    results = await asyncio.gather(
        run(["fine"], ["1"]), run(["a-list"], ["1"]), run(["fine"], ["2"]), return_exceptions=True
    )
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])


async def test_a_server_that_lost_the_script_gets_it_once_and_every_call_runs(redis_client: aioredis.Redis) -> None:
    run = batcher(redis_client)
    assert await run(["n"], ["1"]) == 1
    await redis_client.script_flush()  # as after a Redis restart
    results = await asyncio.gather(*(run(["n"], ["1"]) for _ in range(5)))
    assert sorted(results) == [2, 3, 4, 5, 6]
    assert int(await redis_client.get("n") or 0) == 6


async def test_an_unreachable_server_fails_every_caller_of_the_batch() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1")  # nothing listens on port 1
    run = batcher(client)
    results = await asyncio.gather(run(["a"], ["1"]), run(["b"], ["1"]), return_exceptions=True)
    assert all(isinstance(result, Exception) for result in results)
    await client.aclose()


async def test_a_cancelled_caller_does_not_take_the_batch_down(redis_client: aioredis.Redis) -> None:
    run = batcher(redis_client)
    first = asyncio.ensure_future(run(["c"], ["1"]))
    second = asyncio.ensure_future(run(["c"], ["10"]))
    await asyncio.sleep(0)  # both are queued; the batch leaves at the end of this turn
    first.cancel()
    assert await second == 11  # the cancelled call had already been sent: it ran all the same
    await run.drain()
    assert int(await redis_client.get("c") or 0) == 11


async def test_queue_schedules_from_concurrent_webhooks_in_one_trip_and_keeps_each_guard(
    redis_client: aioredis.Redis,
) -> None:
    queue = TaskQueue(redis_client, name="t", clock=ManualClock())
    spec = {"type": "t.ingest", "payload": {}, "tenant": "acme"}
    results = await asyncio.gather(
        *(queue.schedule_many([spec], guard=(f"seen:twilio:CA{i % 4}", 60)) for i in range(8))
    )
    assert sum(result is not None for result in results) == 4  # one per delivery id, the rest duplicates
    assert all(results[i] is not None for i in range(4))  # the first of each id, in call order, won
    assert (await queue.stats()).due == 4
    await queue.drain()
