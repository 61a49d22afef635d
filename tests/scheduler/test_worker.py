"""What the worker does with each handler outcome, and its timers: heartbeats, wake-ups, draining."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import structlog
from prometheus_client import REGISTRY

from lily_host.plugin_api.clock import ManualClock
from lily_host.plugin_api.contract import RetryPolicy, TaskContext, TaskHandler
from lily_host.plugin_api.errors import Defer, PermanentError, RetryLater
from lily_host.queue import TaskQueue, Worker, collect_depth
from lily_host.queue.retry import backoff_bounds

START = 1_700_000_000.0
Handler = Callable[[TaskContext, dict[str, Any]], Any]


def setup(
    client: aioredis.Redis,
    fake_host: Callable[[TaskQueue], Any],
    handlers: dict[str, Handler],
    *,
    name: str = "w",
    policies: dict[str, RetryPolicy] | None = None,
    **options: Any,
) -> tuple[TaskQueue, ManualClock, Worker]:
    clock = ManualClock(START)
    queue = TaskQueue(client, name=name, clock=clock, policies=policies)
    registered = {task_type: TaskHandler(task_type, func) for task_type, func in handlers.items()}
    return queue, clock, Worker(queue, registered, host=fake_host(queue), **options)


async def test_backoff_schedule_is_followed_exactly_then_dead_letters(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    attempts: list[int] = []

    async def flaky(ctx: TaskContext, payload: dict[str, Any]) -> None:
        attempts.append(ctx.attempt)
        raise ConnectionError("provider down")

    policy = RetryPolicy(max_attempts=4, backoff_base=2.0, backoff_cap=5.0, jitter=0.0)
    queue, clock, worker = setup(redis_client, fake_host, {"t.flaky": flaky}, policies={"t.flaky": policy})
    task_id = await queue.schedule("t.flaky", {}, tenant="acme")
    assert task_id is not None

    for attempt, wait in [(1, 2.0), (2, 4.0), (3, 5.0)]:  # 2 * 2**(n-1), capped at 5
        assert await worker.run_due() == 1
        task = await queue.get(task_id)
        assert task is not None and task.state == "due" and task.attempt == attempt + 1
        assert task.due == clock.now() + wait
        clock.advance(wait - 0.001)
        assert await worker.run_due() == 0  # never before its time
        clock.advance(0.001)

    assert await worker.run_due() == 1
    assert attempts == [1, 2, 3, 4]
    dead = await queue.get(task_id)
    assert dead is not None and dead.state == "dead" and dead.attempt == 4 and dead.dead_at == clock.now()
    assert dead.last_error == "ConnectionError: provider down"
    assert [(e["attempt"], e["outcome"]) for e in dead.errors] == [
        (1, "retry"),
        (2, "retry"),
        (3, "retry"),
        (4, "dead"),
    ]
    assert dead.first_due == START


async def test_backoff_jitter_stays_within_the_policy_bounds(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    async def failing(ctx: TaskContext, payload: dict[str, Any]) -> None:
        raise RuntimeError("nope")

    policy = RetryPolicy(max_attempts=5, backoff_base=3.0, backoff_cap=600.0, jitter=1.0)
    queue, _, worker = setup(redis_client, fake_host, {"t.j": failing}, policies={"t.j": policy})
    ids = [await queue.schedule("t.j", {}, tenant=None) for _ in range(20)]
    assert await worker.run_due() == 20
    low, high = backoff_bounds(policy, 1)
    assert (low, high) == (3.0, 4.0)
    for task_id in ids:
        task = await queue.get(task_id or "")
        assert task is not None and task.due is not None and START + low <= task.due <= START + high


async def test_the_handlers_own_policy_is_used_when_the_queue_has_none(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    async def failing(ctx: TaskContext, payload: dict[str, Any]) -> None:
        raise RuntimeError("nope")

    clock = ManualClock(START)
    queue = TaskQueue(redis_client, name="hp", clock=clock)
    policy = RetryPolicy(backoff_base=42.0, jitter=0.0)
    worker = Worker(queue, {"t.h": TaskHandler("t.h", failing, retry=policy)}, host=fake_host(queue))
    task_id = await queue.schedule("t.h", {}, tenant=None)
    await worker.run_due()
    task = await queue.get(task_id or "")
    assert task is not None and task.due == START + 42


async def test_permanent_error_goes_straight_to_dead_letters(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    async def refuse(ctx: TaskContext, payload: dict[str, Any]) -> None:
        raise PermanentError("recipient opted out", code="21610")

    queue, _, worker = setup(redis_client, fake_host, {"t.perm": refuse})
    task_id = await queue.schedule("t.perm", {}, tenant="acme", dedupe_key="once")
    assert await worker.run_due() == 1
    task = await queue.get(task_id or "")
    assert task is not None and task.state == "dead" and task.attempt == 1
    assert task.last_error == "PermanentError: recipient opted out"
    assert await queue.schedule("t.perm", {}, tenant="acme", dedupe_key="once") != task_id


async def test_retry_later_waits_exactly_the_given_seconds_and_spends_an_attempt(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    seen: list[int] = []

    async def limited(ctx: TaskContext, payload: dict[str, Any]) -> None:
        seen.append(ctx.attempt)
        raise RetryLater("429 from provider", seconds=7)

    policy = RetryPolicy(max_attempts=2)
    queue, clock, worker = setup(redis_client, fake_host, {"t.rl": limited}, policies={"t.rl": policy})
    task_id = await queue.schedule("t.rl", {}, tenant=None)
    await worker.run_due()
    task = await queue.get(task_id or "")
    assert task is not None and task.due == START + 7 and task.attempt == 2
    assert task.last_error == "RetryLater: 429 from provider"
    clock.advance(6.9)
    assert await worker.run_due() == 0
    clock.advance(0.1)
    assert await worker.run_due() == 1
    assert seen == [1, 2]
    final = await queue.get(task_id or "")
    assert final is not None and final.state == "dead"  # the last attempt cannot be retried


async def test_defer_reschedules_without_spending_an_attempt(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    seen: list[int] = []

    async def quiet_hours(ctx: TaskContext, payload: dict[str, Any]) -> None:
        seen.append(ctx.attempt)
        if len(seen) < 4:
            raise Defer("quiet hours", until=ctx.now() + 3600)

    queue, clock, worker = setup(
        redis_client, fake_host, {"t.defer": quiet_hours}, policies={"t.defer": RetryPolicy(max_attempts=1)}
    )
    task_id = await queue.schedule("t.defer", {}, tenant=None)
    for _ in range(3):
        assert await worker.run_due() == 1
        task = await queue.get(task_id or "")
        assert task is not None and task.attempt == 1 and task.due == clock.now() + 3600
        clock.advance(3600)
    assert await worker.run_due() == 1
    assert seen == [1, 1, 1, 1]
    assert await queue.get(task_id or "") is None  # done, with max_attempts=1 never exceeded


async def test_unknown_task_type_waits_for_a_worker_that_knows_it_then_is_dead_lettered(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    queue, clock, worker = setup(redis_client, fake_host, {}, unknown_type_grace=300, unknown_type_recheck=30)
    task_id = await queue.schedule("gone.plugin_task", {}, tenant=None)
    assert await worker.run_due() == 1
    task = await queue.get(task_id or "")
    assert task is not None and task.state == "due" and task.due == START + 30
    assert task.attempt == 1  # put back without spending an attempt
    for _ in range(9):  # rechecked every 30 s while the grace lasts
        clock.advance(30)
        assert await worker.run_due() == 1
    clock.advance(30)
    assert await worker.run_due() == 1
    task = await queue.get(task_id or "")
    assert task is not None and task.state == "dead"
    assert task.last_error == (
        "no handler registered for task type 'gone.plugin_task' (no worker took it within 300 s of its due time)"
    )


async def test_a_task_from_a_newer_release_runs_once_a_worker_that_knows_it_is_up(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    ran: list[str] = []

    async def new_task(ctx: TaskContext, payload: dict[str, Any]) -> None:
        ran.append(ctx.task_id)

    queue, clock, old_worker = setup(redis_client, fake_host, {})
    task_id = await queue.schedule("new.feature", {}, tenant=None)
    assert await old_worker.run_due() == 1  # the old release puts it back
    new_worker = Worker(queue, {"new.feature": TaskHandler("new.feature", new_task)}, host=fake_host(queue))
    clock.advance(30)
    assert await new_worker.run_due() == 1
    assert ran == [task_id]
    assert await queue.get(task_id or "") is None


async def test_a_run_lost_on_the_final_attempt_is_dead_lettered(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    ran: list[int] = []

    async def handler(ctx: TaskContext, payload: dict[str, Any]) -> None:
        ran.append(ctx.attempt)

    queue, clock, worker = setup(redis_client, fake_host, {"t.crash": handler})
    task_id = await queue.schedule("t.crash", {}, tenant=None, max_attempts=1)
    await queue.claim("a-worker-that-dies", limit=1, lease=5)
    clock.advance(6)
    assert await worker.run_due() == 1
    task = await queue.get(task_id or "")
    assert ran == [] and task is not None and task.state == "dead"
    assert task.last_error is not None and "earlier run was lost" in task.last_error


async def test_follow_ups_due_now_run_in_the_same_run_due_with_the_same_tenant(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    seen: list[tuple[str, str | None]] = []

    async def first(ctx: TaskContext, payload: dict[str, Any]) -> None:
        seen.append((ctx.task_type, ctx.tenant_id))
        await ctx.schedule("t.second", {"from": ctx.task_id})
        await ctx.schedule("t.second", {"later": True}, delay=60)

    async def second(ctx: TaskContext, payload: dict[str, Any]) -> None:
        seen.append((ctx.task_type, ctx.tenant_id))

    queue, _, worker = setup(redis_client, fake_host, {"t.first": first, "t.second": second})
    await queue.schedule("t.first", {}, tenant="acme")
    assert await worker.run_due() == 2
    assert seen == [("t.first", "acme"), ("t.second", "acme")]
    assert (await queue.stats()).due == 1


async def test_every_log_line_carries_task_id_and_attempt(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    async def noisy(ctx: TaskContext, payload: dict[str, Any]) -> None:
        ctx.log.info("sending")
        raise ValueError("bad")

    with structlog.testing.capture_logs() as logs:
        queue, _, worker = setup(redis_client, fake_host, {"t.log": noisy})
        task_id = await queue.schedule("t.log", {}, tenant="acme")
        await worker.run_due()
    task_lines = [line for line in logs if line["event"] in ("sending", "task.retry")]
    assert len(task_lines) == 2
    for line in task_lines:
        assert (line["task_id"], line["attempt"], line["task_type"], line["tenant"]) == (
            task_id,
            1,
            "t.log",
            "acme",
        )


async def test_outcome_metrics_and_queue_depth_gauges(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    async def ok(ctx: TaskContext, payload: dict[str, Any]) -> None:
        if payload.get("fail"):
            raise PermanentError("no")

    queue, _, worker = setup(redis_client, fake_host, {"t.m": ok}, name="metrics-q")
    await queue.schedule_many([{"type": "t.m", "payload": {"fail": i == 0}, "tenant": None} for i in range(3)])
    await queue.schedule("t.m", {}, tenant=None, delay=60)
    await worker.run_due()

    def sample(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"queue": "metrics-q", **labels})

    assert sample("lily_task_outcomes_total", type="t.m", outcome="ok") == 2
    assert sample("lily_task_outcomes_total", type="t.m", outcome="dead") == 1
    assert sample("lily_task_duration_seconds_count", type="t.m") == 3
    assert sample("lily_tasks_scheduled_total", type="t.m") == 4
    await collect_depth(queue)
    assert sample("lily_tasks_due", type="t.m") == 1
    assert sample("lily_tasks_dead", type="t.m") == 1
    assert sample("lily_tasks_in_flight", type="t.m") == 0


# --- real time ---------------------------------------------------------------------------------


async def test_heartbeats_keep_a_slow_task_from_running_twice(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any], wait_until: Any
) -> None:
    runs: list[str] = []
    done = asyncio.Event()

    async def slow(ctx: TaskContext, payload: dict[str, Any]) -> None:
        runs.append(ctx.task_id)
        await asyncio.sleep(2.0)  # more than three leases
        done.set()

    queue = TaskQueue(redis_client, name="hb")
    handlers = {"t.slow": TaskHandler("t.slow", slow)}
    workers = [Worker(queue, handlers, host=fake_host(queue), lease=0.6, worker_id=f"w{i}") for i in range(2)]
    running = [asyncio.create_task(w.run()) for w in workers]
    await queue.schedule("t.slow", {}, tenant=None)
    await asyncio.wait_for(done.wait(), 10)
    await wait_until(lambda: _empty(queue), message="slow task acked")
    await asyncio.sleep(0.7)  # past another lease: nobody picks it up again
    for w in workers:
        w.stop()
    await asyncio.gather(*running)
    assert len(runs) == 1


async def _empty(queue: TaskQueue) -> bool:
    stats = await queue.stats()
    return stats.due == 0 and stats.in_flight == 0


async def test_a_sleeping_worker_is_woken_by_an_earlier_task(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    ran = asyncio.Event()

    async def handler(ctx: TaskContext, payload: dict[str, Any]) -> None:
        ran.set()

    queue = TaskQueue(redis_client, name="wake")
    await queue.schedule("t.wake", {}, tenant=None, delay=120)  # the worker's timer points here
    worker = Worker(queue, {"t.wake": TaskHandler("t.wake", handler)}, host=fake_host(queue), max_sleep=60)
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.3)  # let it claim, find nothing due and go to sleep
    await queue.schedule("t.wake", {}, tenant=None)
    # Without the pub/sub wake-up it would sleep 60 s; the bound here is generous, not a timing claim.
    await asyncio.wait_for(ran.wait(), 10)
    worker.stop()
    await running


async def test_busy_workers_do_not_hide_due_tasks_from_an_idle_one(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any], wait_until: Any
) -> None:
    release = asyncio.Event()
    quick: list[str] = []

    async def blocking(ctx: TaskContext, payload: dict[str, Any]) -> None:
        await release.wait()

    async def fast(ctx: TaskContext, payload: dict[str, Any]) -> None:
        quick.append(ctx.task_id)

    queue = TaskQueue(redis_client, name="busy")
    busy = Worker(queue, {"t.block": TaskHandler("t.block", blocking)}, host=fake_host(queue), concurrency=2)
    await queue.schedule_many([{"type": "t.block", "payload": {}, "tenant": None} for _ in range(2)])
    busy_run = asyncio.create_task(busy.run())
    await wait_until(lambda: _in_flight(queue, 2), message="busy worker holds two tasks")

    idle = Worker(queue, {"t.fast": TaskHandler("t.fast", fast)}, host=fake_host(queue))
    idle_run = asyncio.create_task(idle.run())
    await queue.schedule_many([{"type": "t.fast", "payload": {}, "tenant": None} for _ in range(10)])
    await wait_until(lambda: _count(quick, 10), message="idle worker ran the due tasks")
    release.set()
    busy.stop()
    idle.stop()
    await asyncio.gather(busy_run, idle_run)


async def _in_flight(queue: TaskQueue, n: int) -> bool:
    return (await queue.stats()).in_flight == n


async def _count(items: list[str], n: int) -> bool:
    return len(items) >= n


async def test_stop_finishes_running_tasks_and_hands_back_what_outlives_the_drain(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any], wait_until: Any
) -> None:
    finished: list[str] = []

    async def handler(ctx: TaskContext, payload: dict[str, Any]) -> None:
        await asyncio.sleep(payload["seconds"])
        finished.append(payload["name"])

    queue = TaskQueue(redis_client, name="drain")
    worker = Worker(queue, {"t.d": TaskHandler("t.d", handler)}, host=fake_host(queue), drain_timeout=0.5)
    short = await queue.schedule("t.d", {"seconds": 0.2, "name": "short"}, tenant=None)
    long = await queue.schedule("t.d", {"seconds": 30, "name": "long"}, tenant=None)
    running = asyncio.create_task(worker.run())
    await wait_until(lambda: _in_flight(queue, 2), message="both tasks started")
    worker.stop()
    await asyncio.wait_for(running, 10)
    assert finished == ["short"]
    assert await queue.get(short or "") is None
    handed_back = await queue.get(long or "")
    assert handed_back is not None and handed_back.state == "due" and handed_back.attempt == 1


@pytest.mark.parametrize("bad", [{"delay": 1, "run_at": 2}, {"max_attempts": 0}, {"dedupe_key": ""}])
async def test_schedule_rejects_contradictory_options(redis_client: aioredis.Redis, bad: dict[str, Any]) -> None:
    queue = TaskQueue(redis_client, name="bad")
    with pytest.raises(ValueError):
        await queue.schedule("t.x", {}, tenant=None, **bad)


async def test_a_handler_raising_cancelled_error_itself_is_retried_not_stranded(
    redis_client: aioredis.Redis, fake_host: Callable[[TaskQueue], Any]
) -> None:
    async def leaky(ctx: TaskContext, payload: dict[str, Any]) -> None:
        raise asyncio.CancelledError  # e.g. a library's timeout leaking out

    queue, _, worker = setup(redis_client, fake_host, {"t.cx": leaky})
    task_id = await queue.schedule("t.cx", {}, tenant=None)
    assert await worker.run_due() == 1
    task = await queue.get(task_id or "")
    assert task is not None and task.state == "due" and task.attempt == 2
    assert task.last_error == "CancelledError"
