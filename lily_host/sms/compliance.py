"""SMS compliance rules, for every SMS channel: keywords, suppression lists, quiet hours, frequency caps.

- Keywords are read from the whole inbound body, trimmed, case-insensitively: "STOP" is a keyword,
  "STOP please" is not (that is what carriers and CTIA expect).
- Suppression is per tenant: a STOP to one business does not silence another.
- Quiet hours are in the tenant's timezone (default 21:00-09:00), or the recipient's when a
  provider gave it (a booking's attendee); a message due inside them waits for the first allowed
  minute after.
- The frequency cap bounds non-confirmation messages per recipient per tenant in any 24 hours.

Redis keys (one tenant each, never mixed):

- ``lily:sms:suppressed:<tenant>``          hash number → JSON {reason, at}
- ``lily:sms:cap:<tenant>:<number>``        zset message id → send time (the last 24 h)
- ``lily:sms:keyword:<tenant>:<message>``   outcome of one inbound keyword message (for redelivery)
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from lily_host.plugin_api.validators import normalize_e164

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

CAP_WINDOW_SECONDS = 24 * 3600
#: How long the outcome of one inbound keyword is remembered (the provider's redelivery window).
KEYWORD_MEMORY_SECONDS = 3 * 24 * 3600


#: Non-confirmation texts one recipient may get from one tenant per 24 h, unless LILY_SMS_DAILY_CAP says otherwise.
DEFAULT_DAILY_CAP = 5


class Keyword(enum.StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


def classify_keyword(body: str) -> Keyword | None:
    """The compliance keyword ``body`` is, if the whole (trimmed) body is one."""
    word = body.strip().upper()
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if word in HELP_WORDS:
        return Keyword.HELP
    return None


# --- quiet hours -----------------------------------------------------------------------------------


def in_quiet_hours(tenant: Tenant, when: float, timezone: str | None = None) -> bool:
    return quiet_hours_end(tenant, when, timezone) is not None


def quiet_hours_end(tenant: Tenant, when: float, timezone: str | None = None) -> float | None:
    """If ``when`` falls in the tenant's quiet hours, the first allowed moment after them; else None.

    Computed with zoneinfo in ``timezone`` (the recipient's, when a provider told us) or else the
    tenant's, so the answer stays right across DST changes (the end is 09:00 local on the day it
    falls, whatever the UTC offset is that day).
    """
    start, end = tenant.quiet_hours
    if start == end:
        return None
    zone = ZoneInfo(timezone) if timezone else tenant.tz
    local = dt.datetime.fromtimestamp(when, zone)
    now = local.time().replace(tzinfo=None)
    if start < end:
        inside, end_day = start <= now < end, local.date()
    else:
        inside = now >= start or now < end
        end_day = local.date() if now < end else local.date() + dt.timedelta(days=1)
    if not inside:
        return None
    return dt.datetime.combine(end_day, end, tzinfo=zone).timestamp()


# --- suppression and caps ---------------------------------------------------------------------------

# Add or remove a number, remembering the outcome under the inbound message id so that a redelivered
# keyword gives the same answer (1 = the list changed, 0 = it already was that way).
_CHANGE_LUA = """
if ARGV[4] ~= '' then
  local seen = redis.call('GET', ARGV[4])
  if seen then return tonumber(seen) end
end
local changed
if ARGV[1] == 'add' then
  changed = redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
else
  changed = redis.call('HDEL', KEYS[1], ARGV[2])
end
if ARGV[4] ~= '' then redis.call('SET', ARGV[4], changed, 'EX', ARGV[5]) end
return changed
"""

# Reserve a send slot for a message: 0 when reserved (or already reserved by this message), else the
# time the oldest send in the window leaves it.
_RESERVE_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return '0' end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('EXPIRE', KEYS[1], window * 2)
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window)
"""


class Compliance:
    """Suppression lists and frequency caps in Redis; the pure rules above for the rest."""

    def __init__(self, redis: aioredis.Redis, *, daily_cap: int | None = None) -> None:
        self.redis = redis
        self.daily_cap = daily_cap if daily_cap is not None else DEFAULT_DAILY_CAP
        self._change = redis.register_script(_CHANGE_LUA)
        self._reserve = redis.register_script(_RESERVE_LUA)

    # --- suppression ----------------------------------------------------------------------------

    async def suppress(self, tenant_id: str, number: str, *, reason: str, at: float, source_id: str = "") -> bool:
        """Add ``number`` to the tenant's list; True if it was not on it. ``source_id``: the inbound message."""
        record = json.dumps({"reason": reason, "at": at})
        return await self._run_change("add", tenant_id, number, record, source_id)

    async def unsuppress(self, tenant_id: str, number: str, *, source_id: str = "") -> bool:
        """Remove ``number`` from the tenant's list; True if it was on it."""
        return await self._run_change("remove", tenant_id, number, "", source_id)

    async def _run_change(self, action: str, tenant_id: str, number: str, record: str, source_id: str) -> bool:
        marker = keyword_marker_key(tenant_id, source_id) if source_id else ""
        changed = await self._change(
            keys=[_suppressed_key(tenant_id)],
            args=[action, normalize_e164(number), record, marker, KEYWORD_MEMORY_SECONDS],
        )
        return bool(int(changed))

    async def is_suppressed(self, tenant_id: str, number: str) -> bool:
        exists = self.redis.hexists(_suppressed_key(tenant_id), normalize_e164(number))
        return bool(await cast("Awaitable[bool]", exists))

    async def suppressed(self, tenant_id: str) -> dict[str, dict[str, Any]]:
        """The tenant's whole list: number → {reason, at}."""
        raw = await cast("Awaitable[dict[bytes, bytes]]", self.redis.hgetall(_suppressed_key(tenant_id)))
        return {_text(number): json.loads(value) for number, value in raw.items()}

    # --- frequency cap ----------------------------------------------------------------------------

    async def reserve_send(self, tenant_id: str, number: str, message_id: str, now: float) -> float | None:
        """Count this message against the cap; None if it may go now, else when a slot frees up."""
        result = await self._reserve(
            keys=[cap_key(tenant_id, number)],
            args=[now, CAP_WINDOW_SECONDS, self.daily_cap, message_id],
        )
        until = float(_text(result))
        return None if until == 0 else until

    async def release_send(self, tenant_id: str, number: str, message_id: str) -> None:
        """A reserved message did not go out after all: give its slot back."""
        await self.redis.zrem(cap_key(tenant_id, number), message_id)


def _suppressed_key(tenant_id: str) -> str:
    return f"lily:sms:suppressed:{tenant_id}"


def keyword_marker_key(tenant_id: str, source_id: str) -> str:
    return f"lily:sms:keyword:{tenant_id}:{source_id}"


def cap_key(tenant_id: str, number: str) -> str:
    return f"lily:sms:cap:{tenant_id}:{number}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
