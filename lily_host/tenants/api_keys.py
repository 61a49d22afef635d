"""Tenant API keys, stored hashed only.

- ``lily:apikey:<sha256>``     JSON {tenant, key_id, label, created} (cross-tenant: one slot per key)
- ``lily:{t:<id>}:tenant_keys``  hash key_id → sha256, to list and revoke a tenant's keys (tenant's slot)

The two are in different slots of a Redis Cluster, so each is written in a step of its own: a
mint writes the key's record first (an orphan record, were the second step lost, names a key
nobody was shown), a revoke drops the record first (the key stops working at once).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import redis.asyncio as aioredis

from lily_host.plugin_api.clock import Clock
from lily_host.plugin_api.key_slots import mget_any, tenant_key
from lily_host.plugin_api.redis_typing import awaited


def hash_api_key(secret: str) -> str:
    """The stored (and rate-limited) identity of an API key: its SHA-256, never the key itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


def api_keys_key(tenant_id: str) -> str:
    """``lily:{t:<id>}:tenant_keys``: the tenant's keys, key id → hash."""
    return tenant_key(tenant_id, "tenant_keys")


def record_key(digest: str) -> str:
    """``lily:apikey:<sha256>``: one key's record, found by the hash of the key a request shows."""
    return f"lily:apikey:{digest}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ApiKeys:
    """Mint, list, revoke and look up tenant API keys (the tenant's existence is the caller's check)."""

    def __init__(self, redis: aioredis.Redis, clock: Clock) -> None:
        self.redis = redis
        self.clock = clock

    async def mint(self, tenant_id: str, label: str = "") -> tuple[str, str]:
        """Create a key; (key_id, secret). The secret is shown only now."""
        key_id = secrets.token_hex(4)
        secret = f"lily_{tenant_id}_{key_id}_{secrets.token_urlsafe(24)}"
        digest = hash_api_key(secret)
        record = json.dumps({"tenant": tenant_id, "key_id": key_id, "label": label, "created": self.clock.now()})
        await awaited(self.redis.set(record_key(digest), record))
        await awaited(self.redis.hset(api_keys_key(tenant_id), key_id, digest))
        return key_id, secret

    async def listing(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's keys (id, label, created), oldest first; never a secret."""
        digests = await awaited(self.redis.hvals(api_keys_key(tenant_id)))
        if not digests:
            return []
        raws = await mget_any(self.redis, [record_key(_text(d)) for d in digests])
        keys = [json.loads(raw) for raw in raws if raw is not None]
        return sorted(keys, key=lambda item: float(item["created"]))

    async def revoke(self, tenant_id: str, key_id: str) -> bool:
        """Revoke one key; False if the tenant has no key of that id."""
        digest = await awaited(self.redis.hget(api_keys_key(tenant_id), key_id))
        if digest is None:
            return False
        await awaited(self.redis.delete(record_key(_text(digest))))
        await awaited(self.redis.hdel(api_keys_key(tenant_id), key_id))
        return True

    async def record(self, secret: str) -> dict[str, Any] | None:
        """The stored record (tenant, key_id, label, created) of a key, or None (unknown or revoked)."""
        raw = await awaited(self.redis.get(record_key(hash_api_key(secret))))
        return None if raw is None else dict(json.loads(raw))
