"""Quotes sent by text: the record of what was quoted, and what the customer did with it.

A quote is sent with ``POST /api/quotes/<id>/send`` (:mod:`lily_host.builtins.quote_texts`); ``<id>`` is
the business's own quote id (lily-s3's, when the quote was built from texted photos). The record
follows the quote: ``sent`` → ``viewed`` (the short link ``/q/<token>`` was opened) → ``accepted``
(a ``YES`` reply or the page's accept button; ``quote.accepted`` is emitted once).

Redis keys:

- ``lily:{t:<tenant>}:quote:<id>``         hash: to* (sealed), amount, description, link, status, token,
  sent_at, viewed_at, accepted_at, accepted_via, message_task, follow_up_due
- ``lily:quote_token:<sha256 of token>`` "<tenant> <id>": the short link (tokens are global and unguessable)
- ``lily:{t:<tenant>}:quotes:awaiting:<hash>``  JSON {id, at}: the quote a YES from this number accepts

Kept for the tenant's retention period; erased with the tenant (tokens included).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from lily_host.plugin_api.key_registry import set_tracked, track_keys
from lily_host.plugin_api.key_slots import slot_transaction, tenant_key
from lily_host.plugin_api.redis_typing import awaited

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from lily_host.plugin_api.host_api import PiiBox

# Used with fullmatch: "$" also matches before a trailing newline.
QUOTE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{12,32}")

# Accept once: returns 1 when this call accepted the quote, 0 if it was already accepted, -1 if unknown.
_ACCEPT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'status') == 'accepted' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'accepted', 'accepted_at', ARGV[1], 'accepted_via', ARGV[2])
return 1
"""

# Record the first view; a view never moves an accepted quote back.
_VIEW_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'viewed_at', ARGV[1]) == 1 and redis.call('HGET', KEYS[1], 'status') == 'sent' then
  redis.call('HSET', KEYS[1], 'status', 'viewed')
end
return 1
"""


def parse_amount(value: Any) -> Decimal:
    """A positive amount with at most two decimals (a number or a string like "250.00"); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError('amount must be a number like 250 or "250.00"')
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation as error:
        raise ValueError('amount must be a number like 250 or "250.00"') from error
    if not amount.is_finite() or amount <= 0 or amount >= Decimal("10000000"):
        raise ValueError("amount must be more than 0 and less than 10,000,000")
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]  # finite: the exponent is an int
        raise ValueError("amount has at most two decimals (cents)")
    return amount.quantize(Decimal("0.01"))


def format_amount(amount: str) -> str:
    value = Decimal(amount)
    return f"${value:,.0f}" if value == value.to_integral_value() else f"${value:,.2f}"


def _prefix(tenant_id: str) -> str:
    return tenant_key(tenant_id, "quotes")


def quote_key(tenant_id: str, quote_id: str) -> str:
    return tenant_key(tenant_id, "quote", quote_id)


def token_key(token: str) -> str:
    """The short link's key: a hash of the token, so bearer material never sits in a key name."""
    return f"lily:quote_token:{hashlib.sha256(token.encode()).hexdigest()}"


def quote_key_patterns(tenant_id: str) -> tuple[str, ...]:
    return (quote_key(tenant_id, "*"), f"{_prefix(tenant_id)}:*")


@dataclass(frozen=True)
class Quote:
    tenant: str
    id: str
    fields: dict[str, str]

    @property
    def status(self) -> str:
        return self.fields.get("status", "")

    def public_view(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "quote_id": self.id,
            "status": self.status,
            "amount": self.fields.get("amount"),
            "description": self.fields.get("description"),
            "link": self.fields.get("link") or None,
        }
        for name in ("sent_at", "viewed_at", "accepted_at", "follow_up_due", "follow_up_sent_at"):
            data[name] = float(self.fields[name]) if self.fields.get(name) else None
        data["accepted_via"] = self.fields.get("accepted_via") or None
        return data


class QuoteStore:
    def __init__(self, redis: aioredis.Redis, pii: PiiBox) -> None:
        self.redis = redis
        self.pii = pii
        self._accept = redis.register_script(_ACCEPT_LUA)
        self._view = redis.register_script(_VIEW_LUA)

    async def get(self, tenant_id: str, quote_id: str) -> Quote | None:
        raw = await awaited(self.redis.hgetall(quote_key(tenant_id, quote_id)))
        if not raw:
            return None
        return Quote(tenant_id, quote_id, {key.decode(): value.decode() for key, value in raw.items()})

    def customer(self, quote: Quote) -> str:
        return self.pii.open(quote.fields["to"])

    async def by_token(self, token: str) -> Quote | None:
        if not TOKEN.fullmatch(token):
            return None
        raw = await self.redis.get(token_key(token))
        if raw is None:
            return None
        tenant_id, _, quote_id = raw.decode().partition(" ")
        return await self.get(tenant_id, quote_id)

    async def create(
        self,
        tenant_id: str,
        quote_id: str,
        *,
        to: str,
        amount: Decimal,
        description: str,
        link: str,
        now: float,
        ttl: int,
    ) -> Quote:
        """A new record for this sending (a quote sent again gets a new token and starts over)."""
        token = secrets.token_urlsafe(12)
        key = quote_key(tenant_id, quote_id)
        previous = await self.get(tenant_id, quote_id)
        # The short link (a cross-tenant key, its own slot) is written in a step of its own: the new
        # one before the record that names it, the old one dropped after (a link whose record is
        # not there yet, or no longer names it, leads nowhere).
        await awaited(self.redis.set(token_key(token), f"{tenant_id} {quote_id}", ex=ttl))
        pipe = await slot_transaction(self.redis, key)
        pipe.delete(key)
        track_keys(pipe, tenant_id, key, ttl=ttl)
        pipe.hset(
            key,
            mapping={
                "to": self.pii.seal(to),
                "amount": str(amount),
                "description": description,
                "link": link,
                "status": "sent",
                "token": token,
                "sent_at": repr(now),
            },
        )
        pipe.expire(key, ttl)
        await pipe.execute()
        if previous is not None and previous.fields.get("token"):
            await awaited(self.redis.delete(token_key(previous.fields["token"])))
        quote = await self.get(tenant_id, quote_id)
        assert quote is not None
        return quote

    async def set(self, tenant_id: str, quote_id: str, **fields: str) -> None:
        await awaited(self.redis.hset(quote_key(tenant_id, quote_id), mapping=fields))

    async def mark_viewed(self, quote: Quote, now: float) -> None:
        await self._view(keys=[quote_key(quote.tenant, quote.id)], args=[repr(now)])

    async def accept(self, quote: Quote, via: str, now: float) -> bool:
        """True if this call accepted the quote (the caller emits ``quote.accepted``)."""
        result = int(await self._accept(keys=[quote_key(quote.tenant, quote.id)], args=[repr(now), via]))
        return result == 1

    # --- YES replies ---------------------------------------------------------------------------------

    async def await_reply(self, tenant_id: str, number: str, quote_id: str, now: float, ttl: int) -> None:
        digest = await self.pii.digest(number)
        value = json.dumps({"id": quote_id, "at": now})
        await set_tracked(self.redis, tenant_id, f"{_prefix(tenant_id)}:awaiting:{digest}", value, ttl=ttl)

    async def awaiting(self, tenant_id: str, number: str) -> dict[str, Any] | None:
        digest = await self.pii.digest(number)
        raw = await self.redis.get(f"{_prefix(tenant_id)}:awaiting:{digest}")
        if raw is None:
            return None
        found: dict[str, Any] = json.loads(raw)
        return found
