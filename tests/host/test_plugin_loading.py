"""Plugin discovery is isolated: broken plugins are reported, collisions are startup errors."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import pytest
import sample_echo_plugin

from lily_host.config.host_settings import HostSettings
from lily_host.runtime.registry import PluginRegistry, PluginState, StartupError
from lily_host.testing import HarnessFactory


@dataclass
class FakeDistribution:
    name: str
    version: str


@dataclass
class ModuleEntryPoint:
    """An entry point as importlib.metadata gives one: a name, a module to import, a distribution."""

    name: str
    module: str
    dist: FakeDistribution | None = None

    def load(self) -> Any:
        return importlib.import_module(self.module)


def registry(monkeypatch: pytest.MonkeyPatch, **env: str) -> PluginRegistry:
    monkeypatch.setenv("ECHO_SECRET", "x")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return PluginRegistry(
        HostSettings(),
        discover=False,
        extra_entry_points=[
            ModuleEntryPoint("echo", "sample_echo_plugin", FakeDistribution("lily-echo", "1.2.3")),
            ModuleEntryPoint("broken", "sample_broken_import"),
            ModuleEntryPoint("typo", "sample_misspelled_hook"),
        ],
    )


def test_a_plugin_that_raises_at_import_is_failed_and_the_rest_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = registry(monkeypatch)
    broken = loaded.records["broken"]
    assert broken.state == PluginState.FAILED
    assert "ImportError" in (broken.error or "") and "not installed" in (broken.error or "")
    assert loaded.records["echo"].state == PluginState.LOADED
    assert loaded.records["echo"].version == "1.2.3"
    assert "echo.record" in loaded.tasks


def test_a_misspelled_hook_is_reported_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    typo = registry(monkeypatch).records["typo"]
    assert typo.state == PluginState.FAILED
    assert "register_task" in (typo.error or "") and "misspelled" in (typo.error or "")


def test_strict_mode_makes_a_broken_plugin_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StartupError, match="broken"):
        registry(monkeypatch, LILY_STRICT_PLUGINS="1")


def test_two_plugins_with_the_same_task_name_is_a_startup_error_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHO_SECRET", "x")
    with pytest.raises(StartupError) as caught:
        PluginRegistry(
            HostSettings(),
            discover=False,
            extra_entry_points=[
                ModuleEntryPoint("echo", "sample_echo_plugin"),
                ModuleEntryPoint("copycat", "sample_duplicate_task"),
            ],
        )
    assert "echo.record" in str(caught.value)
    assert "'echo'" in str(caught.value) and "'copycat'" in str(caught.value)


def test_lily_plugins_loads_only_the_listed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LILY_PLUGINS", "echo")
    monkeypatch.setenv("ECHO_SECRET", "x")
    loaded = PluginRegistry(
        HostSettings(),
        discover=False,
        extra_entry_points=[],
        extra_modules=None,
    )
    assert all(record.builtin for record in loaded.records.values())
    filtered = PluginRegistry(HostSettings(), discover=True)
    for name, record in filtered.records.items():
        if not record.builtin and name != "echo":
            assert record.state == PluginState.DISABLED


def test_lily_disable_plugins_skips_one(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = registry(monkeypatch, LILY_DISABLE_PLUGINS="echo")
    assert loaded.records["echo"].state == PluginState.DISABLED
    assert "echo.record" not in loaded.tasks


def test_missing_required_settings_mean_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECHO_SECRET", raising=False)
    loaded = PluginRegistry(HostSettings(), discover=False, extra_modules={"echo": sample_echo_plugin})
    echo = loaded.records["echo"]
    assert echo.state == PluginState.NOT_CONFIGURED
    assert echo.missing_settings == ["ECHO_SECRET"]
    # routes and tasks are still known (so they can answer 503 and be listed); health checks are not run
    assert "echo.record" in loaded.tasks
    assert echo.health_checks == []


def test_development_credentials_fill_missing_settings_under_lily_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECHO_SECRET", raising=False)
    monkeypatch.setattr(sample_echo_plugin.EchoSettings, "lily_dev_env", {"ECHO_SECRET": "dev"}, raising=False)
    monkeypatch.setenv("LILY_DEV_CREDENTIALS", "1")
    loaded = PluginRegistry(HostSettings(), discover=False, extra_modules={"echo": sample_echo_plugin})
    echo = loaded.records["echo"]
    assert echo.state == PluginState.LOADED and echo.dev_credentials
    assert echo.capabilities == []


async def test_the_host_runs_with_a_broken_plugin(lily_harness: HarnessFactory) -> None:
    async with lily_harness(
        env={"ECHO_SECRET": "x"},
        discover=False,
        extra_entry_points=[ModuleEntryPoint("broken", "sample_broken_import")],
        extra_modules={"echo": sample_echo_plugin},
    ) as lily:
        assert (await lily.client.get("/healthz")).status_code == 200
        listing = await (await lily.client.get("/api/plugins", headers=lily.admin_headers)).get_json()
        states = {item["name"]: item["state"] for item in listing["plugins"]}
        assert states["broken"] == "failed" and states["echo"] == "loaded"
        health = await (await lily.client.get("/health")).get_json()
        assert health["plugins"]["broken"]["state"] == "failed"


def test_two_plugins_on_one_webhook_path_is_a_startup_error_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHO_SECRET", "x")
    with pytest.raises(StartupError) as caught:
        PluginRegistry(
            HostSettings(),
            discover=False,
            extra_entry_points=[
                ModuleEntryPoint("echo", "sample_echo_plugin"),
                ModuleEntryPoint("clash", "sample_path_clash"),
            ],
        )
    assert "/webhooks/echo/json" in str(caught.value)
    assert "'echo'" in str(caught.value) and "'clash'" in str(caught.value)


async def test_two_plugins_on_one_api_route_is_a_startup_error_naming_both(
    lily_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sample_path_clash

    monkeypatch.setattr(sample_path_clash, "register_webhooks", lambda register: None)
    with pytest.raises(StartupError) as caught:
        async with lily_harness(
            env={"ECHO_SECRET": "x"},
            discover=False,
            extra_modules={"echo": sample_echo_plugin, "clash": sample_path_clash},
        ):
            pass
    assert "GET /plugins/echo/whoami" in str(caught.value)
    assert "'echo'" in str(caught.value) and "'clash'" in str(caught.value)
