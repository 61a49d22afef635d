"""Live workers: each worker registers a heartbeat, so health and ``lily workers`` know who runs tasks.

``lily:{q:NAME}:workers`` is a ZSET worker id → time of its last heartbeat, and
``lily:{q:NAME}:worker:<id>`` a JSON record of the worker (host, pid, started, concurrency, tasks
running and run so far) that expires unless renewed. A worker is live when its heartbeat is younger
than :data:`LIVE_SECONDS`; a worker that stops cleanly unregisters, one that dies ages out. Times
are wall-clock (``time.time()``): a heartbeat is about this machine being alive, not about the
queue's clock.
"""

from __future__ import annotations

import json
import time
from typing import Any

#: Seconds between heartbeats.
HEARTBEAT_SECONDS = 10.0
#: A worker whose last heartbeat is older than this is gone.
LIVE_SECONDS = 3 * HEARTBEAT_SECONDS


class WorkerRegistry:
    def __init__(self, redis: Any, queue_name: str) -> None:
        self.redis = redis
        prefix = f"lily:{{q:{queue_name}}}:"
        self.index = prefix + "workers"
        self.record_prefix = prefix + "worker:"

    async def beat(self, worker_id: str, info: dict[str, Any], now: float | None = None) -> None:
        now = time.time() if now is None else now
        record = json.dumps({**info, "id": worker_id, "last_seen": now}, default=str)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.index, {worker_id: now})
        pipe.set(self.record_prefix + worker_id, record, ex=int(LIVE_SECONDS * 2))
        await pipe.execute()

    async def remove(self, worker_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(self.index, worker_id)
        pipe.delete(self.record_prefix + worker_id)
        await pipe.execute()

    async def live(self, now: float | None = None) -> list[dict[str, Any]]:
        """The live workers, most recent heartbeat first; forgets those long gone."""
        now = time.time() if now is None else now
        await self.redis.zremrangebyscore(self.index, "-inf", now - 10 * LIVE_SECONDS)
        ids = await self.redis.zrevrangebyscore(self.index, "+inf", now - LIVE_SECONDS)
        if not ids:
            return []
        records = await self.redis.mget([self.record_prefix + raw.decode() for raw in ids])
        workers = []
        for raw_id, record in zip(ids, records, strict=True):
            if record is None:
                continue
            data: dict[str, Any] = json.loads(record)
            data["age_seconds"] = round(max(0.0, now - float(data.get("last_seen", now))), 3)
            data.setdefault("id", raw_id.decode())
            workers.append(data)
        return workers
