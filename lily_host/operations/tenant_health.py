"""Per-tenant provider checks, cached and spread over time.

Probing every tenant's calendar on every ``/health`` call grows with the tenants and soon exceeds
the health budget. Instead each :class:`~lily_host.plugin_api.contract.TenantHealthCheck` keeps, in Redis:

- ``lily:health:t:<check>:due``      ZSET tenant → when it is next checked (host clock)
- ``lily:health:t:<check>:results``  HASH tenant → its last entry (JSON, with ``checked_at``)

Each ``/health`` call (behind the admin token) checks at most ``LILY_HEALTH_TENANT_BATCH`` of the
most overdue tenants, within what is left of the health budget, and reschedules each one
``LILY_HEALTH_TENANT_INTERVAL`` seconds (± 25 %, so they stay spread) later; the report is built
from the cache. The tenant list is synchronised into the due set at most once a minute per process.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping
from typing import Any

from lily_host.plugin_api.contract import HealthResult, HealthState, TenantHealthCheck
from lily_host.plugin_api.redis_typing import awaited

#: Checks run at once.
CONCURRENCY = 16
#: Seconds between two synchronisations of the tenant list (per process).
SYNC_SECONDS = 60.0
#: Up to this many tenants, the report lists every tenant's entry; beyond, only the failing ones.
DETAIL_LIMIT = 200


def _keys(check: TenantHealthCheck) -> tuple[str, str]:
    base = f"lily:health:t:{check.name}:"
    return base + "due", base + "results"


class TenantChecks:
    """The cached per-tenant checks of one host (one instance per process)."""

    def __init__(self, host: Any) -> None:
        """``host``: the running Host (its Redis, clock, settings and tenants; the checks get it too)."""
        self.host = host
        self._synced: dict[str, float] = {}

    async def _sync(self, check: TenantHealthCheck) -> None:
        last = self._synced.get(check.name)
        if last is not None and time.monotonic() - last < SYNC_SECONDS:
            return
        redis = self.host.redis
        due_key, results_key = _keys(check)
        ids = {raw.decode() for raw in await awaited(redis.smembers("lily:tenants"))}
        known = {raw.decode() for raw in await redis.zrange(due_key, 0, -1)}
        pipe = redis.pipeline(transaction=False)
        new = sorted(ids - known)
        for start in range(0, len(new), 1000):
            pipe.zadd(due_key, dict.fromkeys(new[start : start + 1000], 0), nx=True)
        gone = sorted(known - ids)
        if gone:
            pipe.zrem(due_key, *gone)
            pipe.hdel(results_key, *gone)
        await pipe.execute()
        self._synced[check.name] = time.monotonic()

    async def refresh(self, check: TenantHealthCheck, budget: float) -> int:
        """Check the most overdue tenants within ``budget`` seconds; returns how many were checked."""
        deadline = time.monotonic() + budget
        await self._sync(check)
        host, redis = self.host, self.host.redis
        due_key, results_key = _keys(check)
        now = host.clock.now()
        batch = host.settings.health_tenant_batch
        ids = [raw.decode() for raw in await redis.zrangebyscore(due_key, "-inf", now, start=0, num=batch)]
        if not ids:
            return 0
        remaining = deadline - time.monotonic()
        timeout = max(0.05, min(check.timeout, remaining))
        # Claimed until the checks are done: another /health call meanwhile takes other tenants.
        await redis.zadd(due_key, dict.fromkeys(ids, now + timeout + 1))
        tenants = {tenant.id: tenant for tenant in await host.tenants.get_many(ids)}
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(tenant_id: str) -> tuple[str, dict[str, Any] | None]:
            tenant = tenants.get(tenant_id)
            if tenant is None:
                return tenant_id, None
            async with gate:
                left = deadline - time.monotonic()
                if left <= 0:
                    return tenant_id, {"state": "pending", "message": "not checked yet: health budget spent"}
                try:
                    entry = await asyncio.wait_for(check.func(host, tenant), timeout=min(timeout, left))
                except TimeoutError:
                    return tenant_id, {"state": HealthState.DEGRADED.value, "message": "check timed out"}
                except Exception as error:  # a check that raises reports it, never breaks /health
                    return tenant_id, {"state": HealthState.FAILED.value, "message": f"{type(error).__name__}: {error}"}
            return tenant_id, dict(entry) if entry is not None else None

        results = await asyncio.gather(*(one(tenant_id) for tenant_id in ids))
        interval = host.settings.health_tenant_interval
        pipe = redis.pipeline(transaction=False)
        checked = 0
        for tenant_id, entry in results:
            if entry is not None and entry.get("state") == "pending":
                pipe.zadd(due_key, {tenant_id: now})  # its turn comes first next time
                continue
            checked += 1
            pipe.zadd(due_key, {tenant_id: now + interval * random.uniform(0.75, 1.25)})
            if entry is None:
                pipe.hdel(results_key, tenant_id)
            else:
                pipe.hset(results_key, tenant_id, json.dumps({**entry, "checked_at": now}, default=str))
        await pipe.execute()
        return checked

    async def result(self, check: TenantHealthCheck, *, detailed: bool = True) -> HealthResult:
        """The plugin's result, from the cached entries."""
        redis = self.host.redis
        due_key, results_key = _keys(check)
        raw = await awaited(redis.hgetall(results_key))
        entries = {k.decode(): json.loads(v) for k, v in raw.items()}
        total = await redis.zcard(due_key)
        result = check.summarize(entries) if check.summarize is not None else summarize(entries)
        counts: dict[str, int] = {}
        for entry in entries.values():
            counts[str(entry.get("state"))] = counts.get(str(entry.get("state")), 0) + 1
        shown = (
            entries
            if len(entries) <= DETAIL_LIMIT
            else {k: v for k, v in entries.items() if v.get("state") not in ("ok", "not_connected")}
        )
        details: dict[str, Any] = dict(shown) if detailed else {}
        details["_summary"] = {"tenants": total, "with_entry": len(entries), "states": counts}
        return HealthResult(result.state, result.message, details)


def summarize(entries: Mapping[str, Mapping[str, Any]]) -> HealthResult:
    """Default: ok with no failing tenant; auth_failed when all of them are; degraded otherwise."""
    relevant = {tid: e for tid, e in entries.items() if e.get("state") != "not_connected"}
    bad = sorted(tid for tid, e in relevant.items() if e.get("state") not in ("ok", "development"))
    if not relevant:
        return HealthResult(HealthState.OK, "no tenant checked yet")
    if (
        bad
        and all(relevant[t].get("state") == HealthState.AUTH_FAILED.value for t in bad)
        and len(bad) == len(relevant)
    ):
        return HealthResult(HealthState.AUTH_FAILED, f"every tenant refused: {', '.join(bad[:20])}")
    if bad:
        more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
        return HealthResult(HealthState.DEGRADED, f"failing tenants: {', '.join(bad[:20])}{more}")
    return HealthResult(HealthState.OK, f"{len(relevant)} tenant(s) ok")
