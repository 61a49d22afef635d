"""The queue depth gauges, refreshed from Redis when Prometheus scrapes ``/metrics``."""

from __future__ import annotations

from lily_host.queue.queue_metrics import TASKS_DEAD, TASKS_DUE, TASKS_IN_FLIGHT, TASKS_READY
from lily_host.queue.task_queue import TaskQueue

_seen_types: dict[str, set[str]] = {}


async def collect_depth(queue: TaskQueue) -> None:
    """Refresh the depth gauges of ``queue`` from Redis (a single script call, O(task types))."""
    stats = await queue.stats(ready_by_type=False)
    types = set(stats.by_type)
    # A type that disappeared from the counters must read 0, not its last value.
    for task_type in _seen_types.get(queue.name, set()) | types:
        counts = stats.by_type.get(task_type)
        TASKS_DUE.labels(queue.name, task_type).set(counts.due if counts else 0)
        TASKS_IN_FLIGHT.labels(queue.name, task_type).set(counts.in_flight if counts else 0)
        TASKS_DEAD.labels(queue.name, task_type).set(counts.dead if counts else 0)
    _seen_types.setdefault(queue.name, set()).update(types)
    TASKS_READY.labels(queue.name).set(stats.ready)
