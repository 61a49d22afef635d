"""The Redis delayed-task queue: schedule, claim with a lease, ack, retry, dead letters; the worker."""

from __future__ import annotations

from lily_host.queue.depth import collect_depth
from lily_host.queue.task_queue import ClaimResult, QueueStats, Task, TaskQueue, TypeStats
from lily_host.queue.worker import Worker

__all__ = ["ClaimResult", "QueueStats", "Task", "TaskQueue", "TypeStats", "Worker", "collect_depth"]
