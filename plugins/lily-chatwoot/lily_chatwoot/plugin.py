"""lily-chatwoot's hook implementations: what the plugin gives the host, hook by hook (docs/hooks.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from pydantic import BaseModel
from pydantic_settings import BaseSettings

from lily_host import (
    TENANT_DELETED,
    ConfigurationError,
    EventSubscription,
    HealthCheck,
    HealthResult,
    LilyHost,
    Simulation,
    TaskHandler,
    Tenant,
    WebhookEndpoint,
    hookimpl,
)
from lily_chatwoot import client, tasks
from lily_chatwoot.fake import signed_event
from lily_chatwoot.settings import PLUGIN, ChatwootSettings, ChatwootTenantSettings
from lily_chatwoot.webhooks import ChatwootWebhook

#: The plugin API this plugin was written for; the host refuses to load it if it offers another.
LILY_PLUGIN_API = 2


@hookimpl
def register_settings(register: Callable[[type[BaseSettings]], None]) -> None:
    register(ChatwootSettings)


@hookimpl
def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
    register(ChatwootTenantSettings)


@hookimpl
def register_webhooks(register: Callable[[WebhookEndpoint], None]) -> None:
    register(ChatwootWebhook())


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    for handler in tasks.HANDLERS:
        register(handler)


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    # A deleted tenant's keys go with it (every plugin that keeps tenant data does this).
    register(EventSubscription(TENANT_DELETED, tasks.ERASE_TASK))


@hookimpl
def register_health_checks(register: Callable[[HealthCheck], None], settings: ChatwootSettings) -> None:
    async def accounts(host: LilyHost) -> HealthResult:
        return await client.health(host, settings)

    register(HealthCheck("accounts", accounts, timeout=settings.request_timeout + 1))


@hookimpl
def register_simulations(register: Callable[[Simulation], None]) -> None:
    def build(host: LilyHost, tenant: Tenant) -> tuple[str, Mapping[str, str], bytes]:
        own = host.tenants.plugin_settings(tenant, PLUGIN)
        if not isinstance(own, ChatwootTenantSettings) or own.account_id is None or own.webhook_secret is None:
            raise ConfigurationError(
                f"tenant {tenant.id} needs {PLUGIN} account_id and webhook_secret: "
                f"`lily tenants set {tenant.id} {PLUGIN}.account_id=... {PLUGIN}.webhook_secret=...`"
            )
        # A fresh event id each time, so a second simulation is a new event rather than a duplicate.
        event_id = f"sim_{int(time.time() * 1000)}"
        body, headers = signed_event(own.webhook_secret.get_secret_value(), account=own.account_id, event_id=event_id)
        return ChatwootWebhook.path, headers, body

    register(Simulation(f"{PLUGIN}.event", "a signed Chatwoot event: the note task posts to the provider", build))
