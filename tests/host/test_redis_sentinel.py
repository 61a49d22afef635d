"""Sentinel: Lily follows a failover by itself, and with LILY_REDIS_MIN_REPLICAS=1 nothing it
acknowledged is lost with the primary. Real processes: a primary, a replica, three sentinels."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions
import sample_echo_plugin

from lily_host.config.host_settings import HostSettings
from lily_host.config.redis_connection import redis_target
from lily_host.dev.embedded_sentinel import SentinelGroup
from lily_host.plugin_api.errors import ConfigurationError
from lily_host.testing import Harness, HarnessFactory, hmac_sha256_hex

SECRET = "echo-secret"
PHONE = "+15550001111"


def signed(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": delivery, "to": PHONE, "text": delivery}).encode()
    return body, {"Content-Type": "application/json", "X-Echo-Signature": hmac_sha256_hex(SECRET, body)}


async def deliver(lily: Harness, delivery: str) -> Any:
    body, headers = signed(delivery)
    return await lily.client.post("/webhooks/echo/json", data=body, headers=headers)


async def run_due_through_outages(lily: Harness) -> None:
    """The worker's side during the failover: claims and acks may fail while there is no primary."""
    try:
        await lily.run_due()
    except (redis.exceptions.RedisError, OSError):
        await asyncio.sleep(0.05)


async def test_acknowledged_webhooks_survive_the_loss_of_the_primary(
    lily_harness: HarnessFactory, tmp_path: Path
) -> None:
    group = await asyncio.to_thread(lambda: SentinelGroup(tmp_path / "sentinel").start())
    try:
        env = {
            "ECHO_SECRET": SECRET,
            "REDIS_URL": "",
            "REDIS_SENTINELS": group.sentinel_addresses,
            "REDIS_SENTINEL_SERVICE": group.service,
            "LILY_REDIS_MIN_REPLICAS": "1",
            "LILY_REDIS_REPLICA_TIMEOUT": "0.5",
        }
        async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env=env) as lily:
            await lily.create_tenant("acme", plugins={"echo": {"numbers": [PHONE]}})
            # The tenant itself is written without WAIT: make sure the replica has it too.
            assert await lily.host.redis.execute_command("WAIT", 1, 5000) == 1
            acknowledged: list[str] = []
            refused: list[tuple[str, int, str | None]] = []
            sequence = iter(range(10_000))

            async def stream(count: int) -> None:
                """Deliver ``count`` webhooks, five at a time, running due tasks in between."""
                for _ in range(0, count, 5):
                    ids = [f"d{next(sequence)}" for _ in range(5)]
                    responses = await asyncio.gather(*(deliver(lily, delivery) for delivery in ids))
                    for delivery, response in zip(ids, responses, strict=True):
                        if response.status_code == 200:
                            acknowledged.append(delivery)
                        else:
                            refused.append((delivery, response.status_code, response.headers.get("Retry-After")))
                    await run_due_through_outages(lily)

            await stream(30)
            assert len(acknowledged) == 30
            old = group.kill_primary()
            failover = asyncio.create_task(asyncio.to_thread(group.wait_for_failover, old))
            while not failover.done():
                await stream(5)
            await failover
            await asyncio.to_thread(group.restart_as_replica, old)
            before = len(acknowledged)
            deadline = asyncio.get_running_loop().time() + 20
            while len(acknowledged) < before + 30:  # the new primary takes webhooks without a restart
                assert asyncio.get_running_loop().time() < deadline, "no webhook accepted after the failover"
                await stream(5)

            for _ in range(10):  # tasks claimed on the old primary come back when their lease expires
                await lily.advance(60)
            seen = {item.decode().split(":", 1)[1] for item in await lily.host.redis.lrange("echo:seen", 0, -1)}
            stats = await lily.host.queue.stats()
    finally:
        await asyncio.to_thread(group.stop)
    assert refused, "the kill happened between deliveries, so the next ones must have been refused"
    assert all(status in (500, 503) for _, status, _ in refused)
    assert not set(acknowledged) - seen, "an acknowledged webhook's task was lost in the failover"
    assert (stats.due, stats.in_flight, stats.dead) == (0, 0, 0)


async def test_without_the_replicas_a_webhook_is_refused_with_retry_after(lily_harness: HarnessFactory) -> None:
    # The suite's Redis has no replica: WAIT can never be satisfied, so nothing is acknowledged.
    env = {"ECHO_SECRET": SECRET, "LILY_REDIS_MIN_REPLICAS": "1", "LILY_REDIS_REPLICA_TIMEOUT": "0.05"}
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env=env) as lily:
        await lily.create_tenant("acme", plugins={"echo": {"numbers": [PHONE]}})
        response = await deliver(lily, "d1")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert (await response.get_json())["error"] == "unavailable"


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> HostSettings:
    for name in ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_SERVICE", "REDIS_PASSWORD", "REDIS_CLUSTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return HostSettings()


def test_sentinels_and_service_name_the_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_with(
        monkeypatch, REDIS_SENTINELS="10.0.0.1:26379, 10.0.0.2, [::1]:26380", REDIS_SENTINEL_SERVICE="lily"
    )
    target = redis_target(settings)
    assert target is not None
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert target.service == "lily"


def test_the_sentinel_url_form(monkeypatch: pytest.MonkeyPatch) -> None:
    target = redis_target(settings_with(monkeypatch, REDIS_URL="redis+sentinel://:pw@h1:26379,h2:26380/lily/2"))
    assert target is not None
    assert (target.sentinels, target.service, target.db, target.password) == (
        (("h1", 26379), ("h2", 26380)),
        "lily",
        2,
        "pw",
    )
    assert "pw" not in target.describe()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_SENTINELS": "h1:26379"}, "REDIS_SENTINEL_SERVICE is not"),
        (
            {"REDIS_SENTINELS": "h1:port", "REDIS_SENTINEL_SERVICE": "lily"},
            "REDIS_SENTINELS='h1:port' is not host:port; write it like 10.0.0.5:26379",
        ),
        (
            {"REDIS_SENTINELS": "h1:26379", "REDIS_SENTINEL_SERVICE": "lily", "REDIS_URL": "redis://h:6379/0"},
            "REDIS_URL='redis://h:6379/0' and REDIS_SENTINELS are both set; unset one of them",
        ),
        ({"REDIS_URL": "redis+sentinel://h1:26379"}, "must look like redis+sentinel://"),
        ({"REDIS_SENTINEL_SERVICE": "lily"}, "REDIS_SENTINEL_SERVICE is set but REDIS_SENTINELS is not"),
        ({"REDIS_URL": "http://h1:6379"}, "REDIS_URL='http://h1:6379' is not a Redis URL"),
    ],
)
def test_bad_redis_settings_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        redis_target(settings_with(monkeypatch, **env))


def test_the_cluster_forms_name_every_seed_node(monkeypatch: pytest.MonkeyPatch) -> None:
    target = redis_target(settings_with(monkeypatch, REDIS_URL="redis+cluster://:pw@h1:7000,h2:7001"))
    assert target is not None and target.is_cluster
    assert (target.cluster_nodes, target.password) == ((("h1", 7000), ("h2", 7001)), "pw")
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    target = redis_target(settings_with(monkeypatch, REDIS_URL="redis://h3:7002/0", REDIS_CLUSTER="1"))
    assert target is not None and target.cluster_nodes == (("h3", 7002),)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_CLUSTER": "1"}, "REDIS_CLUSTER=1 needs REDIS_URL"),
        ({"REDIS_CLUSTER": "1", "REDIS_URL": "redis://h:7000/3"}, "only database 0"),
        ({"REDIS_URL": "redis+cluster://h:7000", "LILY_REDIS_MIN_REPLICAS": "1"}, "not with a Redis Cluster"),
    ],
)
def test_bad_cluster_settings_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.delenv("REDIS_CLUSTER", raising=False)
    monkeypatch.delenv("LILY_REDIS_MIN_REPLICAS", raising=False)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        redis_target(settings_with(monkeypatch, **env))


def test_the_host_runs_on_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve, worker and the CLI build their host with build_host: a cluster is accepted (every
    transaction and script of Lily names keys of one slot; noxfile.py's CLUSTER_TESTS prove it)."""
    from lily_host.config.redis_connection import is_cluster
    from lily_host.web.app import build_host

    monkeypatch.setenv("LILY_ENV", "test")
    settings = settings_with(monkeypatch, REDIS_URL="redis+cluster://127.0.0.1:7000")
    assert is_cluster(build_host(settings).redis)
