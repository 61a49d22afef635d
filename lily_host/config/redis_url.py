"""Is Lily's Redis usable? A plain ``REDIS_URL``'s shape, and whether Redis answers.

A bad URL or an unreachable Redis must end a command with one line that names the URL (password
hidden) or the sentinels, what failed and what to check, never a traceback or a process that starts
and then retries forever. Everything that opens Redis at start-up asks here first, through
:mod:`lily_host.config.redis_connection` (the client factory: a URL, Sentinel or Cluster), whose
``check_redis`` / ``require_redis`` / ``ensure_redis`` run these checks on the configured target.
"""

from __future__ import annotations

import asyncio
from urllib.parse import SplitResult, urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.sentinel import MasterNotFoundError
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
    hint = (
        f"write it like {EXAMPLE_URL} (rediss:// for TLS, unix:///path/to/redis.sock for a socket, "
        "redis+sentinel://h1:26379,h2:26379/<service> for Sentinel)"
    )
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


async def ensure_reachable(
    client: aioredis.Redis, where: str, *, variable: str = "REDIS_URL", within: float = REACH_TIMEOUT
) -> None:
    """PING through ``client``; ConfigurationError naming ``where`` (a URL, password hidden, or the
    sentinels), the variable that set it and what to check when Redis does not answer within
    ``within`` seconds."""
    try:
        await asyncio.wait_for(client.ping(), within)
    except TimeoutError:
        raise ConfigurationError(
            f"cannot reach Redis at {where} ({variable}): no answer within {within:g} s; "
            "check that redis-server runs there and that no firewall is in the way"
        ) from None
    except MasterNotFoundError:
        # Sentinel: no sentinel answered, or none knows a primary of that name.
        raise ConfigurationError(
            f"cannot reach Redis at {where} ({variable}): no sentinel named a primary; check that the "
            "sentinels run and are reachable, and that REDIS_SENTINEL_SERVICE is the name they monitor"
        ) from None
    except redis.exceptions.AuthenticationError as error:
        raise ConfigurationError(
            f"Redis at {where} ({variable}) refused the login ({error}); check the user and password in "
            f"{'REDIS_URL' if variable == 'REDIS_URL' else 'REDIS_PASSWORD'}"
        ) from None
    except (redis.exceptions.RedisError, OSError) as error:
        reason = " ".join(str(error).split()).rstrip(".") or type(error).__name__
        raise ConfigurationError(
            f"cannot reach Redis at {where} ({variable}): {reason}; "
            f"check that redis-server is running and {variable} points at it"
        ) from None
