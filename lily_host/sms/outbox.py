"""The development outbox: an ``sms`` channel that records messages instead of sending them.

Used in development and tests when no real SMS provider is configured; never in production.
``lily outbox`` and ``GET /dev/outbox`` show what would have been sent.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from lily_host.plugin_api.capabilities import OutgoingSms, SentSms
from lily_host.plugin_api.redis_typing import awaited

if TYPE_CHECKING:
    from lily_host.plugin_api.host_api import LilyHost
    from lily_host.plugin_api.tenant import Tenant

OUTBOX_KEY = "lily:outbox"
OUTBOX_LIMIT = 1000


class Outbox:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def record(self, entry: dict[str, Any]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(OUTBOX_KEY, json.dumps(entry))
        pipe.ltrim(OUTBOX_KEY, -OUTBOX_LIMIT, -1)
        await pipe.execute()

    async def messages(self, tenant: str | None = None) -> list[dict[str, Any]]:
        entries = [json.loads(raw) for raw in await awaited(self.redis.lrange(OUTBOX_KEY, 0, -1))]
        return [entry for entry in entries if tenant is None or entry.get("tenant") == tenant]

    async def clear(self) -> None:
        await awaited(self.redis.delete(OUTBOX_KEY))


class OutboxChannel:
    """An SmsChannel that writes to the outbox. ``development_only``: the host ignores it in production."""

    name = "outbox"
    development_only = True

    def __init__(self) -> None:
        self._redis: aioredis.Redis | None = None

    def attach(self, host: LilyHost) -> None:
        self._redis = host.redis

    async def send(self, tenant: Tenant, message: OutgoingSms) -> SentSms:
        if self._redis is None:
            raise RuntimeError("the outbox channel is used before the host started")
        sender = tenant.contact_phone or "outbox"
        provider_id = "OB" + secrets.token_hex(16)
        await Outbox(self._redis).record(
            {
                "tenant": tenant.id,
                "to": message.to,
                "from": sender,
                "body": message.body,
                "message_id": message.message_id,
                "provider_id": provider_id,
                "at": time.time(),
            }
        )
        return SentSms(provider_id=provider_id, status="delivered", sender=sender)
