"""erase_keys: one walk of the keyspace, filtered against the exact patterns of each key builder."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from lily_host.builtins.review_requests import JobStore
from lily_host.builtins.tenant_erasure import host_key_patterns
from lily_host.dev.embedded_redis import RedisServer
from lily_host.plugin_api.erasure import erase_keys, glob_escape, glob_regex
from lily_host.records.booking_store import BookingStore
from lily_host.testing import flush, on_cluster


def test_a_glob_becomes_a_whole_key_expression() -> None:
    assert glob_regex("lily:job:acme:*").fullmatch(b"lily:job:acme:j1")
    assert not glob_regex("lily:job:acme:*").fullmatch(b"lily:job:acme-2:j1")
    assert not glob_regex("lily:job:acme:*").fullmatch(b"x:lily:job:acme:j1")
    assert glob_regex("a?c[xy]").fullmatch(b"abcy") and not glob_regex("a?c[xy]").fullmatch(b"abcz")
    assert glob_regex(glob_escape("we*ird?") + ":*").fullmatch(b"we*ird?:1")
    assert not glob_regex(glob_escape("we*ird?") + ":*").fullmatch(b"weXXird!:1")


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
