"""A tenant's key registry: every per-tenant key whose name has a variable part, so erasure is
O(the tenant's keys) instead of a walk of the whole keyspace.

``lily:{t:<tenant>}:keys`` is a sorted set: member = a key name, score = when that key expires
(Unix seconds, plus :data:`PRUNE_GRACE`), ``+inf`` for a key without a TTL. Code that creates such a
key records it with :func:`track_keys`, queued on the pipeline that writes the key and ahead of the
write: a crash in between leaves an entry for a key that does not exist, which erasure skips,
never a key erasure cannot find. Every :func:`track_keys` also drops the entries of keys that have
expired, so the set holds the tenant's live keys and not its history.

The member :data:`COMPLETE` (score ``+inf``) is added when the tenant is created
(:func:`open_registry`) and says "every key of this tenant was recorded here". A tenant without it
was created before the registry existed (an upgraded deployment) or by an older process during a
rolling upgrade: its erasure falls back to one SCAN of the keyspace, so data written before the
registry is still found. Erasure leaves the registry to expire (:data:`ERASED_TTL`) instead of
deleting it, because every ``tenant.deleted`` subscriber reads it in its own task, in any order.
"""

from __future__ import annotations

import math
import time
from typing import Any

__all__ = [
    "COMPLETE",
    "ERASED_TTL",
    "PRUNE_GRACE",
    "open_registry",
    "registry_key",
    "set_tracked",
    "track_keys",
    "track_keys_now",
    "untrack_keys",
]

#: The member that marks a registry as complete (not a key name: no key starts with "~").
COMPLETE = "~complete"
#: Seconds an entry outlives its key's expiry: clocks of the app and of Redis may differ.
PRUNE_GRACE = 3600.0
#: Seconds an erased tenant's registry is kept for the ``tenant.deleted`` subscribers still to run
#: (a subscriber that runs later, from the dead letters, falls back to a SCAN: slower, as thorough).
ERASED_TTL = 7 * 86400


def registry_key(tenant_id: str) -> str:
    """The tenant's key registry (in the tenant's hash slot on a Redis Cluster)."""
    return f"lily:{{t:{tenant_id}}}:keys"


def track_keys(pipe: Any, tenant_id: str, *keys: str, ttl: float | None = None, now: float | None = None) -> None:
    """Queue on ``pipe`` (a Redis pipeline, before the commands that write ``keys``) the recording
    of ``keys`` in the tenant's registry. ``ttl``: the keys' time to live in seconds (None: they do
    not expire). A key whose TTL is extended is tracked again with the new TTL (the later expiry
    wins). ``now``: the Unix time the TTL counts from (default: this machine's clock)."""
    if not keys:
        return
    now = time.time() if now is None else now
    score = math.inf if ttl is None else now + ttl + PRUNE_GRACE
    registry = registry_key(tenant_id)
    pipe.zadd(registry, dict.fromkeys(keys, score), gt=True)
    # The set keeps only live keys: what expired since the tenant's last write goes now.
    pipe.zremrangebyscore(registry, "-inf", f"({now}")


async def track_keys_now(redis: Any, tenant_id: str, *keys: str, ttl: float | None = None) -> None:
    """:func:`track_keys` in a round trip of its own, for a key a script or a single command is
    about to write: call it before the write."""
    pipe = redis.pipeline(transaction=False)
    track_keys(pipe, tenant_id, *keys, ttl=ttl)
    await pipe.execute()


async def set_tracked(redis: Any, tenant_id: str, key: str, value: str | bytes, *, ttl: float) -> None:
    """``SET key value EX ttl``, recorded in the tenant's registry first, in one round trip."""
    pipe = redis.pipeline(transaction=False)
    track_keys(pipe, tenant_id, key, ttl=ttl)
    pipe.set(key, value, ex=int(ttl))
    await pipe.execute()


def untrack_keys(pipe: Any, tenant_id: str, *keys: str) -> None:
    """Queue on ``pipe`` the removal of deleted keys without a TTL from the tenant's registry (a key
    with a TTL leaves it by itself once expired)."""
    if keys:
        pipe.zrem(registry_key(tenant_id), *keys)


def open_registry(pipe: Any, tenant_id: str) -> None:
    """Queue the marking of a new tenant's registry as complete (and keep it: a tenant id used
    again after an erasure starts a registry of its own)."""
    registry = registry_key(tenant_id)
    pipe.zadd(registry, {COMPLETE: math.inf})
    pipe.persist(registry)
