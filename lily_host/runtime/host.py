"""The running host: settings, Redis, tenants, queue, events, capabilities, for one process."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel
from quart import current_app

from lily_host.config.host_settings import HostSettings
from lily_host.observability.log import get_logger
from lily_host.observability.metrics import track_api_call
from lily_host.operations.audit_log import AuditLog
from lily_host.operations.integration_health import IntegrationHealth
from lily_host.operations.webhook_log import WebhookLog
from lily_host.plugin_api.auth_throttle import FailureThrottle
from lily_host.plugin_api.clock import Clock, SystemClock
from lily_host.plugin_api.contract import TaskContext, TaskHandler, WebhookContext, delivery_guard
from lily_host.plugin_api.erasure import erase_keys, erase_tracked
from lily_host.plugin_api.errors import CapabilityUnavailable, Defer
from lily_host.plugin_api.event_names import TENANT_DELETED
from lily_host.plugin_api.host_api import KeyNamespace, KeyPatterns, LilyHost
from lily_host.plugin_api.key_registry import track_keys
from lily_host.plugin_api.tenant import Tenant
from lily_host.plugin_api.versions import PLUGIN_API_VERSION
from lily_host.queue import Task, TaskQueue, Worker
from lily_host.runtime.event_bus import EventBus
from lily_host.runtime.key_layout import require_current_layout
from lily_host.runtime.registry import PluginRegistry, PluginState
from lily_host.tenants.customer_pii import Pii
from lily_host.tenants.secret_box import SecretBox
from lily_host.tenants.store import TenantStore

if TYPE_CHECKING:
    from lily_host.sms.outbound import Messaging

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
        # One throttle for every credential door (tenant keys, the admin token, plugins' own doors).
        self.auth_throttle = FailureThrottle(redis, trusted_proxies=settings.trusted_proxies)
        self._messaging: Messaging | None = None
        self._pii: Pii | None = None
        # Operability (webhook log, audit, integration health): see docs/operations.md.
        self.webhook_log = WebhookLog(redis, settings, self.queue)
        self.audit = AuditLog(redis, days=settings.audit_days)
        self.integrations = IntegrationHealth(redis, settings, self.clock, self.events.emit)
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
            from lily_host.sms.outbound import Messaging

            self._messaging = Messaging(
                redis=self.redis,
                tenants=self.tenants,
                queue=self.queue,
                clock=self.clock,
                capability=self.capability,
                daily_cap=self.settings.sms_daily_cap,
                pii=self.pii,
                integrations=self.integrations,
                trace_days=self.settings.trace_days,
            )
        return self._messaging

    # --- the plugin API (LilyHost): docs/api.md ------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.settings.is_production

    @property
    def pii(self) -> Pii:
        """Customer PII at rest: sealing with the host's key and keyed lookup hashes (``PiiBox``)."""
        if self._pii is None:
            self._pii = Pii(self.redis, self.tenants.secret_box)
        return self._pii

    def keys(self, plugin: str) -> KeyNamespace:
        return KeyNamespace(plugin)

    async def emit(self, event: str, data: Mapping[str, Any], *, tenant: str | None) -> list[str]:
        return await self.events.emit(event, data, tenant=tenant)

    async def queue_sms(self, tenant: str | Tenant, to: str, **options: Any) -> str | None:
        return await self.messaging.queue_sms(tenant, to, **options)

    async def record_sms_status(
        self,
        tenant_id: str,
        provider_id: str,
        status: str,
        error_code: str | None = None,
        *,
        recipient_opted_out: bool = False,
        channel: str = "sms",
    ) -> bool:
        return await self.messaging.record_status(
            tenant_id, provider_id, status, error_code, recipient_opted_out=recipient_opted_out, channel=channel
        )

    def track_api_call(self, integration: str, operation: str) -> AbstractContextManager[None]:
        return track_api_call(integration, operation)

    async def erase_keys(self, patterns: KeyPatterns, tenant_id: str) -> int:
        return await erase_keys(self.redis, patterns, tenant_id)

    async def erase_tracked(self, patterns: KeyPatterns, tenant_id: str) -> int:
        return await erase_tracked(self.redis, patterns, tenant_id)

    def logger(self, name: str, **context: Any) -> structlog.stdlib.BoundLogger:
        return get_logger(name, **context)

    async def once(self, key: str, ttl: float, *, tenant: str | None = None) -> bool:
        if ttl <= 0:
            raise ValueError("once() needs a positive ttl (seconds the claim is kept)")
        pipe = self.redis.pipeline(transaction=False)
        if tenant is not None:
            track_keys(pipe, tenant, key, ttl=ttl)
        # Milliseconds, at least 1: SET's PX, so a fractional ttl is kept as asked.
        pipe.set(key, b"1", nx=True, px=max(1, int(ttl * 1000)))
        return bool((await pipe.execute())[-1])

    async def release_once(self, key: str) -> None:
        await self.redis.delete(key)

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
        """Delete a tenant and schedule ``tenant.deleted`` to every subscriber: each erases what it
        keeps for the tenant (the host its texts, jobs and bookings; lily-s3 its photos).

        The deletion is recorded in the tenant's slot (a tombstone), then handed to the queue's
        slot (the tasks, deduplicated by tenant and creation time, so a second hand-over of the
        same deletion schedules nothing), then the tombstone goes (:meth:`TenantStore.delete`); a
        process that dies in between leaves the tombstone, and :meth:`finish_tenant_deletions`
        (run by every worker as it starts) hands it over. False if there is no such tenant."""
        return await self.tenants.delete(tenant_id, handoff=self._schedule_purge)

    async def require_current_key_layout(self) -> None:
        """Refuse a Redis that still holds keys of the previous key layout (``lily migrate-keys``)."""
        await require_current_layout(self.redis, plugins=self.registry.records)

    async def finish_tenant_deletions(self) -> list[str]:
        """Hand over the deletions a process left half done; the tenant ids completed."""
        return await self.tenants.finish_deletions(self._schedule_purge)

    async def _schedule_purge(self, tenant: Tenant) -> None:
        payload = {"tenant": tenant.id, "name": tenant.name, "plugins": self.tenants.plain_settings(tenant)}
        tasks = self.events.fanout(TENANT_DELETED, payload, tenant=tenant.id)
        stamp = repr(tenant.created_at)
        await self.queue.schedule_many(
            [{**task, "dedupe_key": f"{TENANT_DELETED}:{task['type']}:{tenant.id}:{stamp}"} for task in tasks]
        )

    def make_worker(self, **options: Any) -> Worker:
        return Worker(self.queue, self.handlers, host=self, context_factory=self.task_context, **options)

    async def task_context(self, task: Task, log: structlog.stdlib.BoundLogger) -> TaskContext:
        """The context a task handler runs with: the tenant (with the task's plugin's own tenant
        settings) loaded, and scheduling injected."""
        tenant = await self.tenants.get(task.tenant) if task.tenant is not None else None
        owner = self.registry.task_owner.get(task.type)
        record = self.registry.records.get(owner) if owner is not None else None
        if tenant is not None and record is not None and record.tenant_settings_model is not None:
            tenant = self.tenants.view_for(tenant, record.name)
        return TaskContext(
            task_id=task.id,
            task_type=task.type,
            tenant_id=task.tenant,
            attempt=task.attempt,
            max_attempts=task.max_attempts,
            first_due=task.first_due,
            log=log,
            host=self,
            schedule_task=self.queue.schedule,
            tenant_record=tenant,
            plugin=owner,
            plugin_api=record.api_version if record is not None else PLUGIN_API_VERSION,
            delivery=task.delivery,
        )

    def webhook_context(
        self,
        *,
        plugin: str,
        tenant: Tenant | None,
        integration: str,
        delivery_id: str | None,
        log: structlog.stdlib.BoundLogger,
        record_id: str | None = None,
    ) -> WebhookContext:
        """The context an endpoint's ``handle`` runs with (collaborators injected); ``record_id`` is
        the delivery's id in the webhook log, which the tasks it schedules carry."""
        return WebhookContext(
            host=self,
            tenant=tenant,
            integration=integration,
            delivery_id=delivery_id,
            log=log,
            fanout=self.events.fanout,
            seen_before=self._delivery_seen,
            record_id=record_id,
        )

    async def _delivery_seen(self, integration: str, delivery_id: str) -> bool:
        key = self.queue.keys.guard_prefix + delivery_guard(integration, delivery_id)
        return bool(await self.redis.exists(key))

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
            if ctx.tenant_id is not None:
                tenant = ctx.tenant_record
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


def host_of(host: LilyHost) -> Host:
    """The concrete host behind the plugin API's ``LilyHost``, for the host's own built-ins, which
    run inside it and may use its internals (third-party plugins get only the LilyHost members)."""
    if not isinstance(host, Host):
        raise TypeError(f"expected the running Lily host, got {type(host).__name__}")
    return host
