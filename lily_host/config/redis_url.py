"""Is ``REDIS_URL`` usable? Its shape, and whether Redis answers: one place for serve, worker, dev and the CLI.

A bad URL or an unreachable Redis must end a command with one line that names the URL (password
hidden), what failed and what to check, never a traceback or a process that starts and then
retries forever. Everything that opens Redis at start-up asks here first, so a different way of
making clients (Sentinel, Cluster) needs to change only this module and the client factory.
"""

from __future__ import annotations

import asyncio
from urllib.parse import SplitResult, urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis.connection import parse_url

from lily_host.plugin_api.errors import ConfigurationError

#: Seconds a start-up check waits for Redis to answer before it gives up.
REACH_TIMEOUT = 3.0
EXAMPLE_URL = "redis://localhost:6379/0"


def display_url(url: str) -> str:
    """``url`` with its password hidden, fit for a message or a log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname or ''}" + (f":{parts.port}" if _port_or_none(parts) else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _port_or_none(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def check_redis_url(url: str | None) -> str:
    """``url`` when redis-py can use it; otherwise ConfigurationError saying how to write it."""
    if not url:
        raise ConfigurationError("REDIS_URL is not set (`lily dev` starts an embedded Redis for you)")
    shown = display_url(url)
    hint = f"write it like {EXAMPLE_URL} (rediss:// for TLS, unix:///path/to/redis.sock for a socket)"
    try:
        parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    except (ValueError, TypeError) as error:
        raise ConfigurationError(f"REDIS_URL={shown!r} is not a Redis URL ({error}); {hint}") from None
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ConfigurationError(f"REDIS_URL={shown!r} names no host; {hint}")
        database = parts.path.strip("/")
        if database and not (database.isascii() and database.isdigit()):  # "²".isdigit() is true
            raise ConfigurationError(
                f"REDIS_URL={shown!r}: the database after the last '/' must be a number, got {database!r}; {hint}"
            )
    return url


async def ensure_reachable(client: aioredis.Redis, url: str, *, within: float = REACH_TIMEOUT) -> None:
    """PING through ``client``; ConfigurationError naming ``url`` and what to check when Redis does not
    answer within ``within`` seconds."""
    try:
        await asyncio.wait_for(client.ping(), within)
    except TimeoutError:
        raise ConfigurationError(
            f"cannot reach Redis at {display_url(url)} (REDIS_URL): no answer within {within:g} s; "
            "check that redis-server runs there and that no firewall is in the way"
        ) from None
    except redis.exceptions.AuthenticationError as error:
        raise ConfigurationError(
            f"Redis at {display_url(url)} (REDIS_URL) refused the login ({error}); "
            "check the user and password in REDIS_URL"
        ) from None
    except (redis.exceptions.RedisError, OSError) as error:
        reason = str(error).strip().rstrip(".") or type(error).__name__
        raise ConfigurationError(
            f"cannot reach Redis at {display_url(url)} (REDIS_URL): {reason}; "
            "check that redis-server is running and REDIS_URL points at it"
        ) from None


async def check_redis(url: str | None, *, within: float = REACH_TIMEOUT) -> None:
    """The URL's shape, then a PING over a client of its own (closed again)."""
    checked = check_redis_url(url)
    client = aioredis.Redis.from_url(checked, socket_connect_timeout=within, socket_timeout=within)
    try:
        await ensure_reachable(client, checked, within=within)
    finally:
        await client.aclose()


def require_redis(url: str | None, *, within: float = REACH_TIMEOUT) -> None:
    """:func:`check_redis` for synchronous callers (``lily serve`` before it forks its workers)."""
    asyncio.run(check_redis(url, within=within))
