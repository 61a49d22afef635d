"""Per-tenant health: can Lily reach each connected tenant's calendar with its credentials?

One HealthResult for the plugin, with each tenant's state in ``details``:
``{"acme": {"state": "ok", "calendar_id": "primary"}, "bob": {"state": "auth_failed", "reconnect": URL}}``.
The reconnect URL needs the tenant's API key: ``/health`` is unauthenticated, so it never shows a
one-time connect link (see lily_gcal.links).
The plugin is ``auth_failed`` when every connected tenant is, ``degraded`` when some are (or a calendar
is unreachable), ``ok`` otherwise, including when no tenant has connected yet.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lily_gcal.calendar import PLUGIN, GoogleCalendar
from lily_gcal.links import reconnect_hint, reconnect_url
from lily_host import Defer, HealthResult, HealthState

if TYPE_CHECKING:
    from lily_host import LilyHost, Tenant

#: Calendars probed at once.
PROBE_CONCURRENCY = 8


async def tenant_health(
    host: LilyHost, provider: GoogleCalendar, tenant: Tenant, http_timeout: float
) -> dict[str, Any] | None:
    """The tenant's entry, or None for a tenant that never had anything to do with Google Calendar."""
    tokens = provider.tokens
    calendar_id = provider.tenant_settings(tenant).calendar_id
    failure = await tokens.auth_failure(tenant.id)
    if failure is None:
        if await tokens.load(tenant.id) is None:
            if PLUGIN not in tenant.plugins:
                return None
            return {
                "state": "not_connected",
                "message": f"run `lily gcal connect {tenant.id}` and open the link",
                "calendar_id": calendar_id,
            }
        try:
            await provider.probe(tenant, http_timeout)
        except Defer:
            # The probe found the grant revoked, and recorded why.
            failure = await tokens.auth_failure(tenant.id) or {"reason": "not connected"}
        except Exception as error:  # whatever the cause, health reports it and never raises
            return {
                "state": HealthState.DEGRADED.value,
                "message": f"calendar unreachable: {type(error).__name__}: {error}",
                "calendar_id": calendar_id,
            }
        else:
            return {"state": HealthState.OK.value, "message": "calendar reachable", "calendar_id": calendar_id}
    return {
        "state": HealthState.AUTH_FAILED.value,
        "message": f"Google refused the connection ({failure.get('reason')}); reconnect: "
        + reconnect_hint(host, tenant.id),
        "reconnect": reconnect_url(host),
        "calendar_id": calendar_id,
    }


async def check(host: LilyHost, provider: GoogleCalendar, http_timeout: float) -> HealthResult:
    tenants = await host.tenants.all()
    gate = asyncio.Semaphore(PROBE_CONCURRENCY)

    async def one(tenant: Tenant) -> tuple[str, dict[str, Any] | None]:
        async with gate:
            return tenant.id, await tenant_health(host, provider, tenant, http_timeout)

    entries = {tenant_id: entry for tenant_id, entry in await asyncio.gather(*map(one, tenants)) if entry}
    connected = {tid: e for tid, e in entries.items() if e["state"] != "not_connected"}
    failed = [tid for tid, e in connected.items() if e["state"] == HealthState.AUTH_FAILED.value]
    degraded = [tid for tid, e in connected.items() if e["state"] == HealthState.DEGRADED.value]
    if not connected:
        return HealthResult(HealthState.OK, "no tenant has connected Google Calendar yet", entries)
    if failed and len(failed) == len(connected):
        return HealthResult(
            HealthState.AUTH_FAILED, f"Google refused every tenant's connection: {', '.join(failed)}", entries
        )
    if failed or degraded:
        parts = []
        if failed:
            parts.append(f"reconnect needed: {', '.join(sorted(failed))}")
        if degraded:
            parts.append(f"calendar unreachable: {', '.join(sorted(degraded))}")
        return HealthResult(HealthState.DEGRADED, "; ".join(parts), entries)
    return HealthResult(HealthState.OK, f"{len(connected)} tenant calendar(s) reachable", entries)
