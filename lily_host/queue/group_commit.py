"""Group commit: script calls made in the same event-loop turn travel to Redis in one pipeline.

Under load, a web process has dozens of webhooks in flight, each ending in one ``EVALSHA`` of the
schedule script. Sent one by one, every call pays for a pool checkout (a lock and a health check),
a socket write and a socket read; sent together they pay for one of each. Each call is still its
own atomic script run with its own result or error, and each caller still waits for its own
reply before it answers its provider, so batching changes no guarantee: it only shares the trip.

The batch closes at the end of the current loop turn (``call_soon``), so a lone call waits for no
timer and no other call; several batches may be on the wire at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from lily_host.config.redis_connection import is_cluster

__all__ = ["NotReplicated", "ScriptBatcher"]

_Call = tuple[Sequence[str], Sequence[str], "asyncio.Future[Any]"]
#: A packed command sent along with a batch, nobody waiting for it, and what to call with its error.
_Side = tuple[bytes, Callable[[Exception], None]]


def _pack_evalsha(sha: bytes, keys: Sequence[str], args: Sequence[str]) -> bytes:
    """``EVALSHA sha numkeys key... arg...`` in the Redis protocol (RESP arrays of bulk strings)."""
    parts = [b"EVALSHA", sha, b"%d" % len(keys), *(key.encode() for key in keys), *(arg.encode() for arg in args)]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(part), part) for part in parts)


class NotReplicated(Exception):
    """Fewer replicas than required confirmed a commit in time (``LILY_REDIS_MIN_REPLICAS``).

    The commit is on the primary but may die with it: the caller must not acknowledge it (a webhook
    answers 503 and its provider delivers again; the delivery guard makes that a no-op if the
    primary survived).
    """

    def __init__(self, wanted: int, got: int) -> None:
        super().__init__(f"{got} of {wanted} required Redis replicas confirmed the write in time")
        self.wanted = wanted
        self.got = got


def _pack(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(part), part) for part in parts)


class ScriptBatcher:
    """Runs one Lua script for many callers, batching the calls of each loop turn into a pipeline.

    With ``min_replicas`` > 0 each batch ends with ``WAIT min_replicas timeout`` on the same
    connection, so every caller's reply means "on the primary and on that many replicas".
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        script: AsyncScript,
        *,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        self._redis = redis
        self._script = script
        self.min_replicas = min_replicas
        self._wait = _pack(b"WAIT", b"%d" % min_replicas, b"%d" % max(1, int(replica_timeout * 1000)))
        self._pending: list[_Call] = []
        self._side: list[_Side] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        #: Calls sent per pipeline, for tests and the benchmark's curiosity.
        self.batches = 0
        self.calls = 0

    async def __call__(self, keys: Sequence[str], args: Sequence[str]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((keys, args, future))
        return await future

    def send_along(self, packed: bytes, on_error: Callable[[Exception], None]) -> None:
        """Send an already packed command with the next batch; nobody waits for it.

        For writes whose answer no caller needs (the webhook log): they share the batch's one
        write and read instead of paying for their own. A reply that is an error goes to
        ``on_error``; so does a failure of the whole batch.
        """
        if not self._pending and not self._side:
            asyncio.get_running_loop().call_soon(self._flush)
        self._side.append((packed, on_error))

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        side, self._side = self._side, []
        task = asyncio.get_running_loop().create_task(self._send(batch, side))
        # Kept referenced until done: a task nobody holds may be garbage-collected mid-flight.
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[_Call], side: list[_Side] | None = None) -> None:
        self.batches += 1
        self.calls += len(batch)
        try:
            results = await self._pipeline(batch, side or [])
            retry = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if retry:
                # The server lost the script (restart, SCRIPT FLUSH): load it once, run those again.
                self._script.sha = await self._redis.script_load(self._script.script)
                again = await self._pipeline([batch[i] for i in retry])
                for i, result in zip(retry, again, strict=True):
                    results[i] = result
        except asyncio.CancelledError:
            for _, _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # every waiting caller gets the failure
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            for _, on_error in side or []:
                on_error(error)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled; its call ran all the same
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline(self, batch: Sequence[_Call], side: Sequence[_Side] = ()) -> list[Any]:
        """Every call of ``batch`` in one write on one pooled connection, then each reply in turn.

        What redis-py's Pipeline does, less its generic layers (a command stack, per-argument
        encoding through the client's encoder, a retry wrapper): the arguments here are always
        text, so they are packed in one pass. A reply that is an error (a script error, NOSCRIPT)
        belongs to its call alone; a connection error fails the batch, and redis-py closes that
        connection rather than return it half-read to the pool.
        """
        sha = self._script.sha.encode() if isinstance(self._script.sha, str) else self._script.sha
        if is_cluster(self._redis):
            for _, on_error in side:
                # A side command (a webhook log append) names keys of several slots: not on a cluster.
                on_error(RuntimeError("not sent: on a Redis Cluster this write spans hash slots"))
            return await self._cluster_pipeline(sha, batch)
        packed = b"".join(_pack_evalsha(sha, keys, args) for keys, args, _ in batch)
        if side:
            packed += b"".join(command for command, _ in side)
        if self.min_replicas:
            packed += self._wait
        pool = self._redis.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(packed)
            results: list[Any] = []
            for _ in batch:
                try:
                    results.append(await connection.read_response())
                except ResponseError as error:
                    results.append(error)
            for _, on_error in side:
                try:
                    await connection.read_response()
                except ResponseError as error:
                    on_error(error)
            if self.min_replicas:
                # WAIT counts the replicas that hold every write this connection made so far.
                replicas = int(await connection.read_response())
                if replicas < self.min_replicas:
                    shortfall = NotReplicated(self.min_replicas, replicas)
                    results = [result if isinstance(result, ResponseError) else shortfall for result in results]
            return results
        finally:
            await pool.release(connection)

    async def _cluster_pipeline(self, sha: bytes, batch: Sequence[_Call]) -> list[Any]:
        """On a Redis Cluster: redis-py's cluster pipeline, which sends each node its calls in one
        write (every call names keys of one slot: the queue's hash tag) and follows MOVED."""
        pipe: Any = self._redis.pipeline()
        for keys, args, _ in batch:
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def drain(self) -> None:
        """Wait for every batch already sent (on shutdown, before the connection pool closes)."""
        while self._pending or self._side or self._in_flight:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            else:
                await asyncio.sleep(0)
