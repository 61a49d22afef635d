"""Per-tenant key names and the Redis Cluster's one rule: a transaction or script touches one slot.

Every key that holds one tenant's data is named ``lily:{t:<tenant>}:<family>:...``: the ``{t:<tenant>}``
hash tag puts all of a tenant's keys in one slot of a Redis Cluster, so each of the tenant's
transactions and scripts names keys of that slot only (on one Redis it changes nothing). The
cross-tenant keys (``lily:tenants``, ``lily:index:<kind>``, ``lily:apikey:<hash>``, the queue's
``lily:{q:<queue>}:*``) are written in steps of their own, never in a tenant's transaction.

redis-py's cluster client runs no MULTI/EXEC and no WATCH: :func:`slot_transaction` gives a client of
the one node that holds a key's slot, on which they work, and the client itself off a cluster.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

__all__ = [
    "TENANT_TAG_PREFIX",
    "close_node_clients",
    "is_cluster_client",
    "mget_any",
    "node_client",
    "slot_transaction",
    "tenant_key",
    "tenant_prefix",
    "tenant_tag",
]

#: What starts a tenant's hash tag: ``{t:`` + id + ``}``.
TENANT_TAG_PREFIX = "lily:{t:"

# One plain client per cluster node (host, port), per cluster client; closed with it.
_NODE_CLIENTS: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], aioredis.Redis]] = weakref.WeakKeyDictionary()


def tenant_tag(tenant_id: str) -> str:
    """``{t:<tenant>}``: the hash tag that puts all of one tenant's keys in one cluster slot."""
    return "{t:" + tenant_id + "}"


def tenant_prefix(tenant_id: str) -> str:
    """``lily:{t:<tenant>}:``: what every key of the tenant's data starts with."""
    return f"lily:{tenant_tag(tenant_id)}:"


def tenant_key(tenant_id: str, *parts: str) -> str:
    """``lily:{t:<tenant>}:<part>:<part>...``: a key of one tenant's data, in the tenant's slot."""
    return tenant_prefix(tenant_id) + ":".join(parts)


def is_cluster_client(redis: object) -> bool:
    """Whether ``redis`` is redis-py's Redis Cluster client."""
    return isinstance(redis, RedisCluster)


async def node_client(redis: Any, key: str) -> aioredis.Redis:
    """A plain client of the node that holds ``key``'s slot (the client itself off a cluster).

    For what redis-py's cluster client cannot do: MULTI/EXEC with WATCH. Every key such a client
    touches must be in ``key``'s slot (the tenant's hash tag sees to that).
    """
    if not is_cluster_client(redis):
        return redis  # type: ignore[no-any-return]
    if not redis.get_nodes():
        await redis.initialize()
    node = redis.get_node_from_key(key)
    clients = _NODE_CLIENTS.setdefault(redis, {})
    client = clients.get((node.host, node.port))
    if client is None:
        options = node.connection_kwargs
        client = clients[(node.host, node.port)] = aioredis.Redis(
            host=node.host,
            port=node.port,
            username=options.get("username"),
            password=options.get("password"),
            ssl=bool(options.get("ssl", False)),
        )
    return client


async def slot_transaction(redis: Any, key: str) -> Any:
    """A MULTI/EXEC pipeline for commands on keys of ``key``'s slot (on a cluster: on its node)."""
    client = await node_client(redis, key)
    return client.pipeline(transaction=True)


async def close_node_clients(redis: Any) -> None:
    """Close the node clients :func:`node_client` made for ``redis`` (when ``redis`` is closed)."""
    for client in _NODE_CLIENTS.pop(redis, {}).values():
        await client.aclose()


async def mget_any(redis: Any, keys: Sequence[str]) -> list[Any]:
    """MGET of keys that may be in different slots (on a cluster, one MGET per slot, in order)."""
    if not keys:
        return []
    if is_cluster_client(redis):
        return list(await redis.mget_nonatomic(list(keys)))
    return list(await redis.mget(list(keys)))
