"""Prometheus metrics of the task queue (module level, default registry, ``lily_`` prefix).

Counters and histograms are updated by the worker as tasks finish. Queue depth lives in Redis, not
in any one process, so it is read on demand: the host's ``/metrics`` handler awaits
:func:`collect_depth` before rendering.

Label children are cached: ``Counter.labels()`` takes a lock and builds a key on every call, which
is measurable at tens of thousands of tasks per second.
"""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "TASKS_DEAD",
    "TASKS_DUE",
    "TASKS_IN_FLIGHT",
    "TASKS_READY",
    "TASKS_SCHEDULED",
    "TASK_DURATION",
    "TASK_LATENESS",
    "TASK_OUTCOMES",
    "duration",
    "lateness",
    "outcome",
    "scheduled",
]

#: Outcomes: ok, retry, deferred, dead, released (handed back on shutdown), lost (lease lost
#: while running: another worker may run it again).
TASK_OUTCOMES = Counter("lily_task_outcomes_total", "Task runs by task type and outcome.", ["queue", "type", "outcome"])
TASK_DURATION = Histogram(
    "lily_task_duration_seconds",
    "Time spent in the task handler.",
    ["queue", "type"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
TASK_LATENESS = Histogram(
    "lily_task_lateness_seconds",
    "How long after its due time a task was claimed (by the Redis clock).",
    ["queue", "type"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0),
)
_QT = ["queue", "type"]
TASKS_SCHEDULED = Counter("lily_tasks_scheduled_total", "Tasks scheduled (dedupe hits excluded).", _QT)
TASKS_DUE = Gauge("lily_tasks_due", "Tasks waiting in the due set (including future ones).", _QT)
TASKS_IN_FLIGHT = Gauge("lily_tasks_in_flight", "Tasks claimed by a worker and not yet finished.", _QT)
TASKS_DEAD = Gauge("lily_tasks_dead", "Tasks in the dead-letter set.", _QT)
TASKS_READY = Gauge("lily_tasks_ready", "Tasks due now and not yet claimed.", ["queue"])


@functools.lru_cache(maxsize=4096)
def outcome(queue: str, task_type: str, result: str) -> Counter:
    """The outcome counter child for one queue, task type and outcome."""
    return TASK_OUTCOMES.labels(queue, task_type, result)


@functools.lru_cache(maxsize=4096)
def duration(queue: str, task_type: str) -> Histogram:
    return TASK_DURATION.labels(queue, task_type)


@functools.lru_cache(maxsize=4096)
def lateness(queue: str, task_type: str) -> Histogram:
    return TASK_LATENESS.labels(queue, task_type)


@functools.lru_cache(maxsize=4096)
def scheduled(queue: str, task_type: str) -> Counter:
    return TASKS_SCHEDULED.labels(queue, task_type)
