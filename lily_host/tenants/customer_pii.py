"""Customer PII at rest: sealed with the host's key, found again through keyed hashes.

Customer phone numbers, names and message bodies that Lily keeps for the features below it
(conversations, the consent ledger) are stored as ``enc:v1:...`` Fernet tokens made with
``LILY_SECRET_KEY`` (:class:`lily_host.tenants.secret_box.SecretBox`, the key that seals tenant secrets).

A lookup by phone number cannot use a ciphertext (Fernet is randomised), so such lookups use a
keyed hash: HMAC-SHA256 under a random 32-byte *lookup key*. The lookup key is made once per
installation and stored sealed in Redis (``lily:pii:lookup_key``), so rotating ``LILY_SECRET_KEY``
re-seals it without changing any hash: ``lily tenants rotate-secrets`` re-seals it and every sealed
customer value (:func:`rotate_customer_data`) with the newest key.

Redis keys:

- ``lily:pii:lookup_key``   the sealed lookup key (never erased: every hash depends on it)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import TYPE_CHECKING, Any

from lily_host.plugin_api.key_slots import slot_transaction
from lily_host.plugin_api.redis_typing import awaited
from lily_host.tenants.secret_box import PREFIX, SecretBox

if TYPE_CHECKING:
    import redis.asyncio as aioredis

LOOKUP_KEY = "lily:pii:lookup_key"
#: Hex characters of a keyed hash kept in keys: 128 bits, plenty against collisions, short in Redis.
DIGEST_CHARS = 32


class Pii:
    """``host.pii`` (the plugin API's ``PiiBox``): seal/open customer data and compute lookup hashes."""

    def __init__(self, redis: aioredis.Redis, box: SecretBox) -> None:
        self.redis = redis
        self.box = box
        self._lookup_key: bytes | None = None

    async def lookup_key(self) -> bytes:
        if self._lookup_key is None:
            fresh = self.box.encrypt(base64.b64encode(secrets.token_bytes(32)).decode())
            # The first process to get here makes the key; every other one reads that one.
            await awaited(self.redis.set(LOOKUP_KEY, fresh, nx=True))
            stored = await awaited(self.redis.get(LOOKUP_KEY))
            if stored is None:
                raise RuntimeError("the PII lookup key vanished while it was being created")
            text = stored.decode() if isinstance(stored, bytes) else str(stored)
            self._lookup_key = base64.b64decode(self.box.decrypt(text))
        return self._lookup_key

    async def digest(self, value: str) -> str:
        """The keyed hash of ``value`` (a normalised phone number): stable, not reversible without the key."""
        key = await self.lookup_key()
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:DIGEST_CHARS]

    def seal(self, value: str) -> str:
        return self.box.encrypt(value)

    def open(self, stored: str) -> str:
        """The plaintext of a sealed value (values stored before sealing existed pass through)."""
        return self.box.decrypt(stored) if SecretBox.is_encrypted(stored) else stored

    def reseal(self, stored: str) -> str:
        return self.box.rotate(stored) if SecretBox.is_encrypted(stored) else self.box.encrypt(stored)

    async def rotate_lookup_key(self) -> int:
        """Re-seal the lookup key with the newest key of ``LILY_SECRET_KEY`` (its value stays)."""
        stored = await awaited(self.redis.get(LOOKUP_KEY))
        if stored is None:
            return 0
        text = stored.decode() if isinstance(stored, bytes) else str(stored)
        await awaited(self.redis.set(LOOKUP_KEY, self.box.rotate(text)))
        return 1


#: Where sealed customer values live (message records, suppression lists, jobs, bookings,
#: conversations, quotes, lily-s3's quote records): what ``rotate_customer_data`` walks.
SEALED_KEY_PATTERNS = (
    "lily:{t:*}:sms:message:*",
    "lily:{t:*}:sms:suppressed",
    "lily:{t:*}:job:*",
    "lily:{t:*}:booking:*",
    "lily:{t:*}:conv:*",
    "lily:{t:*}:quote:*",
    "lily:{t:*}:s3:*",
)


async def rotate_customer_data(pii: Pii) -> int:
    """Re-seal the lookup key and every sealed customer value with the newest key; how many were rewritten.

    Sealed values are found where they are, whatever the record: a hash field, a string, a JSON
    document (a booking, a suppression entry) or a sorted-set member (a conversation's texts).
    """
    redis = pii.redis
    count = await pii.rotate_lookup_key()
    for pattern in SEALED_KEY_PATTERNS:
        async for raw_key in redis.scan_iter(match=pattern, count=500):
            key = raw_key.decode()
            kind = (await awaited(redis.type(key))).decode()
            if kind == "hash":
                fields = await awaited(redis.hgetall(key))
                changed = {}
                for name, value in fields.items():
                    resealed, n = _reseal_text(pii, value.decode())
                    if n:
                        changed[name.decode()] = resealed
                        count += n
                if changed:
                    await awaited(redis.hset(key, mapping=changed))
            elif kind == "string":
                value = await awaited(redis.get(key))
                resealed, n = _reseal_text(pii, value.decode()) if value is not None else ("", 0)
                if n:
                    await awaited(redis.set(key, resealed, keepttl=True))
                    count += n
            elif kind == "zset":
                for member, score in await awaited(redis.zrange(key, 0, -1, withscores=True)):
                    resealed, n = _reseal_text(pii, member.decode())
                    if n:
                        pipe = await slot_transaction(redis, key)
                        pipe.zrem(key, member)
                        pipe.zadd(key, {resealed: score})
                        await pipe.execute()
                        count += n
    return count


def _reseal_text(pii: Pii, text: str) -> tuple[str, int]:
    """``text`` with every sealed value in it re-sealed (itself, or inside a JSON document); and how many."""
    if SecretBox.is_encrypted(text):
        return pii.reseal(text), 1
    if PREFIX not in text or not text.startswith(("{", "[")):
        return text, 0
    try:
        document = json.loads(text)
    except ValueError:
        return text, 0
    counter = [0]
    resealed = _reseal_json(pii, document, counter)
    return (json.dumps(resealed, sort_keys=True), counter[0]) if counter[0] else (text, 0)


def _reseal_json(pii: Pii, value: Any, counter: list[int]) -> Any:
    if isinstance(value, str) and SecretBox.is_encrypted(value):
        counter[0] += 1
        return pii.reseal(value)
    if isinstance(value, dict):
        return {key: _reseal_json(pii, item, counter) for key, item in value.items()}
    if isinstance(value, list):
        return [_reseal_json(pii, item, counter) for item in value]
    return value
