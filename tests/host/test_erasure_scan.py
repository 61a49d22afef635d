"""erase_keys: one walk of the keyspace, filtered against the exact patterns of each key builder;
erase_tracked: the tenant's key registry instead, on one Redis and on a cluster."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from lily_host.builtins.booking_messages import calendar_lock_key
from lily_host.builtins.review_requests import JobStore
from lily_host.builtins.tenant_erasure import host_key_patterns
from lily_host.dev.embedded_redis import RedisServer
from lily_host.plugin_api.erasure import _literal, erase_keys, erase_tracked, glob_escape, glob_regex
from lily_host.plugin_api.key_registry import COMPLETE, open_registry, registry_key, track_keys
from lily_host.plugin_api.key_slots import tenant_key
from lily_host.records.booking_store import BookingStore
from lily_host.testing import flush, on_cluster


def test_a_glob_becomes_a_whole_key_expression() -> None:
    assert glob_regex("lily:job:acme:*").fullmatch(b"lily:job:acme:j1")
    assert not glob_regex("lily:job:acme:*").fullmatch(b"lily:job:acme-2:j1")
    assert not glob_regex("lily:job:acme:*").fullmatch(b"x:lily:job:acme:j1")
    assert glob_regex("a?c[xy]").fullmatch(b"abcy") and not glob_regex("a?c[xy]").fullmatch(b"abcz")
    assert glob_regex(glob_escape("we*ird?") + ":*").fullmatch(b"we*ird?:1")
    assert not glob_regex(glob_escape("we*ird?") + ":*").fullmatch(b"weXXird!:1")


def test_a_pattern_without_wildcards_names_one_key() -> None:
    assert _literal("lily:sms:messages:acme") == "lily:sms:messages:acme"
    assert _literal(glob_escape("we*ird?") + ":log") == "we*ird?:log"
    assert _literal("lily:job:acme:*") is None
    assert _literal("lily:conv:{acme}:[ab]") is None


async def test_only_the_tenants_own_keys_go_and_the_stop_list_stays(redis_server: RedisServer) -> None:
    # With LILY_TEST_REDIS=cluster (a nox -s tests group): the keys spread over three primaries,
    # and the walk must visit every one of them.
    flush(redis_server)
    client: Any = RedisCluster.from_url(redis_server.url) if on_cluster() else aioredis.Redis.from_url(redis_server.url)
    mine = [JobStore.key("acme", "j1"), BookingStore.key("acme", "b1"), "lily:{t:acme}:sms:messages"]
    mine.append("lily:{t:acme}:bookings:calendar_lock")
    others = [
        JobStore.key("acme-2", "j1"),  # a tenant whose id starts with ours
        "lily:{t:bravo}:sms:dedupe:acme",  # ours as another tenant's dedupe key
        "lily:{t:acme}:sms:suppressed",  # the STOP list is kept on purpose
        "lily:{t:acme}:tenant",  # the record goes with the deletion, not the erasure
    ]
    for key in mine + others:
        await client.set(key, "1")
    assert await erase_keys(client, host_key_patterns, "acme") == len(mine)
    remaining = sorted([key.decode() async for key in client.scan_iter()])
    assert remaining == sorted(others)
    if on_cluster():
        nodes = {client.get_node_from_key(key).name for key in mine + others}
        assert len(nodes) > 1, "the test keys should spread over several primaries"
    await client.aclose()


async def test_erase_tracked_reads_the_registry_on_one_redis_and_on_a_cluster(redis_server: RedisServer) -> None:
    # The registry's entries name keys on every primary; the unlinks are split by slot.
    flush(redis_server)
    client: Any = RedisCluster.from_url(redis_server.url) if on_cluster() else aioredis.Redis.from_url(redis_server.url)
    pipe = client.pipeline(transaction=False)
    open_registry(pipe, "acme")
    await pipe.execute()
    mine = [JobStore.key("acme", f"j{i}") for i in range(20)] + [BookingStore.key("acme", "b1")]
    unrecorded = JobStore.key("acme", "written-by-nobody")
    others = [JobStore.key("acme-2", "j1"), tenant_key("acme", "sms", "suppressed")]
    pipe = client.pipeline(transaction=False)
    track_keys(pipe, "acme", *mine, ttl=600)
    track_keys(pipe, "acme-2", others[0], ttl=600)
    for key in [*mine, unrecorded, *others]:
        pipe.set(key, "1", ex=600)
    pipe.set(calendar_lock_key("acme"), "1")  # a fixed name: unlinked by name
    await pipe.execute()

    assert await erase_tracked(client, host_key_patterns, "acme") == len(mine) + 1
    remaining = sorted([key.decode() async for key in client.scan_iter(match="lily:*") if not key.endswith(b":keys")])
    assert remaining == sorted([unrecorded, *others])
    assert await client.zrange(registry_key("acme"), 0, -1) == [COMPLETE.encode()]
    await client.aclose()
