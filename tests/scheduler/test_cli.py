"""``lily tasks ...`` against a real Redis, through click's CliRunner."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner

from lily_host.cli.task_commands import parse_duration, tasks
from lily_host.plugin_api.clock import ManualClock
from lily_host.queue import TaskQueue

START = 1_700_000_000.0
DAY = 86400.0

QueueFactory = Callable[[], AbstractAsyncContextManager[TaskQueue]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_queue(redis_url: str, clock: ManualClock) -> QueueFactory:
    @asynccontextmanager
    async def open_queue() -> AsyncIterator[TaskQueue]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            yield TaskQueue(client, name="cli", clock=clock)
        finally:
            await client.aclose()

    return open_queue


def run(make_queue: QueueFactory, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(tasks, list(args), obj=make_queue, catch_exceptions=False)
    return result.exit_code, result.output


def seed(make_queue: QueueFactory, clock: ManualClock) -> dict[str, list[str]]:
    """Two due sms tasks (one in the future), one in flight, two dead (one a week older)."""

    async def go() -> dict[str, list[str]]:
        async with make_queue() as queue:
            dead = []
            for age in (8 * DAY, 0.0):
                clock.set(START - age)
                task_id = await queue.schedule("t.sync", {"n": age}, tenant="acme")
                (task,), _ = await queue.claim("w", limit=1, lease=30)
                await queue.fail(task, "HTTPError: 500 from provider", retry_in=None)
                dead.append(task_id or "")
            clock.set(START)
            due = [await queue.schedule("t.sms", {}, tenant="acme", delay=d) for d in (0, 3600)]
            await queue.schedule("t.review", {}, tenant="bob")
            (flying,), _ = await queue.claim("w", limit=1, lease=30)
            return {"dead": dead, "due": [i or "" for i in due], "in_flight": [flying.id]}

    return asyncio.run(go())


@pytest.fixture
def chicago_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Listings print the machine's local time: pin it to Chicago's."""
    monkeypatch.setenv("TZ", "America/Chicago")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_stats_shows_totals_and_types(make_queue: QueueFactory, clock: ManualClock, chicago_time: None) -> None:
    seed(make_queue, clock)
    code, output = run(make_queue, "stats")
    assert code == 0
    lines = output.splitlines()
    assert lines[0] == "queue cli at 2023-11-14 16:13:20 CST"  # 22:13:20 UTC, in local time
    assert lines[2].split() == ["total", "2", "1", "1", "2"]
    assert {line.split()[0]: line.split()[1:] for line in lines[3:]} == {
        "t.review": ["0", "0", "1", "0"],
        "t.sms": ["2", "1", "0", "0"],
        "t.sync": ["0", "0", "0", "2"],
    }
    code, output = run(make_queue, "stats", "--json")
    assert json.loads(output)["by_type"]["t.sms"] == {"due": 2, "ready": 1, "in_flight": 0, "dead": 0}


def test_list_due_dead_and_in_flight(make_queue: QueueFactory, clock: ManualClock) -> None:
    ids = seed(make_queue, clock)
    for flag, which in [("--due", "due"), ("--dead", "dead"), ("--in-flight", "in_flight")]:
        code, output = run(make_queue, "list", flag)
        assert code == 0
        header, *rows = output.splitlines()
        assert header.split()[:4] == ["id", "type", "tenant", "attempt"]
        assert [line.split()[0] for line in rows] == ids[which]
    _, output = run(make_queue, "list", "--dead", "--limit", "1")
    header, row = output.splitlines()
    assert "last error" in header
    assert " 1/5 " in row and row.endswith("HTTPError: 500 from provider")
    _, output = run(make_queue, "list")  # --due is the default
    assert [line.split()[0] for line in output.splitlines()[1:]] == ids["due"]
    _, output = run(make_queue, "list", "--dead", "--json")
    assert [t["id"] for t in json.loads(output)] == ids["dead"]


def test_retry_one_or_all_dead(make_queue: QueueFactory, clock: ManualClock) -> None:
    ids = seed(make_queue, clock)
    assert run(make_queue, "retry", ids["dead"][0]) == (0, "requeued 1 task\n")
    code, output = run(make_queue, "retry", ids["dead"][0])
    assert code == 1 and "is not a dead task" in output
    assert run(make_queue, "retry", "--all-dead") == (0, "requeued 1 task\n")
    assert run(make_queue, "list", "--dead") == (0, "no dead tasks\n")
    code, output = run(make_queue, "retry")
    assert code == 2 and "give a task id or --all-dead" in output


def test_purge_dead_older_than(make_queue: QueueFactory, clock: ManualClock) -> None:
    ids = seed(make_queue, clock)
    assert run(make_queue, "purge-dead", "--older-than", "7d") == (0, "purged 1 dead task\n")
    _, output = run(make_queue, "list", "--dead")
    assert [line.split()[0] for line in output.splitlines()[1:]] == [ids["dead"][1]]
    code, output = run(make_queue, "purge-dead", "--older-than", "soon")
    assert code == 2 and "not a duration" in output


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("90", 90)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_commands_without_a_queue_factory_say_so() -> None:
    result = CliRunner().invoke(tasks, ["stats"], obj=None)
    assert result.exit_code == 2 and "no queue configured" in result.output


def test_run_now_makes_a_scheduled_task_due_now(
    make_queue: QueueFactory, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LILY_ENV", "development")
    ids = seed(make_queue, clock)
    later = ids["due"][1]  # due in an hour
    code, output = run(make_queue, "run-now", later)
    assert code == 0 and f"{later} is due now" in output

    async def claim_all() -> list[str]:
        async with make_queue() as queue:
            claimed, _ = await queue.claim("w2", limit=10, lease=30)
            return [task.id for task in claimed]

    assert later in asyncio.run(claim_all()), "claimable at once, without the clock moving"
    code, output = run(make_queue, "run-now", ids["dead"][0])
    assert code == 1 and "is not a scheduled task" in output
    code, output = run(make_queue, "run-now", ids["in_flight"][0])
    assert code == 1 and "is not a scheduled task" in output


def test_run_now_is_refused_in_production(make_queue: QueueFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LILY_ENV", "production")
    code, output = run(make_queue, "run-now", "t.sms:abc")
    assert code == 1 and "refused when LILY_ENV=production" in output
