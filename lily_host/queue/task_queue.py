"""The delayed-task queue: a Redis ZSET of due tasks, claimed with leases by workers.

See :mod:`lily_host.queue.lua_scripts` for the key layout. Every state change is one Lua call,
so the queue is safe to share between any number of workers and web processes.

Time: due times and leases come from Redis ``TIME`` inside the scripts, so machines with skewed
clocks still agree. When the queue's clock is manual (:class:`~lily_host.plugin_api.clock.ManualClock`, tests
and simulations) its ``now()`` is passed to every script instead, and nothing is due until the
test moves the clock.

Attempts: the claim script counts runs started. A run lost to a dead worker therefore spends its
attempt like a failure would (a task that kills its worker every time ends in the dead letters
instead of looping); a deferral or a hand-back on shutdown refunds it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import itertools
import json
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis

from lily_host.config.redis_connection import is_cluster
from lily_host.operations.correlation import current_delivery
from lily_host.plugin_api.clock import Clock, SystemClock
from lily_host.plugin_api.contract import RetryPolicy
from lily_host.queue import lua_scripts as scripts
from lily_host.queue import queue_metrics as metrics
from lily_host.queue.group_commit import NotReplicated, ScriptBatcher, _pack_evalsha

__all__ = ["ClaimResult", "QueueStats", "Task", "TaskQueue", "TypeStats"]

TaskState = Literal["due", "in_flight", "dead"]

#: Errors kept in a task record (the oldest are dropped).
MAX_ERRORS = 10
#: Longest error text kept per attempt.
MAX_ERROR_CHARS = 2000
#: Tasks per script call when a call's size is ours to choose (keeps each Lua call short).
CHUNK = 500
#: Upper bound of one claim (Lua ``unpack`` limits, and a claim should not block Redis long).
MAX_CLAIM = 1000
#: Expired leases requeued per claim call (the rest go with the next claims).
REQUEUE_LIMIT = 500

_DEFAULT_POLICY = RetryPolicy()  # frozen: one shared instance
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def key_field(dedupe_key: str) -> str:
    """The tasks-hash field of a dedupe key: 12 characters (72 bits of BLAKE2b), see lua_scripts."""
    return _b64(hashlib.blake2b(dedupe_key.encode(), digest_size=9).digest())


def new_task_id(task_type: str, dedupe_key: str | None) -> str:
    """A fresh task id: ``type:<16 random chars>``, or ``type:<key field>.<4 random chars>`` for a
    task with a dedupe key (its record then lives in the key's field; see lua_scripts)."""
    if dedupe_key is None:
        return f"{task_type}:{_b64(os.urandom(12))}"
    return f"{task_type}:{key_field(dedupe_key)}.{_b64(os.urandom(3))}"


def own_field_id(task_id: str) -> str:
    """The id the schedule script gives a keyed task whose key field is taken (see lua_scripts)."""
    head, _, body = task_id.rpartition(":")
    return f"{head}:{body.replace('.', '')}"


def _ref(task_id: str) -> str | int:
    """A keyed task's ref (``type:<4 chars>``), stored in its record; 0 for other ids."""
    head, _, body = task_id.rpartition(":")
    if "." not in body:
        return 0
    return f"{head}:{body.partition('.')[2]}"


def _opt_float(value: Any) -> float | None:
    if value is None or value == "" or value == b"":
        return None
    return float(value)


@dataclass(slots=True)
class Task:
    """One task as stored, plus where it is now.

    ``attempt`` is the run being done (1-based) for a claimed task, the next run for a due task,
    and the last run for a dead one.
    """

    id: str
    type: str
    tenant: str | None
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    dedupe_key: str | None
    first_due: float
    due: float | None
    created: float
    last_error: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    dead_at: float | None = None
    #: The webhook delivery this task descends from (see lily_host.operations.correlation), if any.
    delivery: str | None = None
    state: TaskState = "due"
    lease_expires: float | None = None
    lease_token: str | None = field(default=None, repr=False)
    #: Whether the task holds its dedupe key through its record (see lua_scripts); kept on rewrites.
    holds_key: bool = field(default=True, repr=False)

    def record(self) -> str:
        """The stored JSON record of this task (what the scripts keep in the ``tasks`` hash): the
        compact array of lua_scripts, trailing absent values left out."""
        ref = _ref(self.id) if self.holds_key else 0
        values: list[Any] = [
            self.created,
            self.first_due,
            ref,
            self.tenant,
            self.payload,
            self.max_attempts,
            self.dedupe_key,
            self.delivery,
            self.last_error,
            self.errors,
        ]
        while values and values[-1] in (None, []):
            values.pop()
        return _JSON.encode(values)

    def with_error(self, error: str, *, at: float, outcome: str) -> Task:
        """A copy with ``error`` recorded as this attempt's failure."""
        error = error[:MAX_ERROR_CHARS]
        entry = {"attempt": self.attempt, "at": at, "error": error, "outcome": outcome}
        return dataclasses.replace(self, last_error=error, errors=[*self.errors, entry][-MAX_ERRORS:])

    @classmethod
    def _decode(
        cls,
        task_id: str,
        record: Any,
        *,
        attempt: int,
        due: float | None,
        state: TaskState,
        lease_expires: float | None = None,
        lease_token: str | None = None,
        dead_at: float | None = None,
    ) -> Task:
        data = json.loads(record)
        if isinstance(data, list):
            return cls._decode_compact(
                task_id,
                data,
                attempt=attempt,
                due=due,
                state=state,
                lease_expires=lease_expires,
                lease_token=lease_token,
                dead_at=dead_at,
            )
        # A record written before the compact layout: a JSON object.
        return cls(
            id=task_id,
            type=data["type"],
            tenant=data.get("tenant"),
            payload=data.get("payload") or {},
            attempt=attempt,
            max_attempts=int(data["max_attempts"]),
            dedupe_key=data.get("dedupe_key"),
            first_due=float(data["first_due"]),
            due=due,
            created=float(data["created"]),
            last_error=data.get("last_error"),
            errors=list(data.get("errors") or []),
            dead_at=dead_at,
            delivery=data.get("delivery"),
            state=state,
            lease_expires=lease_expires,
            lease_token=lease_token,
        )

    @classmethod
    def _decode_compact(
        cls,
        task_id: str,
        data: list[Any],
        *,
        attempt: int,
        due: float | None,
        state: TaskState,
        lease_expires: float | None,
        lease_token: str | None,
        dead_at: float | None,
    ) -> Task:
        # Trailing absent values are left out of a record (Task.record): pad them back.
        values = [*data[:10], *[None] * (10 - len(data))]
        created, first_due, ref, tenant, payload, max_attempts, dedupe_key, delivery, last_error, errors = values
        return cls(
            id=task_id,
            type=task_id.rpartition(":")[0],
            tenant=tenant,
            payload=payload or {},
            attempt=attempt,
            max_attempts=int(max_attempts),
            dedupe_key=dedupe_key,
            first_due=float(first_due),
            due=due,
            created=float(created),
            last_error=last_error,
            errors=list(errors or []),
            dead_at=dead_at,
            delivery=delivery,
            state=state,
            lease_expires=lease_expires,
            lease_token=lease_token,
            holds_key=ref != 0,
        )


@dataclass(slots=True)
class TypeStats:
    due: int = 0
    ready: int = 0
    in_flight: int = 0
    dead: int = 0


@dataclass(slots=True)
class QueueStats:
    """Queue depth. ``due`` counts every scheduled task (future ones too), ``ready`` those due now."""

    queue: str
    now: float
    due: int
    ready: int
    in_flight: int
    dead: int
    by_type: dict[str, TypeStats] = field(default_factory=dict)


@dataclass(slots=True)
class ClaimResult:
    """What one claim returned; ``now`` and the scores are on the queue's clock (Redis TIME)."""

    tasks: list[Task]
    now: float
    next_due: float | None
    next_lease_expiry: float | None
    requeued: int


@dataclass(frozen=True, slots=True)
class _Keys:
    due: str
    inflight: str
    dead: str
    tasks: str
    attempts: str
    owners: str
    dedupe: str
    counts: str
    guard_prefix: str
    channel: str


class TaskQueue:
    """A named queue in one Redis (or one Redis Cluster slot: all keys share a hash tag)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        name: str = "default",
        clock: Clock | None = None,
        policies: Mapping[str, RetryPolicy] | None = None,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        """``min_replicas``: schedule calls return only once that many replicas hold the tasks
        (Redis ``WAIT``, at most ``replica_timeout`` seconds), else raise :class:`NotReplicated`."""
        if not name or any(c in name for c in "{}"):
            raise ValueError(f"invalid queue name {name!r}")
        self.redis = redis
        self.name = name
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._policies: dict[str, RetryPolicy] = dict(policies or {})
        prefix = f"lily:{{q:{name}}}:"
        self.keys = _Keys(
            due=prefix + "due",
            inflight=prefix + "inflight",
            dead=prefix + "dead",
            tasks=prefix + "tasks",
            attempts=prefix + "attempts",
            owners=prefix + "owners",
            dedupe=prefix + "dedupe",
            counts=prefix + "counts",
            guard_prefix=prefix + "guard:",
            # Pub/sub channels are not keys; the tag in the name only keeps things readable.
            channel=prefix + "wake",
        )
        self._schedule = redis.register_script(scripts.SCHEDULE)
        self.min_replicas = min_replicas
        self._replica_timeout_ms = max(1, int(replica_timeout * 1000))
        self._schedule_batched = ScriptBatcher(
            redis, self._schedule, min_replicas=min_replicas, replica_timeout=replica_timeout
        )
        self._claim_script = redis.register_script(scripts.CLAIM)
        self._ack = redis.register_script(scripts.ACK)
        self._extend = redis.register_script(scripts.EXTEND)
        self._reschedule = redis.register_script(scripts.RESCHEDULE)
        self._cancel = redis.register_script(scripts.CANCEL)
        self._retry_dead = redis.register_script(scripts.RETRY_DEAD)
        self._purge_dead = redis.register_script(scripts.PURGE_DEAD)
        self._stats = redis.register_script(scripts.STATS)
        self._ready = redis.register_script(scripts.READY)
        self._list = redis.register_script(scripts.LIST)
        self._get = redis.register_script(scripts.GET)
        self._run_now = redis.register_script(scripts.RUN_NOW)
        self._claims = itertools.count(1)

    async def drain(self) -> None:
        """Wait for schedule calls already on their way to Redis (before closing its connections)."""
        await self._schedule_batched.drain()

    def send_along(self, sha: bytes, keys: Sequence[str], args: Sequence[str], on_error: Any) -> None:
        """Run a loaded script (EVALSHA) with the next group commit, unawaited (see ScriptBatcher.send_along)."""
        self._schedule_batched.send_along(_pack_evalsha(sha, keys, args), on_error)

    # --- configuration -------------------------------------------------------------------------

    def set_policies(self, policies: Mapping[str, RetryPolicy]) -> None:
        """Set (merge) the retry policies of task types."""
        self._policies.update(policies)

    def policy(self, task_type: str) -> RetryPolicy:
        """The retry policy of ``task_type`` (the default policy when none was set)."""
        return self._policies.get(task_type) or _DEFAULT_POLICY

    def has_policy(self, task_type: str) -> bool:
        return task_type in self._policies

    async def wake_subscription(self) -> Any:
        """A pub/sub object for :attr:`channel`. On a Redis Cluster (whose client has none) it is on a
        connection of its own to the node that holds the queue's slot: PUBLISH reaches every node
        of a cluster, and that node is where the scripts publish from."""
        if not is_cluster(self.redis):
            return self.redis.pubsub(ignore_subscribe_messages=True)
        cluster: Any = self.redis
        await cluster.initialize()
        node = cluster.get_node_from_key(self.keys.due)
        options = node.connection_kwargs
        client = aioredis.Redis(
            host=node.host,
            port=node.port,
            username=options.get("username"),
            password=options.get("password"),
            ssl=bool(options.get("ssl", False)),
        )
        return _NodeSubscription(client)

    @property
    def channel(self) -> str:
        """The pub/sub channel on which the queue announces a task earlier than all others."""
        return self.keys.channel

    # --- time ----------------------------------------------------------------------------------

    def _now_arg(self) -> str:
        # Empty: the script uses Redis TIME. See the module docstring.
        return repr(float(self.clock.now())) if self.clock.manual else ""

    async def now(self) -> float:
        """The queue's notion of now: the manual clock's time, else Redis ``TIME``."""
        if self.clock.manual:
            return float(self.clock.now())
        seconds, micros = await self.redis.time()
        return int(seconds) + int(micros) / 1_000_000

    # --- producing -----------------------------------------------------------------------------

    def _entry(
        self,
        task_type: str,
        payload: Mapping[str, Any],
        *,
        tenant: str | None,
        delay: float | None = None,
        run_at: float | None = None,
        jitter: tuple[float, float] | None = None,
        dedupe_key: str | None = None,
        max_attempts: int | None = None,
        delivery: str | None = None,
    ) -> list[str]:
        if not task_type:
            raise ValueError("task type must not be empty")
        if delay is not None and run_at is not None:
            raise ValueError("give at most one of delay and run_at")
        extra = random.uniform(jitter[0], jitter[1]) if jitter else 0.0
        if run_at is not None:
            kind, value = "a", float(run_at) + extra
        else:
            kind, value = "d", float(delay or 0.0) + extra
        attempts = max_attempts if max_attempts is not None else self.policy(task_type).max_attempts
        if attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {attempts}")
        if dedupe_key == "":
            raise ValueError("dedupe_key must not be empty (use None for no deduplication)")
        task_id = new_task_id(task_type, dedupe_key)
        # A task scheduled while a delivery or one of its tasks is handled descends from it.
        delivery = delivery or current_delivery()
        values: list[Any] = [_ref(task_id), tenant, dict(payload), attempts, dedupe_key]
        if delivery:
            values.append(delivery)
        # The script opens the array with created/first_due (server time): send what follows them.
        return [task_id, _JSON.encode(values)[1:], kind, repr(value), dedupe_key or ""]

    def _entries(self, tasks: Sequence[Mapping[str, Any]]) -> list[list[str]]:
        """The script arguments of task specs (dicts with ``type``, ``payload`` and schedule's options)."""
        entries = []
        for spec in tasks:
            options = {k: v for k, v in spec.items() if k not in ("type", "payload")}
            entries.append(self._entry(spec["type"], spec.get("payload") or {}, **options))
        return entries

    def _schedule_call(
        self, entries: Sequence[list[str]], guard: tuple[str, int] | None
    ) -> tuple[list[str], list[str]]:
        keys = [self.keys.due, self.keys.inflight, self.keys.tasks, self.keys.dedupe, self.keys.counts]
        ttl = "0"
        if guard is not None:
            suffix, seconds = guard
            if int(seconds) < 1:
                raise ValueError("guard ttl must be at least 1 second")
            keys.append(self.keys.guard_prefix + suffix)
            ttl = str(int(seconds))
        args: list[str] = [self._now_arg(), self.keys.channel, ttl, str(len(entries))]
        for entry in entries:
            args.extend(entry)
        return keys, args

    def _scheduled(self, entries: Sequence[list[str]], result: Any) -> list[str]:
        ids = [_text(x) for x in result]
        for entry, task_id in zip(entries, ids, strict=True):
            if task_id == entry[0] or task_id == own_field_id(entry[0]):  # not a dedupe hit
                metrics.scheduled(self.name, task_id.rpartition(":")[0]).inc()
        return ids

    async def _run_schedule(self, entries: Sequence[list[str]], guard: tuple[str, int] | None) -> list[str] | None:
        keys, args = self._schedule_call(entries, guard)
        # Group commit: every webhook in flight ends here, so the calls of one loop turn share a
        # pipeline (one pool checkout, one write, one read) while each stays its own atomic script.
        result = await self._schedule_batched(keys, args)
        return None if result is None else self._scheduled(entries, result)

    async def schedule(
        self,
        task_type: str,
        payload: Mapping[str, Any],
        *,
        tenant: str | None,
        delay: float | None = None,
        run_at: float | None = None,
        jitter: tuple[float, float] | None = None,
        dedupe_key: str | None = None,
        max_attempts: int | None = None,
        delivery: str | None = None,
    ) -> str | None:
        """Schedule one task; returns its id (the existing task's id on a dedupe hit).

        ``delay`` is relative to the queue's now, ``run_at`` is absolute (Unix seconds); ``jitter``
        adds ``uniform(lo, hi)`` seconds. A dedupe key is held while the task is due or in flight.
        """
        entry = self._entry(
            task_type,
            payload,
            tenant=tenant,
            delay=delay,
            run_at=run_at,
            jitter=jitter,
            dedupe_key=dedupe_key,
            max_attempts=max_attempts,
            delivery=delivery,
        )
        ids = await self._run_schedule([entry], None)
        return ids[0] if ids else None

    async def schedule_many(
        self, tasks: Sequence[Mapping[str, Any]], *, guard: tuple[str, int] | None = None
    ) -> list[str] | None:
        """Schedule many tasks (dicts with ``type``, ``payload``, ``tenant`` and schedule's options).

        With ``guard=(key_suffix, ttl_seconds)`` the guard key is SET NX with that TTL and the tasks
        are scheduled only if it was newly set — both in one Lua call. Returns None when the guard
        already existed (a duplicate delivery). Without a guard, large lists are sent in chunks in
        one pipeline round trip (not atomic as a whole; each chunk is).
        """
        entries = self._entries(tasks)
        if guard is not None:
            return await self._run_schedule(entries, guard)
        if len(entries) <= CHUNK:
            return await self._run_schedule(entries, None) if entries else []
        chunks = [entries[start : start + CHUNK] for start in range(0, len(entries), CHUNK)]
        if is_cluster(self.redis):
            # A cluster pipeline refuses scripts; group commit pipelines these calls all the same.
            results = await asyncio.gather(*(self._schedule_batched(*self._schedule_call(c, None)) for c in chunks))
            return [
                task_id
                for chunk, result in zip(chunks, results, strict=True)
                for task_id in self._scheduled(chunk, result)
            ]
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                keys, args = self._schedule_call(chunk, None)
                await self._schedule(keys=keys, args=args, client=pipe)
            if self.min_replicas:
                pipe.execute_command("WAIT", self.min_replicas, self._replica_timeout_ms)
            results = await pipe.execute()
        if self.min_replicas:
            replicas = int(results.pop())
            if replicas < self.min_replicas:
                raise NotReplicated(self.min_replicas, replicas)
        ids: list[str] = []
        for chunk, result in zip(chunks, results, strict=True):
            ids.extend(self._scheduled(chunk, result))
        return ids

    def schedule_in(self, transaction: Any, tasks: Sequence[Mapping[str, Any]]) -> list[str]:
        """Queue the scheduling of ``tasks`` into ``transaction`` (a MULTI pipeline the caller executes).

        The tasks are written if and only if the caller's transaction is: how a tenant's deletion and
        the purge of its data are one step. EVAL with the script's text, not EVALSHA, because an error
        inside MULTI would not undo the other commands. Returns the ids (dedupe hits aside, and a
        keyed task whose key field held a dead letter gets :func:`own_field_id` of its id).
        """
        entries = self._entries(tasks)
        if entries:
            keys, args = self._schedule_call(entries, None)
            transaction.eval(scripts.SCHEDULE, len(keys), *keys, *args)
        return [entry[0] for entry in entries]

    async def release_guard(self, key_suffix: str) -> None:
        """Delete a guard so the same delivery can be processed again."""
        await self.redis.delete(self.keys.guard_prefix + key_suffix)

    async def cancel(self, task_id: str) -> bool:
        """Remove a task that is due (not in flight). True if it was removed."""
        return bool(await self._cancel(keys=self._cancel_keys(), args=["id", task_id, ""]))

    async def cancel_dedupe(self, dedupe_key: str) -> bool:
        """Cancel the due task holding ``dedupe_key``. False if none, or if it is in flight."""
        args = ["dedupe", dedupe_key, key_field(dedupe_key)]
        return bool(await self._cancel(keys=self._cancel_keys(), args=args))

    def _cancel_keys(self) -> list[str]:
        keys = self.keys
        return [keys.due, keys.tasks, keys.attempts, keys.dedupe, keys.counts, keys.inflight]

    # --- inspecting ----------------------------------------------------------------------------

    async def get(self, task_id: str) -> Task | None:
        keys = [
            self.keys.due,
            self.keys.inflight,
            self.keys.dead,
            self.keys.tasks,
            self.keys.attempts,
            self.keys.owners,
        ]
        record, attempts, due, lease, dead_at, owner = await self._get(keys=keys, args=[task_id])
        if record is None:
            return None
        runs = int(attempts or 0)
        if lease is not None:
            return Task._decode(
                task_id,
                record,
                attempt=runs,
                due=_owner_due(owner),
                state="in_flight",
                lease_expires=float(lease),
            )
        if dead_at is not None:
            return Task._decode(task_id, record, attempt=runs, due=None, state="dead", dead_at=float(dead_at))
        return Task._decode(task_id, record, attempt=runs + 1, due=_opt_float(due), state="due")

    async def list_tasks(self, which: Literal["due", "dead", "in_flight"], limit: int = 100) -> list[Task]:
        """The first ``limit`` tasks of a set, in score order (due time, lease expiry, dead time)."""
        zset = {"due": self.keys.due, "in_flight": self.keys.inflight, "dead": self.keys.dead}[which]
        if limit < 1:
            return []
        keys = [zset, self.keys.tasks, self.keys.attempts, self.keys.owners]
        flat, records, attempts, owners = await self._list(keys=keys, args=[str(limit)])
        out = []
        for i in range(0, len(flat), 2):
            task_id, score = _text(flat[i]), float(flat[i + 1])
            record, runs, owner = records[i // 2], int(attempts[i // 2] or 0), owners[i // 2]
            if record is None:
                continue
            if which == "due":
                out.append(Task._decode(task_id, record, attempt=runs + 1, due=score, state="due"))
            elif which == "in_flight":
                out.append(
                    Task._decode(
                        task_id,
                        record,
                        attempt=runs,
                        due=_owner_due(owner),
                        state="in_flight",
                        lease_expires=score,
                    )
                )
            else:
                out.append(Task._decode(task_id, record, attempt=runs, due=None, state="dead", dead_at=score))
        return out

    async def stats(self, *, ready_by_type: bool = True) -> QueueStats:
        """Depth of the queue, total and per type.

        Totals and per-type due/in-flight/dead come from counters (O(types)). Per-type ``ready``
        needs the ids of every ready task, read in pages; pass ``ready_by_type=False`` to skip it
        (metrics scrapes do).
        """
        keys = [self.keys.due, self.keys.inflight, self.keys.dead, self.keys.counts]
        now_s, due, ready, in_flight, dead, flat = await self._stats(keys=keys, args=[self._now_arg()])
        now = float(now_s)
        by_type: dict[str, TypeStats] = {}
        for i in range(0, len(flat), 2):
            kind, _, task_type = _text(flat[i]).partition("|")
            count = int(flat[i + 1])
            if count == 0:
                continue
            entry = by_type.setdefault(task_type, TypeStats())
            if kind == "due":
                entry.due = count
            elif kind == "inflight":
                entry.in_flight = count
            elif kind == "dead":
                entry.dead = count
        if ready_by_type and int(ready) > 0:
            page = 5000
            offset = 0
            while True:
                ids = await self.redis.zrangebyscore(self.keys.due, "-inf", now, start=offset, num=page)
                for raw in ids:
                    task_type = _text(raw).rpartition(":")[0]
                    by_type.setdefault(task_type, TypeStats()).ready += 1
                if len(ids) < page:
                    break
                offset += page
        return QueueStats(
            queue=self.name,
            now=now,
            due=int(due),
            ready=int(ready),
            in_flight=int(in_flight),
            dead=int(dead),
            by_type=dict(sorted(by_type.items())),
        )

    async def ready_count(self) -> int:
        """How many tasks are due now: one round trip, O(log n)."""
        return int(await self._ready(keys=[self.keys.due], args=[self._now_arg()]))

    # --- dead letters --------------------------------------------------------------------------

    async def retry_dead(self, task_id: str | None = None, *, all_dead: bool = False) -> int:
        """Make dead tasks due now with fresh attempts: one (``task_id``) or all. Returns how many."""
        if (task_id is None) == (not all_dead):
            raise ValueError("give either a task id or all_dead=True")
        keys = [
            self.keys.due,
            self.keys.inflight,
            self.keys.dead,
            self.keys.tasks,
            self.keys.attempts,
            self.keys.dedupe,
            self.keys.counts,
        ]
        if task_id is not None:
            return int(await self._retry_dead(keys=keys, args=[self._now_arg(), self.keys.channel, task_id, "1"]))
        total = 0
        while True:
            n = int(await self._retry_dead(keys=keys, args=[self._now_arg(), self.keys.channel, "", str(CHUNK)]))
            total += n
            if n < CHUNK:
                return total

    async def run_now(self, task_id: str) -> bool:
        """Make a due task due now (development: see a scheduled text without waiting). False if
        ``task_id`` is not a due task."""
        args = [self._now_arg(), self.keys.channel, task_id]
        return bool(await self._run_now(keys=[self.keys.due], args=args))

    async def purge_dead(self, older_than: float) -> int:
        """Delete dead tasks dead-lettered more than ``older_than`` seconds ago. Returns how many."""
        keys = [self.keys.dead, self.keys.tasks, self.keys.attempts, self.keys.counts]
        total = 0
        while True:
            n = int(await self._purge_dead(keys=keys, args=[self._now_arg(), repr(float(older_than)), str(CHUNK)]))
            total += n
            if n < CHUNK:
                return total

    # --- worker side ---------------------------------------------------------------------------

    async def claim_batch(self, worker_id: str, *, limit: int, lease: float) -> ClaimResult:
        """Requeue expired leases, then claim up to ``limit`` due tasks for ``lease`` seconds."""
        token = f"{worker_id}/{next(self._claims)}"
        keys = [
            self.keys.due,
            self.keys.inflight,
            self.keys.tasks,
            self.keys.attempts,
            self.keys.owners,
            self.keys.counts,
        ]
        args = [
            self._now_arg(),
            str(max(0, min(limit, MAX_CLAIM))),
            repr(float(lease)),
            token,
            str(REQUEUE_LIMIT),
        ]
        now_s, next_due, next_lease, flat, records, attempts, requeued = await self._claim_script(keys=keys, args=args)
        now = float(now_s)
        lease_expires = now + lease
        tasks = [
            Task._decode(
                _text(flat[2 * i]),
                record,
                attempt=int(attempts[i]),
                due=float(flat[2 * i + 1]),
                state="in_flight",
                lease_expires=lease_expires,
                lease_token=token,
            )
            for i, record in enumerate(records)
        ]
        return ClaimResult(
            tasks=tasks,
            now=now,
            next_due=_opt_float(next_due),
            next_lease_expiry=_opt_float(next_lease),
            requeued=int(requeued),
        )

    async def claim(self, worker_id: str, *, limit: int, lease: float) -> tuple[list[Task], float | None]:
        """Claim up to ``limit`` due tasks; returns them and the next due score (or None)."""
        result = await self.claim_batch(worker_id, limit=limit, lease=lease)
        return result.tasks, result.next_due

    async def requeue_expired(self) -> int:
        """Put tasks whose lease expired back into the due set (claims do this too). Returns how many."""
        total = 0
        while True:
            result = await self.claim_batch("requeue", limit=0, lease=0.0)
            total += result.requeued
            if result.requeued < REQUEUE_LIMIT:
                return total

    async def ack(self, tasks: Sequence[Task]) -> list[str]:
        """Finish claimed tasks. Returns the ids not acked because their lease had been lost."""
        if not tasks:
            return []
        keys = [
            self.keys.inflight,
            self.keys.tasks,
            self.keys.attempts,
            self.keys.owners,
            self.keys.dedupe,
            self.keys.counts,
        ]
        lost: list[str] = []
        if len(tasks) <= CHUNK or is_cluster(self.redis):
            for start in range(0, len(tasks), CHUNK):
                lost.extend(_text(x) for x in await self._ack(keys=keys, args=_ack_args(tasks[start : start + CHUNK])))
            return lost
        # One round trip for any number of acks; each chunk is its own short script call.
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(tasks), CHUNK):
                await self._ack(keys=keys, args=_ack_args(tasks[start : start + CHUNK]), client=pipe)
            for result in await pipe.execute():
                lost.extend(_text(x) for x in result)
        return lost

    async def extend_leases(self, tasks: Sequence[Task], *, lease: float) -> list[str]:
        """Push the lease of held tasks to now + ``lease``. Returns the ids whose lease was lost."""
        lost: list[str] = []
        for start in range(0, len(tasks), CHUNK):
            chunk = tasks[start : start + CHUNK]
            args = [self._now_arg(), repr(float(lease)), str(len(chunk))]
            for task in chunk:
                args.extend((task.id, task.lease_token or ""))
            lost.extend(_text(x) for x in await self._extend(keys=[self.keys.inflight, self.keys.owners], args=args))
        return lost

    async def _resched(self, entries: Sequence[tuple[Task, str, str, str, float]]) -> list[float | None]:
        keys = [
            self.keys.due,
            self.keys.inflight,
            self.keys.dead,
            self.keys.tasks,
            self.keys.attempts,
            self.keys.owners,
            self.keys.dedupe,
            self.keys.counts,
        ]
        out: list[float | None] = []
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            args = [self._now_arg(), self.keys.channel, str(len(chunk))]
            for task, outcome, record, kind, value in chunk:
                args.extend(
                    (
                        task.id,
                        task.lease_token or "",
                        outcome,
                        record,
                        kind,
                        repr(float(value)),
                        task.dedupe_key or "",
                    )
                )
            out.extend(_opt_float(x) for x in await self._reschedule(keys=keys, args=args))
        return out

    async def fail(self, task: Task, error: str, *, retry_in: float | None) -> float | None:
        """Record a failed run: retry after ``retry_in`` seconds, or dead-letter it when None.

        Returns the new due time (or dead-letter time); None when the lease had been lost.
        """
        at = float(self.clock.now())
        if retry_in is None:
            failed = task.with_error(error, at=at, outcome="dead")
            return (await self._resched([(failed, "dead", failed.record(), "d", 0.0)]))[0]
        failed = task.with_error(error, at=at, outcome="retry")
        return (await self._resched([(failed, "retry", failed.record(), "d", max(0.0, retry_in))]))[0]

    async def defer(self, task: Task, until: float) -> float | None:
        """Reschedule a claimed task at ``until`` (absolute) without spending its attempt."""
        return (await self._resched([(task, "defer", "", "a", until)]))[0]

    async def release(self, tasks: Iterable[Task]) -> int:
        """Hand claimed tasks back (due now, attempt refunded), e.g. on shutdown. Returns how many."""
        results = await self._resched([(task, "defer", "", "d", 0.0) for task in tasks])
        return sum(1 for r in results if r is not None)


class _NodeSubscription:
    """A pub/sub on a client of its own (one cluster node): closing it closes that client too."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pubsub: Any = client.pubsub(ignore_subscribe_messages=True)

    async def subscribe(self, *channels: str) -> None:
        await self._pubsub.subscribe(*channels)

    # The signature of redis-py's PubSub.get_message, which the worker calls.
    async def get_message(self, *, ignore_subscribe_messages: bool, timeout: float) -> Any:  # noqa: ASYNC109
        return await self._pubsub.get_message(ignore_subscribe_messages=ignore_subscribe_messages, timeout=timeout)

    async def aclose(self) -> None:
        try:
            await self._pubsub.aclose()
        finally:
            await self._client.aclose()


def _ack_args(tasks: Sequence[Task]) -> list[str]:
    args = [str(len(tasks))]
    for task in tasks:
        args.extend((task.id, task.lease_token or "", task.dedupe_key or ""))
    return args


def _owner_due(owner: Any) -> float | None:
    # owners values are "<token>|<due score>"
    if owner is None:
        return None
    return _opt_float(_text(owner).rpartition("|")[2])
