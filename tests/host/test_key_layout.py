"""Keys of the previous layout are not silently lost: Lily refuses to start on them, naming
`lily migrate-keys`, which renames them (idempotently, TTLs kept). And a tenant's deletion, recorded
in the tenant's slot before it is handed to the queue's, is completed after a crash in between."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from lily_host.dev.embedded_cluster import RedisClusterGroup
from lily_host.dev.embedded_redis import RedisServer
from lily_host.plugin_api.errors import ConfigurationError
from lily_host.plugin_api.key_registry import track_keys_now
from lily_host.plugin_api.key_slots import tenant_key
from lily_host.plugin_api.tenant import Tenant
from lily_host.runtime.key_layout import LAYOUT_KEY, new_name
from lily_host.sms.outbound import message_key
from lily_host.testing import HARNESS_ENV, Harness, HarnessFactory, flush, on_cluster, redis_env

OLD_TENANT = Tenant(id="acme", name="Acme", created_at=1.0, updated_at=1.0)


def test_old_names_map_to_the_tenants_tag() -> None:
    plugins, tenants = {"chatwoot", "gcal"}, {"acme"}
    assert new_name("lily:tenant:acme") == "lily:{t:acme}:tenant"
    assert new_name("lily:tenant_keys:acme") == "lily:{t:acme}:tenant_keys"
    assert new_name("lily:sms:message:acme:m1") == "lily:{t:acme}:sms:message:m1"
    assert new_name("lily:sms:messages:acme") == "lily:{t:acme}:sms:messages"
    assert new_name("lily:conv:{acme}:meta:c1") == "lily:{t:acme}:conv:meta:c1"
    assert new_name("lily:s3:{acme}:quote:q1:photos") == "lily:{t:acme}:s3:quote:q1:photos"
    assert new_name("lily:gcal:shared:acme") == "lily:{t:acme}:gcal:shared"
    assert new_name("lily:integrations") == "lily:{integrations}:names"
    assert new_name("lily:integrations:twilio:b:7") == "lily:{integrations}:twilio:b:7"
    # A plugin's namespace: only for a plugin and a tenant that exist.
    assert new_name("lily:chatwoot:acme:replied:1", plugins=plugins, tenants=tenants) == (
        "lily:{t:acme}:chatwoot:replied:1"
    )
    assert new_name("lily:gcal:link:abc", plugins=plugins, tenants=tenants) is None
    # Cross-tenant keys and keys of the current layout keep their names.
    for key in ("lily:tenants", "lily:index:phone", "lily:apikey:ab12", "lily:{t:acme}:tenant", "lily:{q:default}:due"):
        assert new_name(key, plugins=plugins, tenants=tenants) is None


@pytest.fixture
def old_redis(redis_server: RedisServer | RedisClusterGroup) -> Iterator[dict[str, str]]:
    """An empty test Redis, and the variables that point the CLI at it."""
    flush(redis_server)
    yield {**HARNESS_ENV, **redis_env(redis_server), "LILY_PLUGINS": ""}
    flush(redis_server)


def client_of(env: dict[str, str]) -> Any:
    return RedisCluster.from_url(env["REDIS_URL"]) if on_cluster() else Redis.from_url(env["REDIS_URL"])


async def write_old_layout(env: dict[str, str]) -> None:
    client = client_of(env)
    try:
        await client.set("lily:tenant:acme", OLD_TENANT.model_dump_json())
        await client.sadd("lily:tenants", "acme")
        await client.hset("lily:sms:message:acme:m1", mapping={"id": "m1", "tenant": "acme", "status": "sent"})
        await client.expire("lily:sms:message:acme:m1", 3600)
        await client.zadd("lily:sms:messages:acme", {"m1": 1.0})
        await client.hset("lily:conv:{acme}:meta:c1", "unread", "1")
    finally:
        await client.aclose()


def run(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from lily_host.cli.main import main

    return CliRunner().invoke(main, list(args))


def test_lily_refuses_old_keys_until_migrate_keys_renames_them(
    old_redis: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(write_old_layout(old_redis))

    refused = run(old_redis, monkeypatch, "tenants", "list")
    assert refused.exit_code != 0
    assert refused.output.strip().count("\n") == 0 and "lily migrate-keys" in refused.output
    assert "lily:" in refused.output and "Traceback" not in refused.output

    migrated = run(old_redis, monkeypatch, "migrate-keys")
    assert migrated.exit_code == 0, migrated.output
    assert "4 keys renamed" in migrated.output
    again = run(old_redis, monkeypatch, "migrate-keys")
    assert again.exit_code == 0 and "0 keys renamed" in again.output

    listed = run(old_redis, monkeypatch, "tenants", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [tenant["id"] for tenant in json.loads(listed.output)] == ["acme"]
    asyncio.run(check_migrated(old_redis))


async def check_migrated(env: dict[str, str]) -> None:
    client = client_of(env)
    try:
        assert await client.exists("lily:tenant:acme", "lily:sms:message:acme:m1", "lily:conv:{acme}:meta:c1") == 0
        message = tenant_key("acme", "sms", "message", "m1")
        assert (await client.hgetall(message))[b"status"] == b"sent"
        assert 0 < await client.ttl(message) <= 3600  # the TTL travels with the key
        assert await client.zscore(tenant_key("acme", "sms", "messages"), "m1") == 1.0
        assert await client.hget(tenant_key("acme", "conv", "meta", "c1"), "unread") == b"1"
        assert await client.get(LAYOUT_KEY) == b"2"
    finally:
        await client.aclose()


async def test_a_fresh_redis_is_marked_current_and_not_walked_again(old_redis: dict[str, str]) -> None:
    from lily_host.runtime.key_layout import require_current_layout

    client = client_of(old_redis)
    try:
        await require_current_layout(client)
        assert await client.get(LAYOUT_KEY) == b"2"
        # Marked: a key of the old layout written by a stray old process is not looked for again.
        await client.set("lily:tenant:zeta", OLD_TENANT.model_copy(update={"id": "zeta"}).model_dump_json())
        await require_current_layout(client)
        await client.delete(LAYOUT_KEY)
        with pytest.raises(ConfigurationError, match="lily migrate-keys"):
            await require_current_layout(client)
    finally:
        await client.aclose()


# --- deletion: recorded in the tenant's slot, then handed to the queue's ---------------------------


@pytest.fixture
async def lily(lily_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with lily_harness() as harness:
        await harness.create_tenant("acme", contact_phone="+15550001111")
        await harness.create_tenant("other")
        yield harness


async def test_a_deletion_cut_short_before_its_handoff_is_completed_by_the_next_worker(lily: Harness) -> None:
    host = lily.host
    await host.tenants.claim_index("phone", "+15550002222", "acme")
    _key_id, secret = await host.tenants.mint_key("acme")
    message = message_key("acme", "m1")
    await track_keys_now(host.redis, "acme", message)  # as the message writer records it
    await host.redis.hset(message, "id", "m1")

    async def crash(tenant: Tenant) -> None:
        raise RuntimeError("the process died here")

    with pytest.raises(RuntimeError):
        await host.tenants.delete("acme", handoff=crash)
    # Gone for everyone at once, though nothing is scheduled yet.
    assert await host.tenants.get("acme") is None
    assert [tenant.id for tenant in await host.tenants.all()] == ["other"]
    assert await host.tenants.resolve("phone", "+15550002222") is None
    assert await host.tenants.authenticate(secret) is None
    assert await host.queue.list_tasks("due") == []

    assert await host.finish_tenant_deletions() == ["acme"]
    [task] = await host.queue.list_tasks("due")
    assert task.type == "lily.erase_tenant" and task.payload["tenant"] == "acme"
    assert await host.finish_tenant_deletions() == []  # done: nothing handed over twice
    assert await host.redis.sismember("lily:tenants", "acme") == 0
    assert await host.redis.hget("lily:index:phone", "+15550002222") is None
    assert await host.redis.hget("lily:index:phone", "+15550001111") is None
    assert await lily.run_due() >= 1
    assert await host.redis.exists(message) == 0
    # The lookup values are free for another tenant.
    await host.tenants.claim_index("phone", "+15550002222", "other")


async def test_handing_the_same_deletion_over_twice_schedules_its_erasure_once(lily: Harness) -> None:
    tenant = await lily.host.tenants.require("acme")
    await lily.host._schedule_purge(tenant)
    await lily.host._schedule_purge(tenant)
    assert len(await lily.host.queue.list_tasks("due")) == 1
