"""startup/shutdown hooks, plugin CLI commands and signed simulations."""

from __future__ import annotations

import click
import pytest
import redis
import sample_echo_plugin
from click.testing import CliRunner

from lily_host.config.host_settings import HostSettings
from lily_host.dev.embedded_redis import RedisServer
from lily_host.runtime.registry import PluginRegistry
from lily_host.testing import HarnessFactory


async def test_startup_and_shutdown_hooks_run_once_each(
    lily_harness: HarnessFactory, redis_server: RedisServer
) -> None:
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env={"ECHO_SECRET": "s"}) as lily:
        assert await lily.host.redis.get("echo:lifecycle") == b"started"
    client = redis.Redis.from_url(redis_server.url)
    assert client.get("echo:lifecycle") == b"stopped"
    client.close()


async def test_a_simulation_builds_a_request_the_pipeline_accepts(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env={"ECHO_SECRET": "s"}) as lily:
        tenant = await lily.create_tenant("demo", plugins={"echo": {"numbers": ["+15550001111"]}})
        _owner, simulation = lily.host.registry.simulations["echo-hello"]
        path, headers, body = simulation.build(lily.host, tenant)
        response = await lily.client.post(path, data=body, headers=dict(headers))
        assert response.status_code == 200
        await lily.run_due()
        assert await lily.host.redis.lrange("echo:seen", 0, -1) == [b"demo:simulated"]


def test_plugins_add_cli_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHO_SECRET", "s")
    registry = PluginRegistry(HostSettings(), discover=False, extra_modules={"echo": sample_echo_plugin})
    group = click.Group("lily")
    registry._call(registry.records["echo"], "register_commands", cli=group)
    result = CliRunner().invoke(group, ["echo-ping"])
    assert result.exit_code == 0 and result.output == "pong\n"
