"""Conversations: every text to and from one customer number, per tenant, for the business to read and answer.

Inbound texts arrive as ``message.received`` (from any SMS plugin); outbound texts are recorded by
``host.messaging.queue_sms`` when they are queued, whatever sent them (an automation, a reply).
A conversation's id is the keyed hash of the customer's number (:mod:`lily_host.tenants.customer_pii`), so ids
and keys hold no number; the number, the customer's name and every body are sealed with the
host's key and opened only when the tenant API reads them.

Photos a customer texts are filed by lily-s3 under a quote; lily-s3 announces that with
``quote.photos_received`` and the conversation remembers the quote (``quote_id``), so the business
sees "photos → quote Q" next to the reply asking for them.

Kept for the tenant's retention period (messages older than it are trimmed on every write, and
the keys expire that long after the last one); erased with the tenant.

Redis keys (``{<tenant>}`` is a Cluster hash tag, so each script touches one slot):

- ``lily:{t:<tenant>}:conv:index``            zset conversation id → last activity
- ``lily:{t:<tenant>}:conv:unread``           zset conversation id → last inbound, while it has unread texts
- ``lily:{t:<tenant>}:conv:meta:<id>``        hash number*, name*, last_at, last_preview*, last_direction,
                                            unread, quote_id
- ``lily:{t:<tenant>}:conv:msgs:<id>``        zset JSON entry (id, direction, body*, at, ...) → time
- ``lily:{t:<tenant>}:conv:quotes:<id>``      hash inbound message id → quote id
- ``lily:{t:<tenant>}:conv:seen:<message>``   an inbound message already recorded (redeliveries)

(* sealed)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lily_host.plugin_api.key_registry import track_keys
from lily_host.plugin_api.key_slots import slot_transaction, tenant_key
from lily_host.plugin_api.redis_typing import awaited
from lily_host.plugin_api.validators import normalize_e164

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from lily_host.plugin_api.tenant import Tenant
    from lily_host.tenants.customer_pii import Pii
    from lily_host.tenants.store import TenantStore

#: Characters of the last message shown in a conversation list.
PREVIEW_CHARS = 80
#: How long an inbound message id is remembered against redeliveries.
SEEN_SECONDS = 3 * 24 * 3600
#: Messages a conversation read returns at most (the newest).
MAX_READ = 500

_RECORD_LUA = """
local seen, meta, msgs, index, unread = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local entry, at, number, preview = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local retention, direction, cid, name = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
if direction == 'in' and ARGV[9] ~= '' then
  if not redis.call('SET', seen, '1', 'NX', 'EX', ARGV[9]) then return 0 end
end
redis.call('ZADD', msgs, at, entry)
redis.call('ZREMRANGEBYSCORE', msgs, '-inf', at - retention)
redis.call('HSET', meta, 'number', number, 'last_at', ARGV[2], 'last_preview', preview, 'last_direction', direction)
if name ~= '' then redis.call('HSET', meta, 'name', name) end
if direction == 'in' then
  redis.call('HINCRBY', meta, 'unread', 1)
  redis.call('ZADD', unread, at, cid)
  -- lily-s3 may have filed this message's photos before it was recorded here.
  local quote = redis.call('HGET', KEYS[6], ARGV[10])
  if quote then redis.call('HSET', meta, 'quote_id', quote) end
end
redis.call('ZADD', index, at, cid)
for _, key in ipairs({index, unread}) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', at - retention)
  redis.call('EXPIRE', key, retention)
end
redis.call('EXPIRE', meta, retention)
redis.call('EXPIRE', msgs, retention)
return 1
"""


def _prefix(tenant_id: str) -> str:
    return tenant_key(tenant_id, "conv")


def conversation_key_pattern(tenant_id: str) -> str:
    """Every conversation key of a (glob-escaped) tenant id, for erasure."""
    return f"{_prefix(tenant_id)}:*"


@dataclass(frozen=True)
class Conversation:
    id: str
    number: str
    name: str
    unread: int
    last_at: float
    last_preview: str
    last_direction: str
    quote_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "name": self.name or None,
            "unread": self.unread,
            "last_at": self.last_at,
            "last_message": self.last_preview,
            "last_direction": self.last_direction,
            "quote_id": self.quote_id,
        }


class Delivery(Protocol):
    """What a conversation shows of an outbound text's message record (``Messaging.get``)."""

    @property
    def status(self) -> str: ...


#: Looks up an outbound text's message record: ``(tenant id, message id)`` → the record or None.
StatusLookup = Callable[[str, str], Awaitable[Delivery | None]]


class ConversationStore:
    """``host.messaging.conversations``: built by ``Messaging``, which hands in its own record lookup."""

    def __init__(self, redis: aioredis.Redis, pii: Pii, tenants: TenantStore, *, status_of: StatusLookup) -> None:
        self.redis = redis
        self.pii = pii
        self.tenants = tenants
        self.status_of = status_of
        self._record = redis.register_script(_RECORD_LUA)

    async def conversation_id(self, number: str) -> str:
        return await self.pii.digest(normalize_e164(number))

    # --- writing -------------------------------------------------------------------------------------

    async def record(
        self,
        tenant: Tenant,
        number: str,
        *,
        direction: str,
        body: str,
        at: float,
        message_id: str,
        name: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Add one text to the conversation with ``number``; its id, or None for an inbound redelivery."""
        normalized = normalize_e164(number)
        cid = await self.pii.digest(normalized)
        prefix = _prefix(tenant.id)
        entry = json.dumps(
            {
                "id": message_id,
                "direction": direction,
                "body": self.pii.seal(body),
                "at": at,
                **(extra or {}),
            },
            sort_keys=True,
        )
        retention = tenant.retention_days * 86400
        tracker = self.redis.pipeline(transaction=False)
        written = (f"{prefix}:meta:{cid}", f"{prefix}:msgs:{cid}", f"{prefix}:index", f"{prefix}:unread")
        track_keys(tracker, tenant.id, *written, ttl=retention)
        if direction == "in":
            track_keys(tracker, tenant.id, f"{prefix}:seen:{message_id}", ttl=SEEN_SECONDS)
        await tracker.execute()
        recorded = await self._record(
            keys=[
                f"{prefix}:seen:{message_id}",
                f"{prefix}:meta:{cid}",
                f"{prefix}:msgs:{cid}",
                f"{prefix}:index",
                f"{prefix}:unread",
                f"{prefix}:quotes:{cid}",
            ],
            args=[
                entry,
                repr(at),
                self.pii.seal(normalized),
                self.pii.seal(body[:PREVIEW_CHARS]),
                retention,
                direction,
                cid,
                self.pii.seal(name) if name else "",
                SEEN_SECONDS if direction == "in" else "",
                message_id,
            ],
        )
        return cid if int(recorded) else None

    async def record_outbound(
        self, tenant: Tenant, number: str, body: str, message_id: str, at: float, *, template: str, name: str = ""
    ) -> None:
        await self.record(
            tenant,
            number,
            direction="out",
            body=body,
            at=at,
            message_id=message_id,
            name=name,
            extra={"template": template},
        )

    async def link_quote(self, tenant_id: str, number: str, message_id: str, quote_id: str) -> None:
        cid = await self.conversation_id(number)
        prefix = _prefix(tenant_id)
        tenant = await self.tenants.get(tenant_id)
        ttl = (tenant.retention_days if tenant else 365) * 86400
        pipe = await slot_transaction(self.redis, prefix)
        track_keys(pipe, tenant_id, f"{prefix}:quotes:{cid}", ttl=ttl)
        pipe.hset(f"{prefix}:quotes:{cid}", message_id, quote_id)
        pipe.expire(f"{prefix}:quotes:{cid}", ttl)
        # Only a conversation that exists gets the link on its summary (no empty meta hash).
        await pipe.execute()
        if await awaited(self.redis.exists(f"{prefix}:meta:{cid}")):
            await awaited(self.redis.hset(f"{prefix}:meta:{cid}", "quote_id", quote_id))

    async def mark_read(self, tenant_id: str, cid: str) -> bool:
        prefix = _prefix(tenant_id)
        if not await awaited(self.redis.exists(f"{prefix}:meta:{cid}")):
            return False
        pipe = await slot_transaction(self.redis, prefix)
        pipe.hset(f"{prefix}:meta:{cid}", "unread", "0")
        pipe.zrem(f"{prefix}:unread", cid)
        await pipe.execute()
        return True

    # --- reading -------------------------------------------------------------------------------------

    async def get(self, tenant_id: str, cid: str) -> Conversation | None:
        raw = await awaited(self.redis.hgetall(f"{_prefix(tenant_id)}:meta:{cid}"))
        if not raw or b"number" not in raw:
            return None
        data = {key.decode(): value.decode() for key, value in raw.items()}
        return Conversation(
            id=cid,
            number=self.pii.open(data["number"]),
            name=self.pii.open(data["name"]) if data.get("name") else "",
            unread=int(data.get("unread", "0")),
            last_at=float(data.get("last_at", "0")),
            last_preview=self.pii.open(data["last_preview"]) if data.get("last_preview") else "",
            last_direction=data.get("last_direction", ""),
            quote_id=data.get("quote_id") or None,
        )

    async def listing(self, tenant_id: str, limit: int = 50) -> list[Conversation]:
        """Unread conversations first (latest inbound first), then the rest by latest activity."""
        prefix = _prefix(tenant_id)
        unread = [cid.decode() for cid in await awaited(self.redis.zrevrange(f"{prefix}:unread", 0, limit - 1))]
        ids = list(unread)
        if len(ids) < limit:
            recent = await awaited(self.redis.zrevrange(f"{prefix}:index", 0, limit + len(unread) - 1))
            ids.extend(cid for cid in (raw.decode() for raw in recent) if cid not in unread)
        conversations = []
        for cid in ids[:limit]:
            conversation = await self.get(tenant_id, cid)
            if conversation is not None:
                conversations.append(conversation)
        return conversations

    async def messages(self, tenant_id: str, cid: str, limit: int = MAX_READ) -> list[dict[str, Any]]:
        """The conversation's texts, oldest first, bodies opened; outbound ones with their delivery status."""
        prefix = _prefix(tenant_id)
        raw = await awaited(self.redis.zrange(f"{prefix}:msgs:{cid}", -limit, -1))
        quotes = {
            key.decode(): value.decode()
            for key, value in (await awaited(self.redis.hgetall(f"{prefix}:quotes:{cid}"))).items()
        }
        entries = []
        for item in raw:
            entry: dict[str, Any] = json.loads(item)
            entry["body"] = self.pii.open(entry["body"])
            if entry["direction"] == "out":
                record = await self.status_of(tenant_id, entry["id"])
                entry["status"] = record.status if record is not None else "expired"
            elif entry["id"] in quotes:
                entry["quote_id"] = quotes[entry["id"]]
            entries.append(entry)
        return entries
