"""Finished tasks stay inspectable: every run of a task, kept for ``LILY_TRACE_DAYS`` (default 7).

The queue forgets a task once it is acked. The worker therefore writes one entry per run — when it
started, how long it took, its outcome and error — to ``lily:{q:NAME}:history:<task id>`` (a Redis
LIST, newest last, capped at :data:`MAX_RUNS`, expiring with the trace period), and ties the task to
the delivery it descends from (:mod:`lily_host.correlation`). The entries of one burst of finished
tasks go out in one pipeline, with the acks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lily_host.correlation import add_effect

#: Runs kept per task (a task retried more often keeps its latest runs).
MAX_RUNS = 25


@dataclass(slots=True)
class Run:
    """One run of a task, as the worker saw it."""

    task_id: str
    type: str
    tenant: str | None
    delivery: str | None
    attempt: int
    max_attempts: int
    started: float
    duration: float
    outcome: str  # ok, retry, dead, deferred
    error: str | None = None
    #: Set on the final run (ok or dead): the task as it was, since the queue forgets it.
    task: dict[str, Any] | None = field(default=None)


class TaskHistory:
    def __init__(self, redis: Any, queue_name: str, days: float) -> None:
        self.redis = redis
        self.prefix = f"lily:{{q:{queue_name}}}:history:"
        self.ttl = int(days * 86400)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def key(self, task_id: str) -> str:
        return self.prefix + task_id

    async def add(self, runs: Sequence[Run]) -> None:
        if not runs or not self.enabled:
            return
        pipe = self.redis.pipeline(transaction=False)
        for run in runs:
            key = self.key(run.task_id)
            pipe.rpush(key, json.dumps(asdict(run), separators=(",", ":"), default=str))
            pipe.ltrim(key, -MAX_RUNS, -1)
            pipe.expire(key, self.ttl)
            if run.delivery:
                effect = {"kind": "task", "id": run.task_id, "type": run.type, "outcome": run.outcome}
                add_effect(pipe, run.delivery, "task", run.task_id, effect, self.ttl)
        await pipe.execute()

    async def runs(self, task_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.lrange(self.key(task_id), 0, -1)
        return [json.loads(item) for item in raw]
