"""Deleting a tenant erases what the host keeps for it, and nothing of any other tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lily_host.builtins.tenant_erasure import host_key_patterns
from lily_host.plugin_api.erasure import glob_escape
from lily_host.plugin_api.key_registry import track_keys_now
from lily_host.plugin_api.key_slots import tenant_key
from lily_host.testing import TEST_ADMIN_TOKEN, Harness, HarnessFactory

ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


@pytest.fixture
async def lily(lily_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with lily_harness() as harness:
        for tenant_id in ("acme", "acme-2"):  # one id a prefix of the other: a careless pattern takes both
            await harness.create_tenant(tenant_id)
        yield harness


def host_keys(tenant_id: str) -> list[str]:
    """One key per pattern (made by the key builders of the modules that own them), '*' filled in."""
    return [pattern.replace("*", "x1") for pattern in host_key_patterns(tenant_id)]


async def seed(lily: Harness, tenant_id: str) -> list[str]:
    keys = host_keys(tenant_id)
    for key in keys:
        # as the writers do: recorded in the tenant's key registry, then written
        await track_keys_now(lily.host.redis, tenant_id, key)
        await lily.host.redis.set(key, "v")
    await lily.host.redis.hset(tenant_key(tenant_id, "sms", "suppressed"), "+15557654321", '{"reason": "stop"}')
    return keys


async def existing(lily: Harness, keys: list[str]) -> list[str]:
    return [key for key in keys if await lily.host.redis.exists(key)]


async def test_deleting_a_tenant_erases_its_data_and_keeps_its_stop_list(lily: Harness) -> None:
    acme, other = await seed(lily, "acme"), await seed(lily, "acme-2")

    response = await lily.client.delete("/api/tenants/acme", headers=ADMIN)
    assert response.status_code == 204
    assert await lily.host.tenants.get("acme") is None
    assert await lily.run_due() >= 1

    assert await existing(lily, acme) == []
    assert await existing(lily, other) == other
    # STOP opt-outs outlive the tenant: they must go on being honoured if it comes back
    assert await lily.host.redis.hget(tenant_key("acme", "sms", "suppressed"), "+15557654321") is not None


async def test_the_erasure_is_scheduled_with_the_deletion_and_carries_plain_settings(lily: Harness) -> None:
    stats_before = await lily.host.queue.stats()
    assert await lily.host.delete_tenant("acme") is True
    [task] = await lily.host.queue.list_tasks("due")
    assert task.type == "lily.erase_tenant" and task.tenant == "acme"
    assert task.payload["tenant"] == "acme" and isinstance(task.payload["plugins"], dict)
    assert (await lily.host.queue.stats()).due == stats_before.due + 1
    assert await lily.host.delete_tenant("acme") is False  # gone: nothing more scheduled
    assert (await lily.host.queue.stats()).due == stats_before.due + 1


async def test_a_tenant_created_again_before_the_erasure_keeps_its_data(lily: Harness) -> None:
    keys = await seed(lily, "acme")
    assert await lily.host.delete_tenant("acme")
    await lily.create_tenant("acme")
    await lily.run_due()
    assert await existing(lily, keys) == keys


def test_tenant_ids_are_matched_literally() -> None:
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


async def test_short_links_of_the_tenants_quotes_and_reviews_are_erased(lily: Harness) -> None:
    from lily_host.builtins.review_requests import link_key
    from lily_host.records.job_store import JobStore
    from lily_host.records.quote_store import quote_key, token_key

    redis = lily.host.redis
    for tenant_id in ("acme", "acme-2"):
        await track_keys_now(redis, tenant_id, quote_key(tenant_id, "Q1"), JobStore.key(tenant_id, "J1"))
        await redis.hset(quote_key(tenant_id, "Q1"), mapping={"token": f"tok-{tenant_id}-quote"})
        await redis.set(token_key(f"tok-{tenant_id}-quote"), f"{tenant_id} Q1")
        await redis.hset(JobStore.key(tenant_id, "J1"), mapping={"review_token": f"tok-{tenant_id}-review"})
        await redis.set(link_key(f"tok-{tenant_id}-review"), f"{tenant_id} J1")

    assert await lily.host.delete_tenant("acme")
    await lily.run_due()

    assert not await redis.exists(token_key("tok-acme-quote"), link_key("tok-acme-review"))
    assert await redis.exists(token_key("tok-acme-2-quote"), link_key("tok-acme-2-review")) == 2
