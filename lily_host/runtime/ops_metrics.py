"""Gauges read from Redis at scrape time (like the queue depth): what the alert rules watch.

``lily_workers_live``, ``lily_task_oldest_overdue_seconds`` and ``lily_integration_failing`` describe
the whole deployment, not one process, so each scrape of any process reads them from Redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Gauge

from lily_host.operations.worker_registry import WorkerRegistry

if TYPE_CHECKING:
    from lily_host.runtime.host import Host

WORKERS_LIVE = Gauge("lily_workers_live", "Workers whose heartbeat is younger than 30 s.", ["queue"])
OLDEST_OVERDUE = Gauge(
    "lily_task_oldest_overdue_seconds", "How long the oldest due task has waited past its due time.", ["queue"]
)


async def collect(host: Host) -> None:
    queue = host.queue
    WORKERS_LIVE.labels(queue.name).set(len(await WorkerRegistry(host.redis, queue.name).live()))
    head = await host.redis.zrange(queue.keys.due, 0, 0, withscores=True)
    now = await queue.now()
    OLDEST_OVERDUE.labels(queue.name).set(max(0.0, now - float(head[0][1])) if head else 0.0)
    await host.integrations.all()  # refreshes lily_integration_failing
