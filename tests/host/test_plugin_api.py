"""The plugin API as a product: hooks through pluggy (tracing, wrappers), versions, deprecations,
and the tenant view that carries a plugin's own settings into ``verify`` and task contexts."""

from __future__ import annotations

import hashlib
import hmac
import json
import types
import warnings
from collections.abc import Callable, Generator
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr

from lily_host import (
    BadSignature,
    TaskContext,
    TaskHandler,
    Tenant,
    TenantDirectory,
    WebhookContext,
    WebhookEndpoint,
    WebhookRequest,
    hookimpl,
)
from lily_host.config.host_settings import HostSettings
from lily_host.plugin_api.deprecation import LilyDeprecationWarning
from lily_host.runtime.registry import PluginRegistry, PluginState
from lily_host.testing import HarnessFactory


def plugin_module(name: str, **members: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in members.items():
        setattr(module, key, value)
    return module


def task_plugin(name: str, task: str, **extra: Any) -> types.ModuleType:
    async def run(ctx: TaskContext, payload: dict[str, Any]) -> None:
        return None

    @hookimpl
    def register_tasks(register: Callable[[TaskHandler], None]) -> None:
        register(TaskHandler(task, run))

    return plugin_module(name, register_tasks=register_tasks, **extra)


def load(monkeypatch: pytest.MonkeyPatch, modules: dict[str, types.ModuleType], **env: str) -> PluginRegistry:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return PluginRegistry(HostSettings(), discover=False, extra_modules=modules)


# --- hooks through pluggy ---------------------------------------------------------------------------


def test_a_hook_wrapper_of_one_plugin_wraps_every_plugins_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    wrapped: list[list[str]] = []

    @hookimpl(wrapper=True)
    def register_tasks(register: Callable[[TaskHandler], None]) -> Generator[None, Any, Any]:
        # The wrapper runs around the call pluggy makes for each implementing plugin.
        result = yield
        wrapped.append(["<called>"])
        return result

    modules = {
        "alpha": task_plugin("alpha", "alpha.task", LILY_PLUGIN_API=2),
        "beta": task_plugin("beta", "beta.task", LILY_PLUGIN_API=2),
        "watcher": plugin_module("watcher", register_tasks=register_tasks, LILY_PLUGIN_API=2),
    }
    registry = load(monkeypatch, modules)
    assert registry.records["watcher"].state == PluginState.LOADED
    assert {"alpha.task", "beta.task"} <= set(registry.tasks)
    # One wrapped call per plugin that implements the hook (built-ins included), none for the wrapper itself.
    implementers = [r for r in registry.records.values() if "register_tasks" in r.hooks and r.name != "watcher"]
    assert len(wrapped) == len(implementers)


def test_a_plugin_that_wraps_and_implements_the_same_hook_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    @hookimpl(wrapper=True, specname="register_tasks")
    def wrap_tasks(register: Callable[[TaskHandler], None]) -> Generator[None, Any, Any]:
        return (yield)

    module = task_plugin("both", "both.task", LILY_PLUGIN_API=2, wrap_tasks=wrap_tasks)
    registry = load(monkeypatch, {"both": module})
    record = registry.records["both"]
    assert record.state == PluginState.FAILED
    assert "both wraps and implements hook(s) register_tasks" in (record.error or "")
    assert "both.task" not in registry.tasks


def test_lily_trace_hooks_traces_every_hook_call_through_pluggy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load(monkeypatch, {"alpha": task_plugin("alpha", "alpha.task", LILY_PLUGIN_API=2)}, LILY_TRACE_HOOKS="1")
    traces = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lily hook trace:")]
    assert any("register_tasks" in line for line in traces)
    assert len([line for line in traces if "register_tasks" in line]) >= 2  # alpha and the built-ins


def test_without_lily_trace_hooks_nothing_is_traced(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LILY_TRACE_HOOKS", raising=False)
    load(monkeypatch, {"alpha": task_plugin("alpha", "alpha.task", LILY_PLUGIN_API=2)})
    assert "lily hook trace" not in capsys.readouterr().err


# --- versions ---------------------------------------------------------------------------------------


def test_a_plugin_needing_a_newer_api_is_incompatible_and_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load(monkeypatch, {"future": task_plugin("future", "future.task", LILY_PLUGIN_API=99)})
    record = registry.records["future"]
    assert record.state == PluginState.INCOMPATIBLE
    assert "needs plugin API 99" in (record.error or "") and "offers API 2" in (record.error or "")
    assert "future.task" not in registry.tasks
    assert record.as_dict()["api_version"] == 99


def test_a_plugin_for_a_retired_api_is_incompatible(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load(monkeypatch, {"old": task_plugin("old", "old.task", LILY_PLUGIN_API=0)})
    assert registry.records["old"].state == PluginState.INCOMPATIBLE
    assert "upgrade the plugin" in (registry.records["old"].error or "")


def test_a_plugin_declaring_nothing_is_taken_as_api_1_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load(monkeypatch, {"legacy": task_plugin("legacy", "legacy.task")})
    assert registry.records["legacy"].state == PluginState.LOADED
    assert registry.records["legacy"].api_version == 1


def test_a_non_integer_api_version_fails_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load(monkeypatch, {"odd": task_plugin("odd", "odd.task", LILY_PLUGIN_API="2")})
    assert registry.records["odd"].state == PluginState.FAILED
    assert "LILY_PLUGIN_API must be a whole number" in (registry.records["odd"].error or "")


# --- the tenant in contexts, and a deprecated behaviour ----------------------------------------------


def recording_plugin(name: str, seen: list[Any], **extra: Any) -> types.ModuleType:
    async def run(ctx: TaskContext, payload: dict[str, Any]) -> None:
        seen.append(ctx.tenant)

    @hookimpl
    def register_tasks(register: Callable[[TaskHandler], None]) -> None:
        register(TaskHandler(f"{name}.look", run))

    return plugin_module(name, register_tasks=register_tasks, **extra)


async def test_task_context_tenant_is_the_tenant_with_the_plugins_own_settings(lily_harness: HarnessFactory) -> None:
    seen: list[Any] = []

    class LookSettings(BaseModel):
        token: SecretStr | None = None

    @hookimpl
    def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
        register(LookSettings)

    module = recording_plugin("look", seen, LILY_PLUGIN_API=2, register_tenant_settings=register_tenant_settings)
    async with lily_harness(extra_modules={"look": module}, discover=False) as lily:
        await lily.create_tenant("acme")
        await lily.host.tenants.set_plugin_settings("acme", "look", {"token": "s3cret"})
        await lily.host.schedule("look.look", {}, tenant="acme")
        await lily.run_due()
    [tenant] = seen
    assert isinstance(tenant, Tenant) and tenant.id == "acme"
    assert tenant.plugin_settings.token.get_secret_value() == "s3cret"


async def test_an_api_1_plugin_still_gets_the_tenant_id_and_one_warning_naming_it(
    lily_harness: HarnessFactory,
) -> None:
    seen: list[Any] = []
    module = recording_plugin("oldie", seen)  # declares no LILY_PLUGIN_API: API 1
    async with lily_harness(extra_modules={"oldie": module}, discover=False) as lily:
        await lily.create_tenant("acme")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                await lily.host.schedule("oldie.look", {}, tenant="acme")
                await lily.run_due()
    assert seen == ["acme", "acme", "acme"]
    deprecations = [w for w in caught if issubclass(w.category, LilyDeprecationWarning)]
    assert len(deprecations) == 1
    assert "plugin 'oldie'" in str(deprecations[0].message) and "ctx.tenant_id" in str(deprecations[0].message)


# --- a per-tenant webhook secret is a one-liner in verify ---------------------------------------------


class SignedSettings(BaseModel):
    account: str | None = Field(default=None, json_schema_extra={"lily_index": "signed_account"})
    webhook_secret: SecretStr | None = None


class SignedWebhook(WebhookEndpoint):
    path = "/webhooks/signed"

    async def resolve_tenant(self, request: WebhookRequest, payload: Any, tenants: TenantDirectory) -> Tenant | None:
        return await tenants.resolve("signed_account", str(payload.get("account", "")))

    def verify(self, request: WebhookRequest, payload: Any, tenant: Tenant | None) -> None:
        secret = tenant.plugin_settings.webhook_secret if tenant and tenant.plugin_settings else None
        if secret is None:
            raise BadSignature("no webhook secret for this tenant")
        expected = hmac.new(secret.get_secret_value().encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Signature", ""), expected):
            raise BadSignature("signature does not match")

    async def handle(self, request: WebhookRequest, payload: Any, ctx: WebhookContext) -> None:
        assert ctx.tenant is not None and ctx.tenant.plugin_settings is not None
        ctx.emit("signed.received", {"account": ctx.tenant.plugin_settings.account})


def signed_plugin() -> types.ModuleType:
    @hookimpl
    def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
        register(SignedSettings)

    @hookimpl
    def register_webhooks(register: Callable[[WebhookEndpoint], None]) -> None:
        register(SignedWebhook())

    return plugin_module(
        "signed",
        LILY_PLUGIN_API=2,
        register_tenant_settings=register_tenant_settings,
        register_webhooks=register_webhooks,
    )


async def test_verify_reads_the_tenants_own_secret_from_the_tenant_view(lily_harness: HarnessFactory) -> None:
    body = json.dumps({"account": "A-1"}).encode()
    async with lily_harness(extra_modules={"signed": signed_plugin()}, discover=False) as lily:
        await lily.create_tenant("acme")
        await lily.create_tenant("bravo")
        await lily.host.tenants.set_plugin_settings("acme", "signed", {"account": "A-1", "webhook_secret": "one"})
        await lily.host.tenants.set_plugin_settings("bravo", "signed", {"account": "B-2", "webhook_secret": "two"})

        def signed(secret: str) -> dict[str, str]:
            signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            return {"Content-Type": "application/json", "X-Signature": signature}

        good = await lily.client.post("/webhooks/signed", data=body, headers=signed("one"))
        wrong_tenant = await lily.client.post("/webhooks/signed", data=body, headers=signed("two"))
    assert good.status_code == 200
    assert wrong_tenant.status_code == 403
