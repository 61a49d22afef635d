"""Finished tasks stay inspectable: every run of a task, kept for ``LILY_TRACE_DAYS`` (default 7).

The queue forgets a task once it is acked, so the worker records each run — when it started, how
long it took, its outcome and error — in one of two places:

- the common case, a task done on its first attempt, is one field of an hourly hash,
  ``lily:{q:NAME}:done:<unix hour>`` (task id → the run as JSON): one HSET for a whole burst of
  tasks, and each hash expires as a whole;
- every other run (a retry, a deferral, a dead letter, a success after failures) goes to the task's
  own list, ``lily:{q:NAME}:history:<task id>`` (newest last, capped at :data:`MAX_RUNS`), written
  for a whole burst by one script call.

Per-task writes (a pipeline of three commands per task) halved the queue's throughput of no-op
tasks in the bench; this way the common case costs a hash field. Reading a task looks in its list
and in the hourly hashes of the trace period. Tasks that descend from a webhook delivery are tied
to it too (:mod:`lily_host.operations.correlation`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lily_host.operations.correlation import add_effect

#: Runs kept per task (a task retried more often keeps its latest runs).
MAX_RUNS = 25

# KEYS: one history list per run; ARGV: ttl, max runs, then each run's JSON (in KEYS order).
_ADD_RUNS = """
local ttl, keep = tonumber(ARGV[1]), -tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[i + 2])
  redis.call('LTRIM', KEYS[i], keep, -1)
  redis.call('EXPIRE', KEYS[i], ttl)
end
return #KEYS
"""
_JSON = json.JSONEncoder(separators=(",", ":"), default=str)
_quote = json.JSONEncoder().encode


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
    #: Set on the final run (ok or dead): when the task was created and first due (the queue forgets it).
    task: dict[str, Any] | None = field(default=None)


def _fields(run: Run) -> dict[str, Any]:
    # dataclasses.asdict copies deeply and recursively: ten times slower for these flat records.
    return {name: getattr(run, name) for name in Run.__slots__}


def first_try(
    task_type: str,
    tenant: str | None,
    delivery: str | None,
    max_attempts: int,
    started: float,
    duration: float,
    created: float,
    first_due: float,
) -> str:
    """The JSON of a run that finished its task on the first attempt (built without a dict: hot path)."""
    return (
        f'{{"type":{_quote(task_type)},"tenant":{_quote(tenant)},"delivery":{_quote(delivery)},"attempt":1,'
        f'"max_attempts":{max_attempts},"started":{started!r},"duration":{duration!r},"outcome":"ok",'
        f'"error":null,"task":{{"created":{created!r},"first_due":{first_due!r}}}}}'
    )


class TaskHistory:
    def __init__(self, redis: Any, queue_name: str, days: float) -> None:
        self.redis = redis
        self.prefix = f"lily:{{q:{queue_name}}}:history:"
        self.done_prefix = f"lily:{{q:{queue_name}}}:done:"
        self.ttl = int(days * 86400)
        self._add = redis.register_script(_ADD_RUNS)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def key(self, task_id: str) -> str:
        return self.prefix + task_id

    async def add(
        self,
        runs: Sequence[Run],
        done: Sequence[tuple[str, str, str | None]] = (),
        now: float | None = None,
    ) -> None:
        """Record ``runs`` (each in its task's list) and ``done``: (task id, first_try JSON, delivery)."""
        if not self.enabled or not (runs or done):
            return
        if runs:
            keys = [self.key(run.task_id) for run in runs]
            await self._add(keys=keys, args=[self.ttl, MAX_RUNS, *(_JSON.encode(_fields(run)) for run in runs)])
        pipe = self.redis.pipeline(transaction=False)
        if done:
            bucket = self.done_prefix + str(math.floor((time.time() if now is None else now) / 3600))
            pipe.hset(bucket, mapping={task_id: record for task_id, record, _ in done})
            pipe.expire(bucket, self.ttl + 3600)
        traced = [(run.task_id, run.type, run.outcome, run.delivery) for run in runs if run.delivery]
        traced += [(task_id, task_id.rpartition(":")[0], "ok", delivery) for task_id, _, delivery in done if delivery]
        for task_id, task_type, outcome, delivery in traced:
            effect = {"kind": "task", "id": task_id, "type": task_type, "outcome": outcome}
            add_effect(pipe, str(delivery), "task", task_id, effect, self.ttl)
        if len(pipe):
            await pipe.execute()

    async def runs(self, task_id: str) -> list[dict[str, Any]]:
        """Every run recorded for the task, oldest first."""
        hour = math.floor(time.time() / 3600)
        hours = int(self.ttl / 3600) + 2
        pipe = self.redis.pipeline(transaction=False)
        pipe.lrange(self.key(task_id), 0, -1)
        for offset in range(hours):
            pipe.hget(self.done_prefix + str(hour - offset), task_id)
        listed, *done = await pipe.execute()
        found = [json.loads(item) for item in listed]
        found += [json.loads(item) for item in done if item is not None]
        return sorted(found, key=lambda run: float(run.get("started") or 0))
