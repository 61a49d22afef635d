"""Health that tells the truth and stays cheap.

- :func:`readiness` (``/readyz``): Redis answers, ``LILY_SECRET_KEY`` decrypts the stored canary,
  no plugin failed to load. No provider is called.
- :func:`collect_health` (``/health`` with the admin token, ``lily health``): every configured
  plugin's checks, run concurrently under ``LILY_HEALTH_TIMEOUT``; per-tenant checks from their
  cache (a slice of them refreshed per call, :mod:`lily_host.operations.tenant_health`); the queue (dead letters
  of the last hour per type, the oldest overdue task), the live workers, failing integrations.
- :func:`public_health` (``/health`` without the token): only the overall status — of readiness, the
  queue and its workers, and the last detailed report — with no tenant ids, numbers or plan data,
  and no provider call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from lily_host.operations.tenant_health import TenantChecks
from lily_host.operations.worker_registry import WorkerRegistry
from lily_host.plugin_api.contract import HealthCheck, HealthResult, HealthState, TenantHealthCheck
from lily_host.runtime.registry import PluginState
from lily_host.tenants.canary import secret_key_problem

if TYPE_CHECKING:
    from lily_host.runtime.host import Host

#: States that make the whole service unhealthy (HTTP 503).
FAILING = {HealthState.FAILED}
#: The last detailed report's status, for anonymous /health (seconds it is believed).
LAST_KEY = "lily:health:last"
LAST_SECONDS = 600
#: A ready task waiting longer than this (with live workers) makes the queue degraded.
OVERDUE_SECONDS = 300.0


async def _run_check(host: Host, check: HealthCheck, budget: float) -> HealthResult:
    try:
        return await asyncio.wait_for(check.func(host), timeout=min(budget, check.timeout))
    except TimeoutError:
        return HealthResult(HealthState.FAILED, f"timed out after {min(budget, check.timeout):.1f} s")
    except Exception as error:
        return HealthResult(HealthState.FAILED, f"{type(error).__name__}: {error}")


def _tenant_checks(host: Host) -> TenantChecks:
    checks: TenantChecks | None = getattr(host, "_tenant_checks", None)
    if checks is None:
        checks = TenantChecks(host)
        host._tenant_checks = checks  # type: ignore[attr-defined]
    return checks


async def readiness(host: Host) -> dict[str, Any]:
    """``{"status": "ready"|"not_ready", "checks": {redis, secret_key, plugins}}``."""
    checks: dict[str, dict[str, str]] = {}
    try:
        await asyncio.wait_for(host.redis.ping(), timeout=min(2.0, host.settings.health_timeout))
    except Exception as error:
        checks["redis"] = {"state": "failed", "message": f"{type(error).__name__}: {error}"}
        checks["secret_key"] = {"state": "unknown", "message": "needs Redis"}
    else:
        checks["redis"] = {"state": "ok", "message": "redis reachable"}
        problem = await secret_key_problem(host.redis, host.tenants.secret_box)
        checks["secret_key"] = {"state": "failed", "message": problem} if problem else {"state": "ok", "message": ""}
    failed = sorted(name for name, record in host.registry.records.items() if record.state == PluginState.FAILED)
    checks["plugins"] = (
        {"state": "failed", "message": f"failed to load: {', '.join(failed)}"}
        if failed
        else {"state": "ok", "message": "loaded"}
    )
    ready = all(check["state"] == "ok" for check in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}


async def public_health(host: Host) -> dict[str, str]:
    """The overall status only — of readiness, the queue and its workers (Redis only), and the last
    detailed report if recent. No provider is called and nothing but the status is said."""
    ready = await readiness(host)
    if ready["status"] != "ready":
        return {"status": "failed"}
    queue = await _queue_health(host)
    if queue["state"] == HealthState.FAILED.value:
        return {"status": "failed"}
    raw = await host.redis.get(LAST_KEY)
    last = str(json.loads(raw).get("status", "ok")) if raw is not None else "ok"
    if last == "ok" and queue["state"] != HealthState.OK.value:
        last = "degraded"
    return {"status": last}


async def _queue_health(host: Host) -> dict[str, Any]:
    queue, redis = host.queue, host.redis
    now = await queue.now()
    ready = int(await redis.zcount(queue.keys.due, "-inf", now))
    oldest: dict[str, Any] | None = None
    head = await redis.zrange(queue.keys.due, 0, 0, withscores=True)
    if head and float(head[0][1]) <= now:
        task_id = head[0][0].decode()
        oldest = {"task_id": task_id, "type": task_id.rpartition(":")[0], "overdue_seconds": round(now - head[0][1], 3)}
    dead_hour: dict[str, int] = {}
    for raw in await redis.zrangebyscore(queue.keys.dead, now - 3600, "+inf", start=0, num=10000):
        task_type = raw.decode().rpartition(":")[0]
        dead_hour[task_type] = dead_hour.get(task_type, 0) + 1
    workers = await WorkerRegistry(redis, queue.name).live()
    if ready and not workers:
        state, message = HealthState.FAILED, f"{ready} task(s) due and no live worker: start `lily worker`"
    elif oldest is not None and oldest["overdue_seconds"] > OVERDUE_SECONDS:
        state, message = HealthState.DEGRADED, f"the oldest due task waits {oldest['overdue_seconds']:.0f} s"
    else:
        state, message = HealthState.OK, ""
    return {
        "state": state.value,
        "message": message,
        "ready": ready,
        "dead": int(await redis.zcard(queue.keys.dead)),
        "dead_last_hour": dict(sorted(dead_hour.items())),
        "oldest_overdue": oldest,
        "workers": {"live": len(workers), "list": workers},
    }


async def collect_health(host: Host) -> dict[str, Any]:
    """The detailed report (see the module docstring); remembers its status for anonymous /health."""
    started = time.monotonic()
    timeout = host.settings.health_timeout
    plugins: dict[str, dict[str, Any]] = {}
    pending: list[tuple[str, HealthCheck]] = []
    tenant_pending: list[tuple[str, TenantHealthCheck]] = []
    for name, record in host.registry.records.items():
        if record.state == PluginState.DISABLED:
            continue
        if record.state == PluginState.NOT_CONFIGURED:
            plugins[name] = {
                "state": HealthState.NOT_CONFIGURED.value,
                "message": f"set {', '.join(record.missing_settings)}",
                "checks": {},
            }
        elif record.state == PluginState.FAILED:
            plugins[name] = {"state": HealthState.FAILED.value, "message": record.error or "", "checks": {}}
        elif record.dev_credentials:
            plugins[name] = {
                "state": HealthState.DEVELOPMENT.value,
                "message": "development credentials: outbound calls go to the local outbox",
                "checks": {},
            }
        else:
            plugins[name] = {"state": HealthState.OK.value, "message": "", "checks": {}}
            pending.extend((owner, check) for owner, check in host.registry.health_checks if owner == name)
            tenant_pending.extend(
                (owner, check) for owner, check in host.registry.tenant_health_checks if owner == name
            )

    tenant_checks = _tenant_checks(host)
    # Per-tenant checks get most of the budget minus room to build the answer.
    tenant_budget = max(0.1, timeout * 0.8)

    async def tenant_result(check: Any) -> HealthResult:
        # On a timeout, what was checked is cached; the rest waits for the next call.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tenant_checks.refresh(check, tenant_budget), timeout=tenant_budget + 0.5)
        return await tenant_checks.result(check)

    results, tenant_results, queue = await asyncio.gather(
        asyncio.gather(*(_run_check(host, check, timeout) for _, check in pending)),
        asyncio.gather(*(tenant_result(check) for _, check in tenant_pending)),
        _queue_health(host),
    )
    named: list[tuple[str, str, HealthResult]] = [
        *((owner, check.name, result) for (owner, check), result in zip(pending, results, strict=True)),
        *((owner, check.name, result) for (owner, check), result in zip(tenant_pending, tenant_results, strict=True)),
    ]
    for owner, check_name, result in named:
        entry = plugins[owner]
        entry["checks"][check_name] = {
            "state": result.state.value,
            "message": result.message,
            "details": dict(result.details),
        }
        entry["state"] = _worst(HealthState(entry["state"]), result.state).value
        if result.message and result.state != HealthState.OK:
            entry["message"] = result.message

    integrations = await host.integrations.all()
    for name, state in integrations.items():
        if state["state"] == "failing" and name in plugins:
            entry = plugins[name]
            entry["state"] = _worst(HealthState(entry["state"]), HealthState.DEGRADED).value
            entry["message"] = (
                f"failing: {state['consecutive_failures']} call(s) in a row failed; last: {state['last_error']}"
            )
    ready = await readiness(host)

    states = [HealthState(entry["state"]) for entry in plugins.values()] + [HealthState(queue["state"])]
    if ready["status"] != "ready" or any(state in FAILING for state in states):
        overall = "failed"
    elif any(state not in (HealthState.OK, HealthState.DEVELOPMENT) for state in states) or any(
        s["state"] == "failing" for s in integrations.values()
    ):
        overall = "degraded"
    else:
        overall = "ok"
    report = {
        "status": overall,
        "ready": ready,
        "plugins": plugins,
        "queue": queue,
        "integrations": integrations,
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }
    await host.redis.set(LAST_KEY, json.dumps({"status": overall, "at": time.time()}), ex=LAST_SECONDS)
    return report


_ORDER = [
    HealthState.OK,
    HealthState.DEVELOPMENT,
    HealthState.NOT_CONFIGURED,
    HealthState.DEGRADED,
    HealthState.AUTH_FAILED,
    HealthState.FAILED,
]


def _worst(a: HealthState, b: HealthState) -> HealthState:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b
