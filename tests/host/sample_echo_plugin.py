"""A small but complete plugin used by the host tests: a signed JSON webhook, a form webhook,
a task, an event subscription, a health check, tenant settings with an index and a secret."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

import click
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from quart import Blueprint, g, jsonify

from lily_host import (
    BadSignature,
    EventSubscription,
    HealthCheck,
    HealthResult,
    HealthState,
    InvalidPayload,
    Routes,
    Simulation,
    TaskContext,
    TaskHandler,
    Tenant,
    TenantDirectory,
    WebhookContext,
    WebhookEndpoint,
    WebhookRequest,
    hookimpl,
    require_tenant,
)

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2


class EchoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ECHO_")
    secret: str


class EchoTenantSettings(BaseModel):
    numbers: list[str] = Field(default_factory=list, json_schema_extra={"lily_index": "phone"})
    api_token: SecretStr | None = None


def _check_signature(request: WebhookRequest, secret: str) -> None:
    given = request.headers.get("X-Echo-Signature")
    if not given:
        raise BadSignature("X-Echo-Signature header is missing", missing=True)
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given, expected):
        raise BadSignature("X-Echo-Signature does not match the body")


class EchoJsonWebhook(WebhookEndpoint):
    path = "/webhooks/echo/json"

    def parse(self, request: WebhookRequest) -> Any:
        payload = request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("to"), str):
            raise InvalidPayload("body must be an object with a 'to' number")
        return payload

    async def resolve_tenant(self, request: WebhookRequest, payload: Any, tenants: TenantDirectory) -> Tenant | None:
        return await tenants.resolve("phone", payload["to"])

    def verify(self, request: WebhookRequest, payload: Any, tenant: Tenant | None) -> None:
        _check_signature(request, request.settings.secret)

    def delivery_id(self, request: WebhookRequest, payload: Any) -> str | None:
        return str(payload["id"]) if "id" in payload else None

    async def handle(self, request: WebhookRequest, payload: Any, ctx: WebhookContext) -> Any:
        if payload.get("explode"):
            raise RuntimeError("handler bug")
        ctx.emit("echo.received", {"to": payload["to"], "text": payload.get("text", "")})
        return None


class EchoFormWebhook(EchoJsonWebhook):
    path = "/webhooks/echo/form"
    content_types = ("application/x-www-form-urlencoded",)

    def parse(self, request: WebhookRequest) -> Any:
        form = request.form()
        if "to" not in form:
            raise InvalidPayload("form field 'to' is required")
        return dict(form)


async def record(ctx: TaskContext, payload: dict[str, Any]) -> None:
    await ctx.host.redis.rpush("echo:seen", f"{ctx.tenant_id}:{payload['text']}")


async def health(host: Any) -> HealthResult:
    wanted = os.environ.get("ECHO_HEALTH", "ok")
    if wanted == "raise":
        raise ConnectionError("provider unreachable")
    return HealthResult(HealthState(wanted), f"echo says {wanted}")


routes = Blueprint("echo_api", __name__)


@routes.get("/whoami")
@require_tenant
async def whoami() -> Any:
    return jsonify({"tenant": g.tenant.id})


@hookimpl
def register_settings(register: Callable[[type[BaseSettings]], None]) -> None:
    register(EchoSettings)


@hookimpl
def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
    register(EchoTenantSettings)


@hookimpl
def register_webhooks(register: Callable[[WebhookEndpoint], None]) -> None:
    register(EchoJsonWebhook())
    register(EchoFormWebhook())


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler("echo.record", record))


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    register(EventSubscription("echo.received", "echo.record"))


@hookimpl
def register_health_checks(register: Callable[[HealthCheck], None]) -> None:
    register(HealthCheck("echo_api", health, timeout=1.0))


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(routes, url_prefix="/plugins/echo"))


def _simulated_hello(host: Any, tenant: Tenant) -> tuple[str, dict[str, str], bytes]:
    number = tenant.plugins.get("echo", {}).get("numbers", ["+15550000000"])[0]
    body = f'{{"id": "sim-1", "to": "{number}", "text": "simulated"}}'.encode()
    secret = host.plugin_settings("echo").secret
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return "/webhooks/echo/json", {"Content-Type": "application/json", "X-Echo-Signature": signature}, body


@hookimpl
def register_simulations(register: Callable[[Simulation], None]) -> None:
    register(Simulation("echo-hello", "an echo webhook saying hello", _simulated_hello))


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command("echo-ping", help="Say pong (an example plugin command).")
    def echo_ping() -> None:
        click.echo("pong")


@hookimpl
async def startup(host: Any) -> None:
    await host.redis.set("echo:lifecycle", "started")


@hookimpl
async def shutdown(host: Any) -> None:
    await host.redis.set("echo:lifecycle", "stopped")
