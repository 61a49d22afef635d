"""The per-process tenant lookup cache: local writes clear it; others' writes show within its TTL."""

from __future__ import annotations

import asyncio

from lily_host.testing import HarnessFactory


async def test_local_writes_are_seen_at_once_and_remote_ones_after_the_ttl(lily_harness: HarnessFactory) -> None:
    async with lily_harness(env={"LILY_TENANT_CACHE_SECONDS": "0.2"}) as lily:
        tenants = lily.host.tenants
        await lily.create_tenant("acme")
        await lily.create_tenant("bravo")
        await tenants.claim_index("phone", "+15550001111", "acme")
        first = await tenants.resolve("phone", "+15550001111")
        assert first is not None and first.id == "acme"

        # A local write (this process) clears the cache at once.
        await tenants.release_index("phone", "+15550001111", "acme")
        await tenants.claim_index("phone", "+15550001111", "bravo")
        moved = await tenants.resolve("phone", "+15550001111")
        assert moved is not None and moved.id == "bravo"

        # Another process's write (straight to Redis here) is seen once the TTL has passed.
        await lily.host.redis.hset("lily:index:phone", "+15550001111", "acme")
        cached = await tenants.resolve("phone", "+15550001111")
        assert cached is not None and cached.id == "bravo"
        await asyncio.sleep(0.25)
        refreshed = await tenants.resolve("phone", "+15550001111")
        assert refreshed is not None and refreshed.id == "acme"


async def test_unknown_values_are_never_cached(lily_harness: HarnessFactory) -> None:
    async with lily_harness(env={"LILY_TENANT_CACHE_SECONDS": "30"}) as lily:
        assert await lily.host.tenants.resolve("phone", "+15550009999") is None
        await lily.create_tenant("acme")
        await lily.host.redis.hset("lily:index:phone", "+15550009999", "acme")
        found = await lily.host.tenants.resolve("phone", "+15550009999")
        assert found is not None and found.id == "acme"
