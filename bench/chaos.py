"""Chaos run: 10,000 tasks, two worker processes, one SIGKILLed every few seconds and restarted.

Run: python bench/chaos.py [--tasks N] [--kill-every SECONDS] [--lease SECONDS]

Each task records its starts and completions in Redis hashes (task index -> count). At the end it
prints tasks lost (never completed: must be 0) and tasks run more than once. Re-runs are expected:
a task in flight in a killed worker runs again once its lease expires, and a task that finished
just before the kill but whose ack had not gone out yet runs again too (at-least-once).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from lily_host.dev.embedded_redis import RedisServer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUEUE = "chaos"


async def run_worker(port: int, lease: float, concurrency: int) -> None:
    from lily_host.observability.log import configure_logging
    from lily_host.plugin_api.clock import SystemClock
    from lily_host.plugin_api.contract import TaskContext, TaskHandler
    from lily_host.queue import TaskQueue, Worker

    configure_logging("production", "ERROR")
    client = aioredis.Redis(port=port)
    queue = TaskQueue(client, name=QUEUE)
    # redis-py types replies as "Awaitable | value" for sync and async clients alike.
    recorder: Any = client

    async def work(ctx: TaskContext, payload: dict[str, Any]) -> None:
        index = str(payload["i"])
        await recorder.hincrby("chaos:started", index, 1)
        await asyncio.sleep(random.uniform(0.005, 0.03))
        await recorder.hincrby("chaos:done", index, 1)

    class Host:
        clock = SystemClock()

    Host.queue = queue  # type: ignore[attr-defined]
    worker = Worker(
        queue,
        {"chaos.work": TaskHandler("chaos.work", work)},
        host=Host(),
        lease=lease,
        concurrency=concurrency,
    )
    worker.install_signal_handlers()
    await worker.run()


def start_redis(directory: str) -> tuple[RedisServer, int]:
    server = RedisServer(Path(directory)).start()
    return server, server.port


def spawn(port: int, lease: float, concurrency: int) -> subprocess.Popen[bytes]:
    args = [sys.executable, __file__, "worker", "--port", str(port), "--lease", str(lease)]
    args += ["--concurrency", str(concurrency)]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def schedule(port: int, n: int, spread: float) -> None:
    from lily_host.queue import TaskQueue

    client = aioredis.Redis(port=port)
    queue = TaskQueue(client, name=QUEUE)
    tasks = [
        {"type": "chaos.work", "payload": {"i": i}, "tenant": None, "delay": random.uniform(0, spread)}
        for i in range(n)
    ]
    await queue.schedule_many(tasks)
    await client.aclose()


async def pending(port: int) -> tuple[int, int, int]:
    from lily_host.queue import TaskQueue

    client = aioredis.Redis(port=port)
    stats = await TaskQueue(client, name=QUEUE).stats(ready_by_type=False)
    await client.aclose()
    return stats.due, stats.in_flight, stats.dead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=12.0, help="due times spread over this many seconds")
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=90.0)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lily-chaos-") as directory:
        server, port = start_redis(directory)
        sync: Any = redis.Redis(port=port)
        workers = [spawn(port, options.lease, options.concurrency) for _ in range(2)]
        kills = 0
        try:
            time.sleep(1.0)  # both workers up
            started = time.monotonic()
            asyncio.run(schedule(port, options.tasks, options.spread))
            victim = 0
            next_kill = time.monotonic() + options.kill_every
            while time.monotonic() - started < options.timeout:
                time.sleep(0.05)
                # keep killing while there is work to interrupt
                if time.monotonic() >= next_kill and time.monotonic() - started < options.spread:
                    workers[victim].send_signal(signal.SIGKILL)
                    workers[victim].wait(10)
                    kills += 1
                    workers[victim] = spawn(port, options.lease, options.concurrency)
                    victim = 1 - victim
                    next_kill = time.monotonic() + options.kill_every
                if time.monotonic() - started > options.spread:
                    due, in_flight, _ = asyncio.run(pending(port))
                    if due == 0 and in_flight == 0:
                        break
            elapsed = time.monotonic() - started
            done = {int(k): int(v) for k, v in sync.hgetall("chaos:done").items()}
            runs = {int(k): int(v) for k, v in sync.hgetall("chaos:started").items()}
            due, in_flight, dead = asyncio.run(pending(port))
        finally:
            for process in workers:
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait(10)
            server.stop()

    lost = [i for i in range(options.tasks) if done.get(i, 0) == 0]
    started_twice = sum(1 for count in runs.values() if count > 1)
    completed_twice = sum(1 for count in done.values() if count > 1)
    print(f"tasks: {options.tasks:,}  workers: 2 x {options.concurrency} concurrent  lease: {options.lease:g} s")
    print(f"SIGKILLs: {kills} (every {options.kill_every:g} s, each followed by a restart)")
    print(f"finished in {elapsed:.1f} s; left in queue: due {due}, in flight {in_flight}, dead {dead}")
    print(f"tasks lost (never completed): {len(lost)}")
    print(f"tasks started more than once: {started_twice} (runs cut short by a kill, rerun after the lease)")
    print(f"tasks completed more than once: {completed_twice} (finished before the kill, ack not yet sent)")
    print(f"total runs: {sum(runs.values()):,} for {len(done):,} tasks")
    if lost or due or in_flight:
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_args = argparse.ArgumentParser()
        worker_args.add_argument("--port", type=int, required=True)
        worker_args.add_argument("--lease", type=float, default=2.0)
        worker_args.add_argument("--concurrency", type=int, default=16)
        parsed = worker_args.parse_args(sys.argv[2:])
        asyncio.run(run_worker(parsed.port, parsed.lease, parsed.concurrency))
    else:
        main()
