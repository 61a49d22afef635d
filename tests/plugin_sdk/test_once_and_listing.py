"""host.once, one plugin from two sources, and `lily plugins` with each plugin's API version."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import lily_chatwoot.plugin
from lily_host.cli.main import main
from lily_host.config.host_settings import HostSettings
from lily_host.dev.embedded_redis import RedisServer
from lily_host.runtime.registry import PluginRegistry, PluginState, StartupError
from lily_host.testing import HarnessFactory


async def test_once_is_true_for_the_first_caller_only_until_released(lily_harness: HarnessFactory) -> None:
    async with lily_harness() as lily:
        host = lily.host
        key = host.keys("acme").tenant_key("t1", "sent", "m1")
        assert await host.once(key, 60) is True
        assert await host.once(key, 60) is False
        assert 0 < await host.redis.pttl(key) <= 60_000
        await host.release_once(key)
        assert await host.once(key, 60) is True
        assert await host.once(host.keys("acme").tenant_key("t1", "sent", "m2"), 60) is True
        with pytest.raises(ValueError, match="positive ttl"):
            await host.once(key, 0)


def test_the_same_module_from_extra_modules_and_its_entry_point_is_one_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lily-chatwoot is installed (editable) here: its entry point and extra_modules name one module."""
    monkeypatch.delenv("LILY_PLUGINS", raising=False)
    skipped = PluginRegistry(HostSettings(), only=[], extra_modules={"chatwoot": lily_chatwoot.plugin})
    record = skipped.records["chatwoot"]
    assert record.state == PluginState.LOADED
    assert (record.distribution, record.version) == ("lily-chatwoot", "0.1.0")
    listed = PluginRegistry(HostSettings(), only=["chatwoot"], extra_modules={"chatwoot": lily_chatwoot.plugin})
    assert listed.records["chatwoot"].state == PluginState.LOADED
    assert listed.task_owner["chatwoot.send_reply"] == "chatwoot"
    import sample_echo_plugin  # tests/host: a different module under the taken name is still a clash

    with pytest.raises(StartupError, match="two plugins are named 'chatwoot'"):
        PluginRegistry(HostSettings(), only=["chatwoot"], extra_modules={"chatwoot": sample_echo_plugin})


def test_lily_plugins_shows_version_api_state_and_hooks(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("LILY_ENV", "test")
    runner = CliRunner()
    text = runner.invoke(main, ["plugins"], catch_exceptions=False).output
    assert text.splitlines()[0].split() == ["name", "version", "api", "state", "why"]
    row = next(line for line in text.splitlines() if line.startswith("chatwoot "))
    assert row.split() == ["chatwoot", "0.1.0", "2", "loaded", "-"]
    assert "    hooks: register_event_subscriptions, register_health_checks, register_settings" in text
    listing = json.loads(runner.invoke(main, ["plugins", "--json"], catch_exceptions=False).output)
    chatwoot = next(item for item in listing if item["name"] == "chatwoot")
    assert (chatwoot["version"], chatwoot["api_version"], chatwoot["state"]) == ("0.1.0", 2, "loaded")
    assert "register_webhooks" in chatwoot["hooks"]
