"""The running host: settings, Redis, tenants, queue, events, capabilities, for one process."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from pydantic import BaseModel
from quart import current_app

from lily_host.clock import Clock, SystemClock
from lily_host.contract import TaskContext, TaskHandler
from lily_host.crypto import SecretBox
from lily_host.errors import CapabilityUnavailable, Defer
from lily_host.events import TENANT_DELETED, EventBus
from lily_host.log import get_logger
from lily_host.plugins import PluginRegistry, PluginState
from lily_host.scheduler import TaskQueue, Worker
from lily_host.settings import HostSettings
from lily_host.shedding import ApiRateLimiter, LoadShedder
from lily_host.tenants import Tenant, TenantStore

if TYPE_CHECKING:
    from lily_host.messaging import Messaging

#: How long a task of a paused tenant waits before it looks again.
PAUSED_TENANT_RECHECK_SECONDS = 15 * 60

log = get_logger("lily.host")


class Host:
    def __init__(
        self,
        settings: HostSettings,
        registry: PluginRegistry,
        redis: aioredis.Redis,
        *,
        secret_box: SecretBox,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.redis = redis
        self.clock: Clock = clock or SystemClock()
        self.tenants = TenantStore(
            redis,
            secret_box,
            registry.tenant_models,
            clock=self.clock,
            resolve_cache_seconds=settings.tenant_cache_seconds,
        )
        self.handlers: dict[str, TaskHandler] = {
            name: self._gated(handler) if handler.tenant_gated else handler for name, handler in registry.tasks.items()
        }
        self.queue = TaskQueue(
            redis,
            name=settings.queue_name,
            clock=self.clock,
            policies={name: handler.retry for name, handler in registry.tasks.items()},
            min_replicas=settings.redis_min_replicas,
            replica_timeout=settings.redis_replica_timeout,
        )
        self.events = EventBus(registry.subscriptions, self.queue)
        self.shedding = LoadShedder(settings, self.queue)
        self.api_limiter = ApiRateLimiter(redis, per_minute=settings.api_rate_per_minute, burst=settings.api_burst)
        self._messaging: Messaging | None = None
        for providers in registry.capabilities.values():
            for _owner, capability in providers:
                # A provider that needs the running host (Redis, tenants) says so with attach().
                attach = getattr(capability.provider, "attach", None)
                if callable(attach):
                    attach(self)

    # --- services ---------------------------------------------------------------------------------

    @property
    def messaging(self) -> Messaging:
        if self._messaging is None:
            from lily_host.messaging import Messaging

            self._messaging = Messaging(self)
        return self._messaging

    def plugin_settings(self, name: str) -> Any:
        record = self.registry.records.get(name)
        return None if record is None else record.settings

    def tenant_settings(self, tenant: Tenant, plugin: str) -> BaseModel | None:
        return self.tenants.plugin_settings(tenant, plugin)

    def capability(self, name: str) -> Any:
        """The provider of capability ``name``: ``LILY_<NAME>_CHANNEL``-style override, else highest priority.

        Development-only providers (the outbox) are never used in production.
        """
        candidates = [
            (owner, capability)
            for owner, capability in self.registry.capabilities.get(name, [])
            if self.registry.records[owner].state == PluginState.LOADED
            and not (self.settings.is_production and getattr(capability.provider, "development_only", False))
        ]
        if name == "sms" and self.settings.sms_channel:
            wanted = self.settings.sms_channel
            candidates = [
                (owner, cap) for owner, cap in candidates if wanted in (owner, getattr(cap.provider, "name", None))
            ]
        if not candidates:
            raise CapabilityUnavailable(f"no installed and configured plugin provides {name!r}")
        candidates.sort(key=lambda item: item[1].priority, reverse=True)
        return candidates[0][1].provider

    def has_capability(self, name: str) -> bool:
        try:
            self.capability(name)
        except CapabilityUnavailable:
            return False
        return True

    def public_url(self, path: str) -> str:
        return self.settings.public_url + (path if path.startswith("/") else "/" + path)

    async def delete_tenant(self, tenant_id: str) -> bool:
        """Delete a tenant and, in the same Redis transaction, schedule ``tenant.deleted`` to every
        subscriber: each erases what it keeps for the tenant (the host its texts, jobs and bookings;
        lily-s3 its photos). Either both happen or neither. False if there is no such tenant."""

        def schedule_purge(transaction: Any, tenant: Tenant) -> None:
            payload = {"tenant": tenant.id, "name": tenant.name, "plugins": self.tenants.plain_settings(tenant)}
            self.queue.schedule_in(transaction, self.events.fanout(TENANT_DELETED, payload, tenant=tenant.id))

        return await self.tenants.delete(tenant_id, also=schedule_purge)

    def make_worker(self, **options: Any) -> Worker:
        return Worker(self.queue, self.handlers, host=self, **options)

    async def schedule(self, task_type: str, payload: Mapping[str, Any], **options: Any) -> str | None:
        return await self.queue.schedule(task_type, payload, **options)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def startup(self) -> None:
        await self._lifecycle("startup")

    async def shutdown(self) -> None:
        await self._lifecycle("shutdown")

    async def _lifecycle(self, hook_name: str) -> None:
        for record in self.registry.records.values():
            if record.state != PluginState.LOADED:
                continue
            try:
                result = self.registry._call(record, hook_name, host=self)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:
                log.error(f"plugin {hook_name} failed", plugin=record.name, error=f"{type(error).__name__}: {error}")
                if self.registry.strict:
                    raise
                if hook_name == "startup":
                    record.state = PluginState.FAILED
                    record.error = f"startup failed: {type(error).__name__}: {error}"

    # --- tenant gating -------------------------------------------------------------------------------

    def _gated(self, handler: TaskHandler) -> TaskHandler:
        """Hold a tenant's automation tasks while its subscription is paused; drop them after retention."""

        async def run(ctx: TaskContext, payload: dict[str, Any]) -> None:
            if ctx.tenant is not None:
                tenant = await self.tenants.get(ctx.tenant)
                if tenant is None:
                    ctx.log.warning("tenant no longer exists; task dropped")
                    return
                if not tenant.automations_active:
                    now = ctx.now()
                    paused_since = tenant.status_since or tenant.updated_at
                    if now - paused_since > tenant.retention_days * 86400:
                        ctx.log.warning(
                            "tenant paused longer than its retention period; task dropped",
                            status=tenant.subscription_status,
                        )
                        return
                    raise Defer(
                        f"tenant is {tenant.subscription_status}: automations paused",
                        until=now + PAUSED_TENANT_RECHECK_SECONDS,
                    )
            await handler.func(ctx, payload)

        return TaskHandler(name=handler.name, func=run, retry=handler.retry, tenant_gated=True)


def current_host() -> Host:
    """The Host of the app serving the current request."""
    host: Host = current_app.extensions["lily"]
    return host
