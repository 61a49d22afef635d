"""A Lily worker in its own process, for the kill/terminate tests.

Handler ``test.work`` records each start and each completion in Redis (``test:<queue>:started`` /
``test:<queue>:done``, hashes of task id -> count; ``test:<queue>:by_worker``, pid -> runs) and
sleeps ``payload["seconds"]`` in between — only on the first run when ``payload["first_only"]`` —
so a test can see what ran, where, how often, and whether it finished.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from lily_host.plugin_api.clock import SystemClock
from lily_host.plugin_api.contract import TaskContext, TaskHandler
from lily_host.queue import TaskQueue, Worker
from lily_host.testing import on_cluster


class _Host:
    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue
        self.clock = SystemClock()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    options = parser.parse_args()

    # The suite's cluster run (LILY_TEST_REDIS=cluster) reaches this child through its environment.
    client: Any = RedisCluster.from_url(options.url) if on_cluster() else aioredis.Redis.from_url(options.url)
    queue = TaskQueue(client, name=options.queue)
    prefix = f"test:{options.queue}"

    async def work(ctx: TaskContext, payload: dict[str, Any]) -> None:
        runs = await client.hincrby(f"{prefix}:started", ctx.task_id, 1)
        await client.hincrby(f"{prefix}:by_worker", str(os.getpid()), 1)
        seconds = float(payload.get("seconds", 0))
        if seconds and (runs == 1 or not payload.get("first_only")):
            await asyncio.sleep(seconds)
        await client.hincrby(f"{prefix}:done", ctx.task_id, 1)

    worker = Worker(
        queue,
        {"test.work": TaskHandler("test.work", work)},
        host=_Host(queue),
        concurrency=options.concurrency,
        lease=options.lease,
        drain_timeout=options.drain_timeout,
    )
    worker.install_signal_handlers()
    await worker.run()
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
