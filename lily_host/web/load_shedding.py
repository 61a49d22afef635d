"""Load shedding: under overload Lily protects the valid work.

Three guards, each with its own setting (docs/operations.md, "Load shedding"):

- :class:`SourceLimiter`: a source (client address) whose webhooks keep being rejected (bad
  signature, unknown tenant, malformed body) spends a token per rejection; with none left, its
  requests are answered ``429`` + ``Retry-After`` before any work is done for them (no body read,
  no parsing, no signature check, no log line), and the answer is held for
  ``LILY_BAD_REQUEST_HOLD`` seconds first: an HTTP/1.1 connection carries one request at a time,
  so each of the flood's connections is slowed to one request per hold, and the HTTP parsing a
  flood costs the server even when answered at the door stays small. Signed deliveries from other
  sources keep their share. Per process, in memory: the flood a process sees is the flood it
  must shed.
- :class:`LoadShedder`: samples the queue's ready backlog and the Redis round trip once a second;
  past ``LILY_SHED_BACKLOG`` or ``LILY_SHED_REDIS_MS`` every webhook is answered ``503`` +
  ``Retry-After`` at once. Providers retry; a webhook waiting on an overloaded Redis until the
  provider's own timeout would be retried too, after holding a connection and a worker slot.
- :class:`ApiRateLimiter`: per API key, a GCRA rate limit kept in Redis (shared by every process),
  for the tenant API (``require_tenant`` asks it through the app's ``API_RATE_LIMIT`` extension).

One :class:`LoadShedder` per app (``app.extensions[SHEDDER]``), made by ``create_app``, handed to
every webhook route. This is not issue 13's throttle of wrong tenant keys and admin tokens: that
one counts failed authentications; these shed rejected webhooks, overload and busy API keys.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lily_host.observability.log import get_logger
from lily_host.tenants.api_keys import hash_api_key

if TYPE_CHECKING:
    from lily_host.config.host_settings import HostSettings
    from lily_host.queue import TaskQueue

__all__ = ["SHEDDER", "ApiRateLimiter", "LoadShedder", "SourceLimiter", "client_source"]

#: The app's :class:`LoadShedder` lives in ``app.extensions[SHEDDER]``.
SHEDDER = "lily.shedding"

log = get_logger("lily.shedding")

#: Held 429 answers at once per process; past this, they go out at once (a held answer is cheap,
#: but not free).
MAX_HELD = 2000

#: Sources remembered per process; the least recently seen are forgotten first (a flood of spoofed
#: addresses cannot grow memory without bound).
MAX_SOURCES = 10_000


def client_source(remote_addr: str | None, forwarded_for: str | None, trusted: Callable[[str], bool]) -> str:
    """The client address: behind trusted proxies, the rightmost X-Forwarded-For entry that is not
    one of them (entries left of it are whatever the client wrote); else the peer address."""
    source = remote_addr or "unknown"
    if forwarded_for and remote_addr and trusted(remote_addr):
        for entry in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
            source = entry
            if not trusted(entry):
                break
    return source


def trusted_checker(entries: Sequence[str]) -> Callable[[str], bool]:
    """Whether an address is one of ``entries`` (addresses or networks; malformed ones are skipped,
    as LILY_TRUSTED_PROXIES's own check reports them)."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue

    @functools.lru_cache(maxsize=4096)
    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    return trusted


class SourceLimiter:
    """Token buckets of rejected requests, one per source: ``burst`` tokens, ``rate`` back per second."""

    def __init__(self, *, burst: int, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.rate = rate
        self._clock = clock
        #: source -> (tokens, time of that count)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.burst > 0

    def _tokens(self, source: str, now: float) -> float:
        entry = self._buckets.get(source)
        if entry is None:
            return float(self.burst)
        tokens, since = entry
        return min(float(self.burst), tokens + (now - since) * self.rate)

    def retry_after(self, source: str) -> int | None:
        """Seconds until ``source`` may be heard again, or None when it may be now."""
        if not self.enabled or source not in self._buckets:
            return None
        tokens = self._tokens(source, self._clock())
        if tokens >= 1.0:
            return None
        return max(1, math.ceil((1.0 - tokens) / self.rate)) if self.rate > 0 else 3600

    def charge(self, source: str) -> None:
        """``source`` sent a request that was rejected: it spends one token."""
        if not self.enabled:
            return
        now = self._clock()
        tokens = self._tokens(source, now)
        self._buckets[source] = (max(0.0, tokens - 1.0), now)
        self._buckets.move_to_end(source)
        if len(self._buckets) > MAX_SOURCES:
            self._buckets.popitem(last=False)


@dataclass(slots=True)
class Overload:
    """Why webhooks are being shed right now."""

    reason: str
    retry_after: int


class LoadShedder:
    """Once a second: is the ready backlog or the Redis round trip past its bound?"""

    def __init__(self, settings: HostSettings, queue: TaskQueue) -> None:
        self.queue = queue
        self.max_backlog = settings.shed_backlog
        self.max_redis_seconds = settings.shed_redis_ms / 1000
        self.retry_after = settings.shed_retry_after
        self.interval = 1.0
        self.sources = SourceLimiter(burst=settings.bad_request_burst, rate=settings.bad_request_rate)
        self.trusted = trusted_checker(settings.trusted_proxies)
        self.hold_seconds = settings.bad_request_hold
        self._held = 0
        #: Not None while webhooks are being shed.
        self.overload: Overload | None = None
        self._task: asyncio.Task[None] | None = None

    async def hold(self) -> None:
        """Hold a 429 to a limited source for ``LILY_BAD_REQUEST_HOLD`` seconds (see the module doc)."""
        if self.hold_seconds <= 0 or self._held >= MAX_HELD:
            return
        self._held += 1
        try:
            await asyncio.sleep(self.hold_seconds)
        finally:
            self._held -= 1

    @property
    def watching(self) -> bool:
        return self.max_backlog > 0 or self.max_redis_seconds > 0

    async def sample(self) -> Overload | None:
        """Measure once and update :attr:`overload` (the loop calls this; tests call it directly)."""
        started = time.perf_counter()
        ready = await self.queue.ready_count()
        elapsed = time.perf_counter() - started
        reason = None
        if self.max_backlog and ready > self.max_backlog:
            reason = f"{ready} tasks ready to run (LILY_SHED_BACKLOG={self.max_backlog})"
        elif self.max_redis_seconds and elapsed > self.max_redis_seconds:
            reason = (
                f"Redis answered in {elapsed * 1000:.0f} ms (LILY_SHED_REDIS_MS={self.max_redis_seconds * 1000:.0f})"
            )
        previous = self.overload
        self.overload = Overload(reason, self.retry_after) if reason else None
        if (previous is None) != (self.overload is None):
            if self.overload is not None:
                log.warning("shedding webhooks", reason=reason)
            else:
                log.info("webhooks accepted again")
        return self.overload

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.sample(), timeout=max(self.interval, self.max_redis_seconds * 2))
            except TimeoutError:
                self.overload = Overload("Redis did not answer the load probe", self.retry_after)
            except Exception as error:  # Redis down: the webhooks' own errors say so
                self.overload = None
                log.debug("load probe failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self.watching and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


# GCRA (the generic cell rate algorithm): one key per API key holds the theoretical arrival time
# of the next request; a request is allowed while that time is at most ``burst`` intervals ahead.
# KEYS: the limit key. ARGV: interval (seconds per request), burst (requests).
# Returns {1, 0} when allowed, {0, seconds to wait (string)} when not.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat + interval - interval * burst - now
if wait > 0 then return {0, string.format('%.3f', wait)} end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1)
return {1, '0'}
"""


class ApiRateLimiter:
    """Per API key: ``per_minute`` requests a minute on average, ``burst`` at once (0: no limit)."""

    def __init__(self, redis: Any, *, per_minute: int, burst: int) -> None:
        self.per_minute = per_minute
        self.burst = max(1, burst)
        self._script = redis.register_script(_GCRA) if per_minute > 0 else None

    async def retry_after_for_token(self, token: str) -> int | None:
        """:meth:`retry_after` for a tenant API key as presented (kept under its hash, never itself)."""
        return await self.retry_after(hash_api_key(token))

    async def retry_after(self, key_digest: str) -> int | None:
        """Spend one request of this key; None when allowed, else the seconds to wait."""
        if self._script is None:
            return None
        result: Sequence[Any] = await self._script(
            keys=[f"lily:ratelimit:{{{key_digest}}}"], args=[repr(60.0 / self.per_minute), str(self.burst)]
        )
        if int(result[0]) == 1:
            return None
        wait = float(result[1].decode() if isinstance(result[1], bytes) else result[1])
        return max(1, math.ceil(wait))
