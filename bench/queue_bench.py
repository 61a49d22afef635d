"""Lily's task queue against arq, on one machine, with no-op tasks. Run: python bench/queue_bench.py [--quick]

Starts its own redis-server (no persistence) and measures, for both systems:

* throughput: N tasks due now, then one (and two) worker processes; tasks/s from the first task
  start to the last task end (each worker reports its first start, last end and count);
* lateness: tasks produced live over a window (each due a little after it is scheduled, in random
  order), start - due in ms, p50/p99/max; arq with its default 0.5 s poll and with poll_delay=0.05;
* recovery: seconds from SIGKILL of the worker holding a task until another worker runs it again.

Every part has a time cap, so a slow system is reported as ">= N s (timed out)" rather than waited for.
The same file is the worker process (``python bench/queue_bench.py worker ...``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from lily_host.dev.embedded_redis import RedisServer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# --- worker side ---------------------------------------------------------------------------------


class Recorder:
    """Counts handler runs in this process and reports them to Redis every 50 ms."""

    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self.client = client
        self.key = key
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.late: list[float] = []
        self._reported = -1

    def run(self, due: float | None) -> None:
        now = time.time()
        if self.first is None:
            self.first = now
        if due is not None:
            self.late.append(now - due)
        self.count += 1
        self.last = time.time()

    async def report_forever(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            await self.flush()

    async def flush(self) -> None:
        if self.count == self._reported:
            return
        self._reported = self.count
        late, self.late = self.late, []
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(f"{self.key}:report", str(os.getpid()), json.dumps([self.count, self.first, self.last]))
            if late:
                pipe.rpush(f"{self.key}:late", *late)
            await pipe.execute()


async def blocking_run(client: aioredis.Redis, key: str) -> None:
    """First run: note who holds it and hang (the bench kills us). Any later run: note the time."""
    runs = await client.incr(f"{key}:runs")
    if runs == 1:
        await client.set(f"{key}:holder", os.getpid())
        await asyncio.sleep(3600)
    else:
        await client.set(f"{key}:rerun", repr(time.time()))


async def lily_worker(options: argparse.Namespace) -> None:
    from lily_host.observability.log import configure_logging
    from lily_host.plugin_api.clock import SystemClock
    from lily_host.plugin_api.contract import TaskContext, TaskHandler
    from lily_host.queue import TaskQueue, Worker

    configure_logging("production", "WARNING")
    client = aioredis.Redis(port=options.port)
    queue = TaskQueue(client, name=options.queue)
    recorder = Recorder(client, options.queue)

    async def noop(ctx: TaskContext, payload: dict[str, Any]) -> None:
        recorder.run(payload.get("due"))

    async def block(ctx: TaskContext, payload: dict[str, Any]) -> None:
        await blocking_run(client, options.queue)

    class Host:
        clock = SystemClock()

    Host.queue = queue  # type: ignore[attr-defined]
    handlers = {"noop": TaskHandler("noop", noop), "block": TaskHandler("block", block)}
    worker = Worker(queue, handlers, host=Host(), lease=options.lease, concurrency=options.concurrency)
    worker.install_signal_handlers()
    reporter = asyncio.create_task(recorder.report_forever())
    await worker.run()
    reporter.cancel()
    await recorder.flush()


async def arq_noop(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    ctx["recorder"].run(payload.get("due"))


async def arq_block(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    await blocking_run(ctx["bench_client"], ctx["bench_key"])


async def arq_worker(options: argparse.Namespace) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    client = aioredis.Redis(port=options.port)
    recorder = Recorder(client, options.queue)
    ctx = {"recorder": recorder, "bench_client": client, "bench_key": options.queue}
    worker = Worker(
        functions=[func(arq_noop, name="noop"), func(arq_block, name="block")],
        redis_settings=RedisSettings(host="127.0.0.1", port=options.port),
        queue_name=options.queue,
        poll_delay=options.poll_delay,
        ctx=ctx,
        handle_signals=True,
    )
    reporter = asyncio.create_task(recorder.report_forever())
    try:
        await worker.async_run()
    finally:
        reporter.cancel()
        await recorder.flush()


# --- bench side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    label: str
    kind: str  # lily | arq
    poll_delay: float = 0.5


LILY = System("lily", "lily")
ARQ = System("arq (default)", "arq", 0.5)
ARQ_FAST = System("arq (poll 0.05)", "arq", 0.05)


class Bench:
    def __init__(self, port: int, quick: bool) -> None:
        self.port = port
        self.quick = quick
        # redis-py types sync replies as "Awaitable | value"; this client is only ever sync.
        self.sync: Any = redis.Redis(port=port)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.run_id = 0

    # workers

    def spawn(self, system: System, queue: str, *, lease: float = 30.0) -> subprocess.Popen[bytes]:
        args = [sys.executable, __file__, "worker", system.kind, "--port", str(self.port), "--queue", queue]
        args += ["--lease", str(lease), "--poll-delay", str(system.poll_delay)]
        process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.procs:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
        self.procs.clear()

    def new_queue(self, name: str) -> str:
        self.stop_all()
        self.sync.flushall()
        self.run_id += 1
        return f"{name}-{self.run_id}"

    def report(self, queue: str) -> tuple[int, float | None, float | None]:
        rows = [json.loads(v) for v in self.sync.hvals(f"{queue}:report")]
        firsts = [r[1] for r in rows if r[1] is not None]
        lasts = [r[2] for r in rows if r[2] is not None]
        return sum(r[0] for r in rows), min(firsts, default=None), max(lasts, default=None)

    def wait_ready(self, system: System, queue: str, workers: int) -> None:
        """Lily workers are ready when subscribed to the wake channel; arq has no signal: give it time."""
        deadline = time.monotonic() + 15
        if system.kind == "arq":
            time.sleep(1.5)
            return
        channel = f"lily:{{q:{queue}}}:wake"
        while time.monotonic() < deadline:
            if dict(self.sync.pubsub_numsub(channel)).get(channel.encode(), 0) >= workers:
                return
            time.sleep(0.05)
        raise RuntimeError("workers did not start")

    # producing

    async def enqueue_now(self, system: System, queue: str, n: int) -> None:
        if system.kind == "lily":
            from lily_host.queue import TaskQueue

            client = aioredis.Redis(port=self.port)
            tq = TaskQueue(client, name=queue)
            for start in range(0, n, 2000):
                await tq.schedule_many([{"type": "noop", "payload": {}, "tenant": None}] * min(2000, n - start))
            await client.aclose()
            return
        from arq import create_pool
        from arq.connections import RedisSettings

        pool = await create_pool(RedisSettings(host="127.0.0.1", port=self.port), default_queue_name=queue)
        for start in range(0, n, 200):
            await asyncio.gather(*(pool.enqueue_job("noop", {}) for _ in range(min(200, n - start))))
        await pool.aclose()

    async def producer(self, system: System, queue: str) -> Callable[[str, dict[str, Any], float], Awaitable[None]]:
        if system.kind == "lily":
            from lily_host.queue import TaskQueue

            tq = TaskQueue(aioredis.Redis(port=self.port), name=queue)

            async def lily_put(task_type: str, payload: dict[str, Any], due: float) -> None:
                await tq.schedule(task_type, payload, tenant=None, run_at=due)

            return lily_put
        from arq import create_pool
        from arq.connections import RedisSettings

        pool = await create_pool(RedisSettings(host="127.0.0.1", port=self.port), default_queue_name=queue)

        async def arq_put(task_type: str, payload: dict[str, Any], due: float) -> None:
            await pool.enqueue_job(task_type, payload, _defer_until=datetime.fromtimestamp(due, tz=UTC))

        return arq_put

    # parts

    def throughput(self, system: System, n: int, workers: int, cap: float) -> tuple[float, str]:
        queue = self.new_queue(f"tp-{system.kind}")
        asyncio.run(self.enqueue_now(system, queue, n))
        for _ in range(workers):
            self.spawn(system, queue)
        deadline = time.monotonic() + cap + 5  # + process start-up
        count, first, last = 0, None, None
        while time.monotonic() < deadline:
            time.sleep(0.1)
            count, first, last = self.report(queue)
            if count >= n or (first is not None and time.time() - first > cap):
                break
        self.stop_all()
        if not count or first is None or last is None or last <= first:
            return 0.0, "no tasks ran"
        rate = count / (last - first)
        note = "" if count >= n else f" ({count}/{n} done in the {cap:.0f} s cap)"
        return rate, f"{rate:,.0f}{note}"

    def lateness(self, system: System, n: int, window: float) -> tuple[list[float], str]:
        queue = self.new_queue(f"late-{system.kind}")
        self.spawn(system, queue)
        self.wait_ready(system, queue, 1)

        async def produce() -> None:
            put = await self.producer(system, queue)
            start = time.time() + 0.2
            for i in range(n):
                at = start + window * i / n
                pause = at - time.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                # due 10-500 ms after it is scheduled, so dues arrive out of order and must wake the worker
                due = time.time() + random.uniform(0.01, 0.5)
                await put("noop", {"due": due}, due)

        asyncio.run(produce())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.report(queue)[0] < n:
            time.sleep(0.1)
        time.sleep(0.1)
        late = sorted(float(x) * 1000 for x in self.sync.lrange(f"{queue}:late", 0, -1))
        self.stop_all()
        if not late:
            return [], "no tasks ran"
        p50, p99 = statistics.median(late), late[min(len(late) - 1, int(len(late) * 0.99))]
        missing = "" if len(late) >= n else f" ({len(late)}/{n} ran)"
        return [p50, p99, late[-1]], f"{p50:.1f} / {p99:.1f} / {late[-1]:.1f}{missing}"

    def recovery(self, system: System, lease: float, cap: float) -> tuple[float | None, str]:
        queue = self.new_queue(f"rec-{system.kind}")
        workers = [self.spawn(system, queue, lease=lease) for _ in range(2)]
        self.wait_ready(system, queue, 2)

        async def put_one() -> None:
            put = await self.producer(system, queue)
            await put("block", {}, time.time())

        asyncio.run(put_one())
        deadline = time.monotonic() + 15
        holder = None
        while holder is None and time.monotonic() < deadline:
            time.sleep(0.01)
            holder = self.sync.get(f"{queue}:holder")
        if holder is None:
            self.stop_all()
            return None, "the task never started"
        (victim,) = [w for w in workers if w.pid == int(holder)]
        time.sleep(0.5)  # it has been running a little while, as in real life
        victim.send_signal(signal.SIGKILL)
        killed = time.time()
        victim.wait(10)
        rerun = None
        while rerun is None and time.time() - killed < cap:
            time.sleep(0.02)
            rerun = self.sync.get(f"{queue}:rerun")
        self.stop_all()
        if rerun is None:
            return None, f">= {cap:.0f} s (timed out)"
        seconds = float(rerun) - killed
        return seconds, f"{seconds:.2f} s"


def start_redis(directory: str) -> tuple[RedisServer, int]:
    server = RedisServer(Path(directory)).start()
    return server, server.port


def ratio(lily: float | None, other: float | None, *, higher_is_better: bool) -> str:
    if not lily or not other:
        return "-"
    value = lily / other if higher_is_better else other / lily
    return f"{value:,.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--parts", default="throughput,lateness,recovery", help="comma-separated subset")
    options = parser.parse_args()
    parts = set(options.parts.split(","))
    quick = options.quick
    n = 5_000 if quick else 20_000
    cap = 8.0 if quick else 20.0
    late_n, late_window = (600, 3.0) if quick else (2_000, 10.0)
    recovery_cap = 10.0 if quick else 20.0
    lease = 5.0

    with tempfile.TemporaryDirectory(prefix="lily-bench-") as directory:
        server, port = start_redis(directory)
        bench = Bench(port, quick)
        rows: list[tuple[str, dict[str, str], str]] = []
        try:
            if "throughput" in parts:
                for workers in (1, 2):
                    values: dict[str, str] = {}
                    numbers: dict[str, float] = {}
                    for system in (ARQ, ARQ_FAST, LILY):
                        numbers[system.label], values[system.label] = bench.throughput(system, n, workers, cap)
                        print(f"  throughput {workers} proc {system.label}: {values[system.label]}", flush=True)
                    best_arq = max(numbers[ARQ.label], numbers[ARQ_FAST.label])
                    rows.append(
                        (
                            f"throughput, {n:,} due now, {workers} worker proc (tasks/s)",
                            values,
                            ratio(numbers[LILY.label], best_arq, higher_is_better=True),
                        )
                    )
            if "lateness" in parts:
                values, p99s = {}, {}
                for system in (ARQ, ARQ_FAST, LILY):
                    stats, values[system.label] = bench.lateness(system, late_n, late_window)
                    p99s[system.label] = stats[1] if stats else 0.0
                    print(f"  lateness {system.label}: {values[system.label]}", flush=True)
                best_arq = min(p99s[ARQ.label] or 1e9, p99s[ARQ_FAST.label] or 1e9)
                rows.append(
                    (
                        f"lateness, {late_n:,} over {late_window:.0f} s, p50/p99/max (ms)",
                        values,
                        ratio(p99s[LILY.label], best_arq, higher_is_better=False),
                    )
                )
                rate_n, rate_window = (2_000, 2.0) if quick else (5_000, 5.0)
                stats, text = bench.lateness(LILY, rate_n, rate_window)
                print(f"  lateness lily at {rate_n / rate_window:,.0f}/s: {text}", flush=True)
                rows.append(
                    (
                        f"lateness at {rate_n / rate_window:,.0f} tasks/s, p50/p99/max (ms)",
                        {LILY.label: text},
                        "",
                    )
                )
            if "recovery" in parts:
                values, secs = {}, {}
                for system in (ARQ, LILY):
                    secs[system.label], values[system.label] = bench.recovery(system, lease, recovery_cap)
                    print(f"  recovery {system.label}: {values[system.label]}", flush=True)
                arq_secs = secs[ARQ.label] or recovery_cap
                rows.append(
                    (
                        f"recovery after SIGKILL (lily lease {lease:.0f} s; arq: job_timeout 300 s + 10)",
                        values,
                        ratio(secs[LILY.label], arq_secs, higher_is_better=False)
                        + ("+" if secs[ARQ.label] is None else ""),
                    )
                )
        finally:
            bench.stop_all()
            server.stop()

    labels = [ARQ.label, ARQ_FAST.label, LILY.label]
    width = max(len(r[0]) for r in rows) if rows else 10
    print()
    print(f"{'':<{width}}  " + "  ".join(f"{label:>22}" for label in labels) + f"  {'lily vs best arq':>17}")
    for name, values, better in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{values.get(label, '-'):>22}" for label in labels) + f"  {better:>17}")


def worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["lily", "arq"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--poll-delay", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args(argv)
    asyncio.run(lily_worker(options) if options.kind == "lily" else arq_worker(options))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
    else:
        main()
