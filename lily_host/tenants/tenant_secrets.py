"""Per-tenant secrets (OAuth tokens and the like), encrypted with the host's key.

- ``lily:{t:<id>}:tenant_secret``  hash name → encrypted secret (in the tenant's slot)
"""

from __future__ import annotations

import redis.asyncio as aioredis

from lily_host.plugin_api.key_slots import tenant_key
from lily_host.plugin_api.redis_typing import awaited
from lily_host.tenants.secret_box import SecretBox


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def secrets_key(tenant_id: str) -> str:
    return tenant_key(tenant_id, "tenant_secret")


class TenantSecrets:
    """Store, read, forget and re-encrypt a tenant's named secrets."""

    def __init__(self, redis: aioredis.Redis, secret_box: SecretBox) -> None:
        self.redis = redis
        self.secret_box = secret_box

    async def put(self, tenant_id: str, name: str, value: str) -> None:
        await awaited(self.redis.hset(secrets_key(tenant_id), name, self.secret_box.encrypt(value)))

    async def get(self, tenant_id: str, name: str) -> str | None:
        raw = await awaited(self.redis.hget(secrets_key(tenant_id), name))
        return None if raw is None else self.secret_box.decrypt(_text(raw))

    async def delete(self, tenant_id: str, name: str) -> None:
        await awaited(self.redis.hdel(secrets_key(tenant_id), name))

    async def rotate(self, tenant_id: str) -> int:
        """Re-encrypt the tenant's secrets with the newest key; how many were rewritten."""
        count = 0
        for name, value in (await awaited(self.redis.hgetall(secrets_key(tenant_id)))).items():
            await awaited(self.redis.hset(secrets_key(tenant_id), _text(name), self.secret_box.rotate(_text(value))))
            count += 1
        return count
