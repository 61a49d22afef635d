"""lily-gcal's hook implementations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from lily_gcal.calendar import GoogleCalendar, shared_key
from lily_gcal.cli import gcal
from lily_gcal.health import summarize, tenant_health
from lily_gcal.oauth import SHARE_TASK, blueprint
from lily_gcal.settings import GcalSettings, GcalTenantSettings
from lily_gcal.tokens import auth_failed_key
from lily_host import (
    TENANT_DELETED,
    Capability,
    EventSubscription,
    HealthCheck,
    Routes,
    TaskContext,
    TaskHandler,
    TenantHealthCheck,
    deleted_tenant,
    erase_tracked,
    hookimpl,
)

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2

if TYPE_CHECKING:
    from lily_host import LilyHost, Tenant

ERASE_TASK = "gcal.erase_tenant"

#: Per-tenant calendar probes must fit in the host's health timeout (LILY_HEALTH_TIMEOUT, 5 s by default).
PROBE_TIMEOUT = 4.0


def _tenant_keys(tenant: str) -> tuple[str, ...]:
    """What lily-gcal keeps for a tenant outside its record (the OAuth tokens are a tenant secret, gone with it)."""
    return (shared_key(tenant), auth_failed_key(tenant))


@hookimpl
def register_settings(register: Callable[[type[BaseSettings]], None]) -> None:
    register(GcalSettings)


@hookimpl
def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
    register(GcalTenantSettings)


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(blueprint, url_prefix="/auth/google"))


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None], settings: GcalSettings | None) -> None:
    async def sync_sharing(ctx: TaskContext, payload: dict[str, Any]) -> None:
        if settings is None or ctx.tenant_id is None:
            return
        tenant = ctx.tenant
        if tenant is None:
            return
        provider = GoogleCalendar(settings)
        provider.attach(ctx.host)
        await provider.sync_sharing(tenant)

    async def erase_tenant(ctx: TaskContext, payload: dict[str, Any]) -> None:
        tenant_id = await deleted_tenant(ctx, payload)
        if tenant_id is not None:
            # Fixed names: unlinked by name, no keyspace walk.
            await erase_tracked(ctx.host.redis, _tenant_keys, tenant_id)

    register(TaskHandler(SHARE_TASK, sync_sharing))
    register(TaskHandler(ERASE_TASK, erase_tenant))


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    register(EventSubscription(TENANT_DELETED, ERASE_TASK))


@hookimpl
def register_capabilities(register: Callable[[Capability], None], settings: GcalSettings) -> None:
    register(Capability("calendar", GoogleCalendar(settings)))


@hookimpl
def register_health_checks(register: Callable[[HealthCheck | TenantHealthCheck], None], settings: GcalSettings) -> None:
    provider = GoogleCalendar(settings)

    async def calendar(host: LilyHost, tenant: Tenant) -> dict[str, Any] | None:
        provider.attach(host)
        return await tenant_health(host, provider, tenant, PROBE_TIMEOUT)

    # Per tenant: the host caches each tenant's entry and spreads the probes over time.
    register(TenantHealthCheck("calendars", calendar, timeout=PROBE_TIMEOUT + 1, summarize=summarize))


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(gcal)
