"""The example plugin: one signed webhook that emits an event, one task, one health check.

Copy this folder, rename ``example``/``EXAMPLE_`` to your provider, and keep the tests green.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lily_host import (
    BadSignature,
    HealthCheck,
    HealthResult,
    HealthState,
    InvalidPayload,
    TaskContext,
    TaskHandler,
    Tenant,
    TenantDirectory,
    WebhookContext,
    WebhookEndpoint,
    WebhookRequest,
    hookimpl,
)

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2


class ExampleSettings(BaseSettings):
    """EXAMPLE_WEBHOOK_SECRET is required: without it the plugin is not_configured (routes answer 503)."""

    model_config = SettingsConfigDict(env_prefix="EXAMPLE_")
    webhook_secret: str
    lily_dev_env: ClassVar[dict[str, str]] = {"EXAMPLE_WEBHOOK_SECRET": "dev-example-secret"}


class ExampleTenantSettings(BaseModel):
    """Which provider accounts belong to a tenant (indexed, so webhooks resolve the tenant)."""

    account_ids: list[str] = Field(default_factory=list, json_schema_extra={"lily_index": "example_account"})


class ExampleWebhook(WebhookEndpoint):
    path = "/webhooks/example"

    def parse(self, request: WebhookRequest) -> Any:
        payload = request.json()
        if not isinstance(payload, dict) or not {"id", "account", "customer_phone"} <= payload.keys():
            raise InvalidPayload("expected an object with id, account and customer_phone")
        return payload

    async def resolve_tenant(self, request: WebhookRequest, payload: Any, tenants: TenantDirectory) -> Tenant | None:
        return await tenants.resolve("example_account", str(payload["account"]))

    def verify(self, request: WebhookRequest, payload: Any, tenant: Tenant | None) -> None:
        given = request.headers.get("X-Example-Signature")
        if not given:
            raise BadSignature("X-Example-Signature is missing", missing=True)
        expected = hmac.new(request.settings.webhook_secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given, expected):
            raise BadSignature("X-Example-Signature does not match the body")

    def delivery_id(self, request: WebhookRequest, payload: Any) -> str | None:
        return str(payload["id"])

    async def handle(self, request: WebhookRequest, payload: Any, ctx: WebhookContext) -> Any:
        ctx.schedule("example.remember", {"customer_phone": payload["customer_phone"]})
        return None


async def remember(ctx: TaskContext, payload: dict[str, Any]) -> None:
    # Idempotent: a set, so running the task twice changes nothing.
    await ctx.host.redis.sadd(f"example:{ctx.tenant_id}:customers", payload["customer_phone"])


async def health(host: Any) -> HealthResult:
    return HealthResult(HealthState.OK, "nothing to check for the example")


@hookimpl
def register_settings(register: Callable[[type[BaseSettings]], None]) -> None:
    register(ExampleSettings)


@hookimpl
def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
    register(ExampleTenantSettings)


@hookimpl
def register_webhooks(register: Callable[[WebhookEndpoint], None]) -> None:
    register(ExampleWebhook())


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler("example.remember", remember))


@hookimpl
def register_health_checks(register: Callable[[HealthCheck], None]) -> None:
    register(HealthCheck("example", health))
