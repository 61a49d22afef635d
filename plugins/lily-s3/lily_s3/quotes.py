"""Quote requests and their photos, kept in Redis under this plugin's own keys, one tenant at a time.

Keys (``KeyNamespace("s3").tenant_key``: ``{t:<tenant>}`` is the tenant's Redis Cluster hash tag,
so one tenant's keys share a slot and the scripts and transactions below also run on a cluster,
their transactions through ``slot_transaction``):

- ``lily:{t:<tenant>}:s3:quote:<id>``         hash: created_at, source, customer (sealed with the host's key)
- ``lily:{t:<tenant>}:s3:quote:<id>:photos``  hash: photo id → photo JSON
- ``lily:{t:<tenant>}:s3:quotes``             zset: quote id by created_at
- ``lily:{t:<tenant>}:s3:photos``             zset: "<quote id>/<photo id>" by stored_at (retention)
- ``lily:{t:<tenant>}:s3:upload:<photo id>``  pending browser upload (JSON, expires)
- ``lily:{t:<tenant>}:s3:open:<hash>``        the customer's open MMS quote: "<quote id>|<last photo at>"
  (``<hash>``: the host's keyed hash of the number, ``host.pii``)
- ``lily:{t:<tenant>}:s3:msg:<message sid>``  the quote an MMS message was filed under (retries agree)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

from lily_host import (
    KeyNamespace,
    PiiBox,
    awaited,
    set_tracked,
    slot_transaction,
    track_keys,
    track_keys_now,
    untrack_keys,
)
from lily_s3.keys import new_quote_id

#: How long the message → quote link is kept: longer than any task retry schedule.
MESSAGE_LINK_TTL = 7 * 24 * 3600

# Atomically: the quote this message already went to, else the customer's quote if still open,
# else the new id; then remember both. Clock values come from the host clock (ARGV), not Redis.
_QUOTE_FOR_MESSAGE = """
local filed = redis.call('GET', KEYS[1])
if filed then return filed end
local quote = ARGV[1]
local open = redis.call('GET', KEYS[2])
if open then
  local sep = string.find(open, '|', 1, true)
  if sep then
    local last = tonumber(string.sub(open, sep + 1))
    if last and tonumber(ARGV[2]) - last <= tonumber(ARGV[3]) then quote = string.sub(open, 1, sep - 1) end
  end
end
redis.call('SET', KEYS[2], quote .. '|' .. ARGV[2], 'EX', ARGV[4])
redis.call('SET', KEYS[1], quote, 'EX', ARGV[5])
return quote
"""

# Drop a quote's record once its last photo is gone, without racing a photo being added.
_DROP_EMPTY_QUOTE = """
if redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Photo:
    photo_id: str
    quote_id: str
    key: str
    content_type: str
    size: int
    stored_at: float
    source: str
    filename: str | None = None
    message_sid: str | None = None
    #: The webhook delivery the photo came with (``lily trace``), when it came with one.
    delivery: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Photo:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class Quote:
    quote_id: str
    created_at: float
    source: str
    customer: str | None
    photo_count: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PendingUpload:
    photo_id: str
    quote_id: str
    key: str
    content_type: str
    max_bytes: int
    issued_at: float
    filename: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> PendingUpload:
        return cls(**json.loads(raw))


def records_prefix(tenant_id: str) -> str:
    """The prefix of every Redis key holding the tenant's quotes and photo records."""
    return KeyNamespace("s3").tenant_prefix(tenant_id)


class QuoteStore:
    """One tenant's quotes. Never reads or writes another tenant's keys."""

    def __init__(self, redis: aioredis.Redis, tenant_id: str, pii: PiiBox | None = None) -> None:
        self.redis = redis
        #: The host's PII box: with it, the customer's number is sealed in the quote and hashed in keys.
        self.pii = pii
        self.tenant_id = tenant_id
        self.base = records_prefix(tenant_id)
        self._quote_for_message = redis.register_script(_QUOTE_FOR_MESSAGE)
        self._drop_empty_quote = redis.register_script(_DROP_EMPTY_QUOTE)

    def _quote(self, quote_id: str) -> str:
        return f"{self.base}quote:{quote_id}"

    def _photos(self, quote_id: str) -> str:
        return f"{self.base}quote:{quote_id}:photos"

    @property
    def _quotes_index(self) -> str:
        return f"{self.base}quotes"

    @property
    def _photos_index(self) -> str:
        return f"{self.base}photos"

    # --- photos -----------------------------------------------------------------------------------

    async def add_photo(self, photo: Photo, *, customer: str | None = None) -> tuple[Photo, bool]:
        """Record ``photo`` on its quote (creating the quote); (the stored photo, whether it is new).

        Recording the same photo id twice keeps the first record: retries and double clicks are safe.
        """
        quote_key = self._quote(photo.quote_id)
        # Recorded in the tenant's key registry first (its erasure reads it; a crash between leaves an
        # entry for a key that does not exist, which erasure skips).
        await track_keys_now(
            self.redis, self.tenant_id, quote_key, self._photos(photo.quote_id), self._quotes_index, self._photos_index
        )
        pipe = await slot_transaction(self.redis, quote_key)
        pipe.hsetnx(self._photos(photo.quote_id), photo.photo_id, photo.to_json())
        pipe.hsetnx(quote_key, "created_at", repr(photo.stored_at))
        pipe.hsetnx(quote_key, "source", photo.source)
        if customer:
            pipe.hsetnx(quote_key, "customer", self.pii.seal(customer) if self.pii else customer)
        pipe.zadd(self._quotes_index, {photo.quote_id: photo.stored_at}, nx=True)
        pipe.zadd(self._photos_index, {f"{photo.quote_id}/{photo.photo_id}": photo.stored_at}, nx=True)
        results = await pipe.execute()
        if results[0]:
            return photo, True
        existing = await self.get_photo(photo.quote_id, photo.photo_id)
        return (existing or photo), False

    async def get_photo(self, quote_id: str, photo_id: str) -> Photo | None:
        raw = await awaited(self.redis.hget(self._photos(quote_id), photo_id))
        return None if raw is None else Photo.from_json(raw)

    async def photos(self, quote_id: str) -> list[Photo]:
        raws = await awaited(self.redis.hvals(self._photos(quote_id)))
        return sorted((Photo.from_json(raw) for raw in raws), key=lambda photo: (photo.stored_at, photo.photo_id))

    async def photos_stored_before(self, cutoff: float, limit: int = 500) -> list[tuple[str, str]]:
        """(quote id, photo id) of photos stored strictly before ``cutoff``, oldest first."""
        members = await self.redis.zrangebyscore(self._photos_index, "-inf", f"({cutoff!r}", start=0, num=limit)
        pairs = []
        for member in members:
            quote_id, _, photo_id = _text(member).partition("/")
            pairs.append((quote_id, photo_id))
        return pairs

    async def remove_photos(self, pairs: Sequence[tuple[str, str]]) -> None:
        pipe = await slot_transaction(self.redis, self._photos_index)
        for quote_id, photo_id in pairs:
            pipe.hdel(self._photos(quote_id), photo_id)
            pipe.zrem(self._photos_index, f"{quote_id}/{photo_id}")
        await pipe.execute()
        for quote_id in sorted({quote_id for quote_id, _ in pairs}):
            if await self._drop_empty_quote(
                keys=[self._quote(quote_id), self._photos(quote_id), self._quotes_index], args=[quote_id]
            ):
                forget = self.redis.pipeline(transaction=False)
                untrack_keys(forget, self.tenant_id, self._quote(quote_id), self._photos(quote_id))
                await forget.execute()

    # --- quotes -----------------------------------------------------------------------------------

    async def get_quote(self, quote_id: str) -> Quote | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self._quote(quote_id))
        pipe.hlen(self._photos(quote_id))
        fields, count = await pipe.execute()
        if not fields:
            return None
        values = {_text(name): _text(value) for name, value in fields.items()}
        return Quote(
            quote_id=quote_id,
            created_at=float(values.get("created_at", 0.0)),
            source=values.get("source", "upload"),
            customer=self.pii.open(values["customer"])
            if self.pii and values.get("customer")
            else values.get("customer"),
            photo_count=int(count),
        )

    async def recent_quotes(self, limit: int) -> list[Quote]:
        ids = await self.redis.zrevrange(self._quotes_index, 0, max(0, limit - 1))
        quotes = []
        for raw_id in ids:
            quote = await self.get_quote(_text(raw_id))
            if quote is not None:
                quotes.append(quote)
        return quotes

    async def quote_for_message(self, customer: str, message_sid: str, *, now: float, open_seconds: float) -> str:
        """The quote an inbound MMS belongs to: the customer's open quote, or a new one."""
        keys = [f"{self.base}msg:{message_sid}", f"{self.base}open:{await self._customer_key(customer)}"]
        open_ttl = int(open_seconds) + 86400
        tracker = self.redis.pipeline(transaction=False)
        track_keys(tracker, self.tenant_id, keys[0], ttl=MESSAGE_LINK_TTL)
        track_keys(tracker, self.tenant_id, keys[1], ttl=open_ttl)
        await tracker.execute()
        result = await self._quote_for_message(
            keys=keys, args=[new_quote_id(), repr(now), repr(float(open_seconds)), open_ttl, MESSAGE_LINK_TTL]
        )
        return _text(result)

    # --- pending browser uploads -------------------------------------------------------------------

    async def _customer_key(self, customer: str) -> str:
        return await self.pii.digest(customer) if self.pii else customer

    async def put_pending(self, pending: PendingUpload, *, ttl: int) -> None:
        await set_tracked(
            self.redis, self.tenant_id, f"{self.base}upload:{pending.photo_id}", pending.to_json(), ttl=ttl
        )

    async def get_pending(self, photo_id: str) -> PendingUpload | None:
        raw = await self.redis.get(f"{self.base}upload:{photo_id}")
        return None if raw is None else PendingUpload.from_json(raw)

    async def drop_pending(self, photo_id: str) -> None:
        await self.redis.delete(f"{self.base}upload:{photo_id}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
