"""The development outbox: an ``sms`` channel that records messages instead of sending them.

Used in development and tests when no real SMS provider is configured; never in production.
``lily outbox`` and ``GET /dev/outbox`` show what would have been sent, and what Lily is holding:
a text due in quiet hours or over the frequency cap waits for the morning (or the cap's end) in
development too, so a flow tried at night shows its text as held, with when it goes and why.
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
    from lily_host.sms.outbound import Messaging

OUTBOX_KEY = "lily:outbox"
OUTBOX_LIMIT = 1000
#: How many of each tenant's newest texts are looked at for held ones.
HELD_LOOKBACK = 200
HOLD_REASONS = {"quiet_hours": "quiet hours", "frequency_cap": "frequency cap"}


class Outbox:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def record(self, entry: dict[str, Any]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(OUTBOX_KEY, json.dumps(entry))
        pipe.ltrim(OUTBOX_KEY, -OUTBOX_LIMIT, -1)
        await pipe.execute()

    async def messages(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """The texts recorded instead of sent, oldest first (each with ``status: sent``)."""
        entries = [json.loads(raw) for raw in await awaited(self.redis.lrange(OUTBOX_KEY, 0, -1))]
        return [{**entry, "status": "sent"} for entry in entries if tenant is None or entry.get("tenant") == tenant]

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


async def held_texts(messaging: Messaging, tenants: list[Tenant]) -> list[dict[str, Any]]:
    """The texts Lily holds for these tenants (quiet hours, frequency cap), soonest to go first.

    Each entry has the outbox's fields plus ``status: held``, ``until`` (epoch seconds) and ``reason``."""
    held = []
    for tenant in tenants:
        for record in await messaging.recent(tenant.id, HELD_LOOKBACK):
            if record.status != "deferred":
                continue
            held.append(
                {
                    "tenant": tenant.id,
                    "to": record.to,
                    "from": tenant.contact_phone or "outbox",
                    "body": record.body,
                    "message_id": record.id,
                    "at": record.created_at,
                    "status": "held",
                    "until": float(record.fields.get("deferred_until") or 0),
                    "reason": HOLD_REASONS.get(record.fields.get("deferred_reason", ""), "held"),
                }
            )
    return sorted(held, key=lambda entry: (entry["until"], entry["at"]))
