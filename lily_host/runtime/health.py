"""Health: every configured plugin's checks run concurrently, each under a timeout."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lily_host.plugin_api.contract import HealthCheck, HealthResult, HealthState
from lily_host.runtime.registry import PluginState

if TYPE_CHECKING:
    from lily_host.runtime.host import Host

#: States that make the whole service unhealthy (HTTP 503).
FAILING = {HealthState.FAILED}


async def _run_check(host: Host, check: HealthCheck, budget: float) -> HealthResult:
    try:
        return await asyncio.wait_for(check.func(host), timeout=min(budget, check.timeout))
    except TimeoutError:
        return HealthResult(HealthState.FAILED, f"timed out after {min(budget, check.timeout):.1f} s")
    except Exception as error:
        return HealthResult(HealthState.FAILED, f"{type(error).__name__}: {error}")


async def collect_health(host: Host) -> dict[str, Any]:
    """``{"status": ok|degraded|failed, "plugins": {name: {state, checks...}}}``."""
    timeout = host.settings.health_timeout
    plugins: dict[str, dict[str, Any]] = {}
    pending: list[tuple[str, HealthCheck]] = []
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
                "state": HealthState.OK.value,
                "message": "development credentials: outbound calls go to the local outbox",
                "checks": {},
            }
        else:
            plugins[name] = {"state": HealthState.OK.value, "message": "", "checks": {}}
            pending.extend((owner, check) for owner, check in host.registry.health_checks if owner == name)

    results = await asyncio.gather(*(_run_check(host, check, timeout) for _, check in pending))
    for (owner, check), result in zip(pending, results, strict=True):
        entry = plugins[owner]
        entry["checks"][check.name] = {
            "state": result.state.value,
            "message": result.message,
            "details": dict(result.details),
        }
        entry["state"] = _worst(HealthState(entry["state"]), result.state).value
        if result.message and result.state != HealthState.OK:
            entry["message"] = result.message

    states = [HealthState(entry["state"]) for entry in plugins.values()]
    if any(state in FAILING for state in states):
        overall = "failed"
    elif any(state != HealthState.OK for state in states):
        overall = "degraded"
    else:
        overall = "ok"
    return {"status": overall, "plugins": plugins}


_ORDER = [
    HealthState.OK,
    HealthState.NOT_CONFIGURED,
    HealthState.DEGRADED,
    HealthState.AUTH_FAILED,
    HealthState.FAILED,
]


def _worst(a: HealthState, b: HealthState) -> HealthState:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b
