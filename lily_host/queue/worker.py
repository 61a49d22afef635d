"""The worker: claims due tasks in batches, runs their handlers, acks in coalesced batches.

One ``run()`` holds four loops on one event loop:

* the claim loop: claims up to ``min(batch, free slots)`` due tasks in one Lua call, then sleeps
  exactly until the next due task or the earliest lease expiry (a local timer computed from the
  scores and the server time the claim returned), or until woken;
* the wake listener: a pub/sub subscription on which the queue announces a task earlier than every
  other one, so a sleeping worker starts it within milliseconds instead of at its old timer;
* the heartbeat: every ``lease / 3`` it extends the lease of every task this worker holds, so a
  slow task is not handed to another worker while this one is alive;
* the acker: acks of finished tasks accumulate while the previous ack call is in flight and go out
  as one script call — one round trip per burst of tasks instead of one per task.

Delivery is at least once: a task whose worker dies is requeued by the next claim after its lease
expires and run again, so handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import redis.exceptions
import structlog

from lily_host.operations.correlation import delivery_scope
from lily_host.operations.task_history import Run, TaskHistory, first_try
from lily_host.operations.worker_registry import HEARTBEAT_SECONDS, WorkerRegistry
from lily_host.plugin_api.contract import RetryPolicy, TaskContext, TaskHandler
from lily_host.plugin_api.errors import Defer, PermanentError, RetryLater
from lily_host.queue import queue_metrics as metrics
from lily_host.queue.retry import backoff_delay
from lily_host.queue.task_queue import ClaimResult, Task, TaskQueue

__all__ = ["Worker"]

#: Errors of Redis calls (unreachable, loading, OOM, read-only replica after a failover...): logged and
#: retried, never fatal to the worker — a crash would strand its leases until they expire.
REDIS_DOWN: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)

_Key = tuple[str, str | None]


def _key(task: Task) -> _Key:
    # The same task id can be held twice by one worker (its lease was lost and it claimed the task
    # again), so held tasks are keyed by id and lease token.
    return task.id, task.lease_token


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


#: Builds a task's context: ``(task, bound logger)`` → TaskContext.
ContextFactory = Callable[[Task, structlog.stdlib.BoundLogger], Awaitable[TaskContext]]


class Worker:
    """Runs the handlers of due tasks of one queue. See the module docstring."""

    def __init__(
        self,
        queue: TaskQueue,
        handlers: Mapping[str, TaskHandler],
        *,
        host: Any,
        concurrency: int = 32,
        lease: float = 30.0,
        batch: int = 64,
        worker_id: str | None = None,
        log: structlog.stdlib.BoundLogger | None = None,
        drain_timeout: float = 20.0,
        max_sleep: float = 10.0,
        unknown_type_grace: float = 900.0,
        unknown_type_recheck: float = 30.0,
        context_factory: ContextFactory | None = None,
    ) -> None:
        if concurrency < 1 or batch < 1 or lease <= 0:
            raise ValueError("concurrency and batch must be >= 1 and lease > 0")
        self.queue = queue
        self.handlers = dict(handlers)
        self.host = host
        # The host builds each task's context (tenant loaded, collaborators injected); without one,
        # a bare context with the queue's scheduling (the queue's own tests and benchmarks).
        self.context_factory = context_factory
        self.concurrency = concurrency
        self.lease = lease
        self.batch = batch
        self.drain_timeout = drain_timeout
        # Safety net only: pub/sub is at-most-once, so a wake lost in a reconnect costs at most this.
        self.max_sleep = max_sleep
        # A task type no handler here knows is, most of the time, a newer release rolling out (its
        # webhooks schedule the new type while older workers still run): the task is put back, no
        # attempt spent, and dead-lettered only when no worker has taken it within the grace.
        self.unknown_type_grace = unknown_type_grace
        self.unknown_type_recheck = unknown_type_recheck
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        base = log if log is not None else cast(structlog.stdlib.BoundLogger, structlog.get_logger("lily.scheduler"))
        self._log = base.bind(worker_id=self.worker_id, queue=queue.name)
        self._held: dict[_Key, Task] = {}
        self._running: dict[asyncio.Task[None], Task] = {}
        self._acks: list[Task] = []
        self._ack_event = asyncio.Event()
        self._ack_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._full = False
        # Score (queue clock) the claim loop is sleeping until; a wake for anything later is ignored.
        self._target = math.inf
        self._signals_pending = False
        settings = getattr(host, "settings", None)
        self.history = TaskHistory(queue.redis, queue.name, float(getattr(settings, "trace_days", 7.0)))
        self._runs: list[Run] = []
        self._done: list[tuple[str, str, str | None]] = []
        self.registry = WorkerRegistry(queue.redis, queue.name)
        self.started_at = time.time()
        self.tasks_run = 0
        # Task types a plugin owns ("twilio.…", "gcal.…"): their failures count against the integration.
        records = getattr(getattr(host, "registry", None), "records", {})
        self._integrations = {name for name in records if "." not in name}

    # --- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; ``run()`` then finishes in-flight tasks (up to ``drain_timeout``), hands
        the rest back and returns. Call it from the event loop's thread (signal handlers are)."""
        if not self._stopping:
            self._log.info("worker.stopping")
        self._stopping = True
        self._wake.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT call :meth:`stop`. Installed now if a loop runs, else when ``run()`` starts."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._signals_pending = True
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    async def run(self) -> None:
        """Claim and run tasks until :meth:`stop`, then drain."""
        if self._signals_pending:
            self._signals_pending = False
            self.install_signal_handlers()
        aux = [
            asyncio.create_task(self._listen(), name="lily-worker-wake"),
            asyncio.create_task(self._heartbeat(), name="lily-worker-heartbeat"),
            asyncio.create_task(self._ack_loop(), name="lily-worker-acks"),
            asyncio.create_task(self._register(), name="lily-worker-registry"),
        ]
        self._log.info("worker.started", concurrency=self.concurrency, lease=self.lease, batch=self.batch)
        try:
            await self._claim_loop()
            await self._drain()
        finally:
            for running in list(self._running):
                running.cancel()
            for task in aux:
                task.cancel()
            await asyncio.gather(*aux, return_exceptions=True)
            with contextlib.suppress(*REDIS_DOWN):
                await self.registry.remove(self.worker_id)
            self._log.info("worker.stopped")

    async def run_due(self, *, max_runs: int = 100_000) -> int:
        """Run every task due now (by the queue's now) to completion, follow-ups that become due
        now included; returns how many ran. Meant for tests with a ManualClock.

        ``max_runs`` stops a handler that defers to "now" forever from hanging the caller.
        """
        ran = 0
        while ran < max_runs:
            limit = min(self.batch, self.concurrency, max_runs - ran)
            result = await self.queue.claim_batch(self.worker_id, limit=limit, lease=self.lease)
            if not result.tasks:
                break
            for task in result.tasks:
                self._held[_key(task)] = task
                self._observe_lateness(task, result.now)
            await asyncio.gather(*(self._execute(task) for task in result.tasks))
            await self._flush_acks()
            ran += len(result.tasks)
        if ran >= max_runs:
            self._log.warning("worker.run_due_limit", max_runs=max_runs)
        return ran

    # --- claim loop ----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping:
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._full = True
                self._wake.clear()
                if self.concurrency - len(self._running) <= 0 and not self._stopping:
                    await self._wake.wait()
                self._full = False
                # Let other tasks that finish in the same tick free their slots: fewer, bigger claims.
                await asyncio.sleep(0)
                continue
            limit = min(self.batch, free)
            # Anything announced while the claim is in flight must wake us: clear first, target ∞.
            self._target = math.inf
            self._wake.clear()
            try:
                result = await self.queue.claim_batch(self.worker_id, limit=limit, lease=self.lease)
            except REDIS_DOWN as error:
                failures += 1
                delay = min(2.0, 0.05 * 2**failures)
                self._log.warning("worker.redis_unavailable", error=_describe(error), retry_in=delay)
                self._wake.clear()
                await self._sleep(delay)
                continue
            failures = 0
            loop = asyncio.get_running_loop()
            for task in result.tasks:
                self._start(loop, task, result.now)
            if len(result.tasks) == limit:
                # Probably more due: let the claimed tasks start, then claim again.
                await asyncio.sleep(0)
                continue
            await self._sleep(self._next_delay(result))

    def _next_delay(self, result: ClaimResult) -> float:
        scores = [s for s in (result.next_due, result.next_lease_expiry) if s is not None]
        if not scores:
            self._target = math.inf
            return self.max_sleep
        self._target = min(scores)
        delay = self._target - result.now
        if self.queue.clock.manual:
            # A manual clock moves without telling anyone: look again soon.
            delay = min(delay, 0.05)
        return min(max(delay, 0.0), self.max_sleep)

    async def _sleep(self, delay: float) -> None:
        if delay <= 0 or self._wake.is_set():
            return
        handle = asyncio.get_running_loop().call_later(delay, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            handle.cancel()

    def _on_wake(self, score: float) -> None:
        if score < self._target or self.queue.clock.manual:
            self._wake.set()

    def _start(self, loop: asyncio.AbstractEventLoop, task: Task, claim_now: float) -> None:
        self._held[_key(task)] = task
        self._observe_lateness(task, claim_now)
        running = loop.create_task(self._execute(task))
        self._running[running] = task
        running.add_done_callback(self._finished)

    def _finished(self, running: asyncio.Task[None]) -> None:
        task = self._running.pop(running, None)
        if self._full:
            self._wake.set()
        if not running.cancelled() and (error := running.exception()) is not None and task is not None:
            # _execute handles every handler outcome; reaching this is a bug in the worker itself.
            self._log.error("worker.internal_error", task_id=task.id, error=_describe(error), exc_info=error)

    def _observe_lateness(self, task: Task, claim_now: float) -> None:
        if task.due is not None:
            metrics.lateness(self.queue.name, task.type).observe(max(0.0, claim_now - task.due))

    # --- running one task ----------------------------------------------------------------------

    def _policy(self, task_type: str) -> RetryPolicy:
        # An explicit queue policy wins (the host sets them from every registered handler);
        # otherwise the handler's own.
        if self.queue.has_policy(task_type):
            return self.queue.policy(task_type)
        handler = self.handlers.get(task_type)
        return handler.retry if handler is not None else self.queue.policy(task_type)

    async def _execute(self, task: Task) -> None:
        # Every line of the task, and whatever it schedules or stores, carries its delivery.
        with delivery_scope(task.delivery):
            await self._execute_in_scope(task)

    async def _execute_in_scope(self, task: Task) -> None:
        log = self._log.bind(task_id=task.id, task_type=task.type, attempt=task.attempt, tenant=task.tenant)
        if task.delivery:
            log = log.bind(delivery=task.delivery)
        handler = self.handlers.get(task.type)
        if handler is None:
            await self._unknown_type(task, log)
            return
        if task.attempt > task.max_attempts:
            await self._dead(
                task,
                log,
                f"attempt {task.attempt} exceeds max_attempts {task.max_attempts}: an earlier run was lost "
                "(its worker died or its lease expired)",
            )
            return
        if self.context_factory is not None:
            ctx = await self.context_factory(task, log)
        else:
            ctx = TaskContext(
                task_id=task.id,
                task_type=task.type,
                tenant_id=task.tenant,
                attempt=task.attempt,
                max_attempts=task.max_attempts,
                first_due=task.first_due,
                log=log,
                host=self.host,
                schedule_task=self.queue.schedule,
                delivery=task.delivery,
            )
        started = time.perf_counter()
        wall = time.time()
        self.tasks_run += 1
        try:
            await handler.func(ctx, task.payload)
        except Defer as deferral:
            self._observe_duration(task, started)
            self._note(task, wall, started, "deferred", deferral.reason)
            await self._settle(task, log, "deferred", self.queue.defer(task, deferral.until), reason=deferral.reason)
        except RetryLater as later:
            self._observe_duration(task, started)
            self._note(task, wall, started, "retry", f"RetryLater: {later.reason}")
            await self._integration(task, ok=False, error=later.reason)
            await self._retry(task, log, f"RetryLater: {later.reason}", later.seconds)
        except PermanentError as error:
            self._observe_duration(task, started)
            self._note(task, wall, started, "dead", _describe(error))
            await self._dead(task, log, _describe(error))
        except Exception as error:
            self._observe_duration(task, started)
            self._note(task, wall, started, self._failure_outcome(task), _describe(error))
            await self._integration(task, ok=False, error=_describe(error))
            await self._backoff(task, log, error)
        except asyncio.CancelledError as error:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled (drain timeout): the task is handed back
            # Raised by the handler itself (a library's timeout, say): a failure like any other.
            self._observe_duration(task, started)
            self._note(task, wall, started, self._failure_outcome(task), _describe(error))
            await self._backoff(task, log, error)
        else:
            self._observe_duration(task, started)
            self._note(task, wall, started, "ok", None)
            await self._integration(task, ok=True)
            metrics.outcome(self.queue.name, task.type, "ok").inc()
            log.debug("task.ok")
            self._acks.append(task)
            self._ack_event.set()

    @staticmethod
    def _failure_outcome(task: Task) -> str:
        return "dead" if task.attempt >= task.max_attempts else "retry"

    def _note(self, task: Task, wall: float, started: float, outcome: str, error: str | None) -> None:
        """Keep this run for the task's history (written with the next ack flush)."""
        if not self.history.enabled:
            return
        if outcome == "ok" and task.attempt == 1:  # the common case, kept in a shared hourly hash
            record = first_try(
                task.type,
                task.tenant,
                task.delivery,
                task.max_attempts,
                wall,
                round(time.perf_counter() - started, 6),
                task.created,
                task.first_due,
            )
            self._done.append((task.id, record, task.delivery))
            return
        final = outcome in ("ok", "dead")
        self._runs.append(
            Run(
                task_id=task.id,
                type=task.type,
                tenant=task.tenant,
                delivery=task.delivery,
                attempt=task.attempt,
                max_attempts=task.max_attempts,
                started=wall,
                duration=round(time.perf_counter() - started, 6),
                outcome=outcome,
                error=error,
                task={"created": task.created, "first_due": task.first_due} if final else None,
            )
        )
        self._ack_event.set()  # the ack loop writes the history

    async def _integration(self, task: Task, *, ok: bool, error: str = "") -> None:
        """A plugin's own task type is an outbound call of that integration: count it."""
        owner = task.type.partition(".")[0]
        tracker = getattr(self.host, "integrations", None)
        if tracker is None or owner not in self._integrations:
            return
        try:
            await tracker.record(owner, ok, error)
        except REDIS_DOWN as failure:
            self._log.warning("worker.integration_unrecorded", error=_describe(failure))

    async def _unknown_type(self, task: Task, log: structlog.stdlib.BoundLogger) -> None:
        now = await self.queue.now()
        if now - task.first_due < self.unknown_type_grace:
            reason = f"no handler registered here for task type {task.type!r}; put back for a worker that has one"
            until = now + self.unknown_type_recheck
            await self._settle(task, log, "deferred", self.queue.defer(task, until), reason=reason)
            return
        await self._dead(
            task,
            log,
            f"no handler registered for task type {task.type!r} "
            f"(no worker took it within {self.unknown_type_grace:.0f} s of its due time)",
        )

    async def _backoff(self, task: Task, log: structlog.stdlib.BoundLogger, error: BaseException) -> None:
        delay = backoff_delay(self._policy(task.type), task.attempt)
        await self._retry(task, log, _describe(error), delay, exc=error)

    def _observe_duration(self, task: Task, started: float) -> None:
        metrics.duration(self.queue.name, task.type).observe(time.perf_counter() - started)

    async def _retry(
        self,
        task: Task,
        log: structlog.stdlib.BoundLogger,
        error: str,
        delay: float,
        *,
        exc: BaseException | None = None,
    ) -> None:
        if task.attempt >= task.max_attempts:
            await self._dead(task, log, error, exc=exc)
            return
        await self._settle(task, log, "retry", self.queue.fail(task, error, retry_in=delay), error=error, exc=exc)

    async def _dead(
        self, task: Task, log: structlog.stdlib.BoundLogger, error: str, *, exc: BaseException | None = None
    ) -> None:
        await self._settle(task, log, "dead", self.queue.fail(task, error, retry_in=None), error=error, exc=exc)

    async def _settle(
        self,
        task: Task,
        log: structlog.stdlib.BoundLogger,
        outcome: str,
        call: Any,
        *,
        exc: BaseException | None = None,
        **fields: Any,
    ) -> None:
        # Drop the task from the held set before the call: if the call fails, its lease expires and
        # another run happens — the at-least-once path, not a hand-back with a refunded attempt.
        self._held.pop(_key(task), None)
        try:
            when = await call
        except REDIS_DOWN as error:
            log.error("task.unrecorded", outcome=outcome, redis_error=_describe(error), **fields)
            return
        if when is None:
            metrics.outcome(self.queue.name, task.type, "lost").inc()
            log.warning("task.lease_lost", outcome=outcome, **fields)
            return
        metrics.outcome(self.queue.name, task.type, outcome).inc()
        if outcome == "dead":
            log.error("task.dead", attempts=task.attempt, **fields, exc_info=exc)
        elif outcome == "retry":
            log.warning("task.retry", due=when, **fields, exc_info=exc)
        else:
            log.info(f"task.{outcome}", due=when, **fields)

    # --- acks, heartbeats, wake-ups ------------------------------------------------------------

    async def _flush_acks(self) -> None:
        async with self._ack_lock:
            if self._runs or self._done:
                runs, self._runs = self._runs, []
                done, self._done = self._done, []
                try:
                    await self.history.add(runs, done)
                except REDIS_DOWN as error:  # history is for people; never worth a lost ack
                    self._log.warning("worker.history_unrecorded", error=_describe(error), runs=len(runs) + len(done))
            while self._acks:
                batch, self._acks = self._acks, []
                try:
                    lost = await self.queue.ack(batch)
                except BaseException:
                    self._acks[:0] = batch
                    raise
                for task in batch:
                    self._held.pop(_key(task), None)
                if lost:
                    by_id = {task.id: task for task in batch}
                    for task_id in lost:
                        task = by_id[task_id]
                        metrics.outcome(self.queue.name, task.type, "lost").inc()
                        self._log.warning(
                            "task.lease_lost",
                            task_id=task_id,
                            task_type=task.type,
                            attempt=task.attempt,
                            outcome="ok",
                        )

    async def _ack_loop(self) -> None:
        failures = 0
        while True:
            await self._ack_event.wait()
            self._ack_event.clear()
            try:
                await self._flush_acks()
                failures = 0
            except REDIS_DOWN as error:
                failures += 1
                delay = min(2.0, 0.05 * 2**failures)
                self._log.warning("worker.ack_failed", error=_describe(error), pending=len(self._acks), retry_in=delay)
                await asyncio.sleep(delay)
                self._ack_event.set()

    async def _register(self) -> None:
        """Tell health and `lily workers` this worker is alive, every HEARTBEAT_SECONDS."""
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queue": self.queue.name,
            "started": self.started_at,
            "concurrency": self.concurrency,
        }
        while True:
            try:
                await self.registry.beat(
                    self.worker_id, {**info, "running": len(self._running), "tasks_run": self.tasks_run}
                )
            except REDIS_DOWN as error:
                self._log.warning("worker.registry_unavailable", error=_describe(error))
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            if not self._held:
                continue
            try:
                # Under the ack lock, so an ack in flight is never mistaken for a lost lease.
                async with self._ack_lock:
                    held = list(self._held.values())
                    lost = await self.queue.extend_leases(held, lease=self.lease)
            except REDIS_DOWN as error:
                self._log.warning("worker.heartbeat_failed", error=_describe(error), held=len(self._held))
                continue
            lost_ids = set(lost)
            for task in held:
                if task.id in lost_ids and _key(task) in self._held:
                    self._log.warning(
                        "task.lease_lost",
                        task_id=task.id,
                        task_type=task.type,
                        attempt=task.attempt,
                        outcome="running",
                    )

    async def _listen(self) -> None:
        failures = 0
        while True:
            pubsub: Any = None
            try:
                pubsub = await self.queue.wake_subscription()
                await pubsub.subscribe(self.queue.channel)
                # Anything scheduled while we were not subscribed was not announced to us.
                self._wake.set()
                failures = 0
                while True:
                    # A finite timeout returns None when idle instead of tripping socket timeouts.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        self._on_wake(float(message["data"]))
            except REDIS_DOWN as error:
                failures += 1
                delay = min(2.0, 0.05 * 2**failures)
                self._log.warning("worker.wake_unavailable", error=_describe(error), retry_in=delay)
                await asyncio.sleep(delay)
            finally:
                if pubsub is not None:
                    await _close_quietly(pubsub)

    async def _drain(self) -> None:
        if self._running:
            self._log.info("worker.draining", in_flight=len(self._running), timeout=self.drain_timeout)
            _, pending = await asyncio.wait(set(self._running), timeout=self.drain_timeout)
            for running in pending:
                running.cancel()
            if pending:
                await asyncio.wait(pending)
        try:
            await self._flush_acks()
        except REDIS_DOWN as error:
            self._log.error("worker.final_ack_failed", error=_describe(error), pending=len(self._acks))
        # What is still held was cancelled mid-run: give it back now rather than after its lease.
        leftovers = list(self._held.values())
        self._held.clear()
        if not leftovers:
            return
        try:
            released = await self.queue.release(leftovers)
        except REDIS_DOWN as error:
            self._log.error("worker.release_failed", error=_describe(error), tasks=len(leftovers))
            return
        for task in leftovers:
            metrics.outcome(self.queue.name, task.type, "released").inc()
        self._log.info("worker.released", tasks=released)


async def _close_quietly(pubsub: Any) -> None:
    # Closing a subscription on a dead connection is best effort (the pool drops it anyway), but it
    # must stay short and must let a cancellation through: the worker cancels this task on stop.
    with contextlib.suppress(*REDIS_DOWN, RuntimeError, TimeoutError):
        await asyncio.wait_for(pubsub.aclose(), timeout=1.0)
