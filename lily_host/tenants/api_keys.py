"""Tenant API keys, stored hashed only.

- ``lily:apikey:<sha256>``   JSON {tenant, key_id, label, created}
- ``lily:tenant_keys:<id>``  hash key_id → sha256, to list and revoke a tenant's keys
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import redis.asyncio as aioredis

from lily_host.plugin_api.clock import Clock
from lily_host.plugin_api.redis_typing import awaited


def hash_api_key(secret: str) -> str:
    """The stored (and rate-limited) identity of an API key: its SHA-256, never the key itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


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
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(f"lily:apikey:{digest}", record)
        pipe.hset(f"lily:tenant_keys:{tenant_id}", key_id, digest)
        await pipe.execute()
        return key_id, secret

    async def listing(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's keys (id, label, created), oldest first; never a secret."""
        digests = await awaited(self.redis.hvals(f"lily:tenant_keys:{tenant_id}"))
        if not digests:
            return []
        raws = await awaited(self.redis.mget([f"lily:apikey:{_text(d)}" for d in digests]))
        keys = [json.loads(raw) for raw in raws if raw is not None]
        return sorted(keys, key=lambda item: float(item["created"]))

    async def revoke(self, tenant_id: str, key_id: str) -> bool:
        """Revoke one key; False if the tenant has no key of that id."""
        digest = await awaited(self.redis.hget(f"lily:tenant_keys:{tenant_id}", key_id))
        if digest is None:
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(f"lily:apikey:{_text(digest)}")
        pipe.hdel(f"lily:tenant_keys:{tenant_id}", key_id)
        await pipe.execute()
        return True

    async def record(self, secret: str) -> dict[str, Any] | None:
        """The stored record (tenant, key_id, label, created) of a key, or None (unknown or revoked)."""
        raw = await awaited(self.redis.get(f"lily:apikey:{hash_api_key(secret)}"))
        return None if raw is None else dict(json.loads(raw))
