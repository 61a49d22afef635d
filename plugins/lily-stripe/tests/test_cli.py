"""``lily billing sync TENANT``: queue a re-fetch of the tenant's subscription from the command line."""

from __future__ import annotations

import asyncio

import click
import pytest
import redis
from click.testing import CliRunner

from lily_host.testing import TEST_SECRET_KEY, HostSettings, RedisServer, build_host
from lily_stripe import plugin


@pytest.fixture
def billing_cli(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, stripe_env: dict[str, str]) -> click.Group:
    env = {**stripe_env, "REDIS_URL": redis_server.url, "LILY_SECRET_KEY": TEST_SECRET_KEY, "LILY_ENV": "test"}
    for name, value in {**env, "LILY_PLUGINS": "stripe"}.items():
        monkeypatch.setenv(name, value)
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    group = click.Group("lily")
    plugin.register_commands(cli=group)
    return group


async def _create_tenant(billing: dict[str, str]) -> None:
    host = build_host(HostSettings())
    try:
        await host.tenants.create("acme", "Acme", billing=billing)
    finally:
        await host.redis.aclose()


async def _queued_types() -> dict[str, int]:
    host = build_host(HostSettings())
    try:
        stats = await host.queue.stats()
    finally:
        await host.redis.aclose()
    return {name: by_type.due for name, by_type in stats.by_type.items()}


def test_sync_queues_a_fetch_of_the_linked_subscription(billing_cli: click.Group) -> None:
    asyncio.run(_create_tenant({"subscription_id": "sub_1", "customer_id": "cus_1"}))

    result = CliRunner().invoke(billing_cli, ["billing", "sync", "acme"])

    assert result.exit_code == 0, result.output
    assert "scheduled stripe.sync_subscription for acme" in result.output
    assert asyncio.run(_queued_types()) == {"stripe.sync_subscription": 1}


def test_sync_explains_a_tenant_without_a_subscription(billing_cli: click.Group) -> None:
    asyncio.run(_create_tenant({}))
    result = CliRunner().invoke(billing_cli, ["billing", "sync", "acme"])
    assert result.exit_code == 1
    assert "no Stripe subscription linked" in result.output


def test_sync_of_an_unknown_tenant_is_an_error(billing_cli: click.Group) -> None:
    result = CliRunner().invoke(billing_cli, ["billing", "sync", "ghost"])
    assert result.exit_code == 1
    assert "ghost" in result.output
