"""SMS compliance rules, for every SMS channel: keywords, suppression lists, quiet hours, frequency caps.

- Keywords are read from the whole inbound body, trimmed, case-insensitively: "STOP" is a keyword,
  "STOP please" is not (that is what carriers and CTIA expect).
- Suppression is per tenant: a STOP to one business does not silence another.
- Quiet hours: the federal 8:00-21:00, the tenant's own quiet hours (default 21:00-09:00) and the
  recipient's state rule by area code, the strictest wins (:mod:`lily_host.sms.send_windows`); a message
  due outside them waits for the first allowed minute after.
- Natural-language revocations ("please stop texting me") are opt-outs like STOP
  (:mod:`lily_host.sms.revocation`); every opt-in and opt-out goes to the consent ledger
  (:mod:`lily_host.sms.consent_ledger`).
- The frequency cap bounds non-confirmation messages per recipient per tenant in any 24 hours.

Redis keys (one tenant each, never mixed):

- ``lily:{t:<tenant>}:sms:suppressed``          hash number's keyed hash → JSON {reason, at, number (sealed)}
                                            (lists written before hashing: plain number → {reason, at})
- ``lily:{t:<tenant>}:sms:cap:<hash>``          zset message id → send time (the last 24 h)
- ``lily:{t:<tenant>}:sms:keyword:<message>``   outcome of one inbound keyword message (for redelivery)
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis

from lily_host.plugin_api.key_registry import track_keys_now
from lily_host.plugin_api.key_slots import is_cluster_client, tenant_key
from lily_host.plugin_api.validators import normalize_e164
from lily_host.sms.consent_ledger import LEDGER_LIMIT, ConsentSource, consent_entry, ledger_key, source_of
from lily_host.sms.send_windows import next_allowed, rules_for

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant
    from lily_host.tenants.customer_pii import Pii

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


def in_quiet_hours(tenant: Tenant, when: float, timezone: str | None = None, number: str | None = None) -> bool:
    return quiet_hours_end(tenant, when, timezone, number) is not None


def quiet_hours_end(
    tenant: Tenant, when: float, timezone: str | None = None, number: str | None = None
) -> float | None:
    """If ``when`` is outside the hours a text to ``number`` may go, the first allowed moment after; else None.

    The federal window, the tenant's quiet hours and the recipient's state rule (by area code) all
    apply, the strictest wins (:mod:`lily_host.sms.send_windows`). ``timezone`` is the recipient's
    (IANA), when a provider told us; else the area code's zone, else the tenant's. Computed with
    zoneinfo, so it stays right across DST changes.
    """
    allowed = next_allowed(rules_for(tenant, number, timezone), when)
    if allowed is None:
        # No allowed minute within a week (a tenant whose quiet hours cover the whole state window):
        # look again in a day rather than never.
        return when + 86400.0
    return None if allowed <= when else allowed


# --- suppression and caps ---------------------------------------------------------------------------

# Add or remove a number, remembering the outcome under the inbound message id so that a redelivered
# keyword gives the same answer (1 = the list changed, 0 = it already was that way). The consent
# ledger entry (ARGV[6], a JSON object without its closing brace) is appended in the same step, so a
# redelivery neither changes the list twice nor records the request twice. The marker (ARGV[4]) is a
# key of the tenant's slot, like the list. Returns 0/1 (changed), or 2/3 for a redelivery (marker
# seen). On a Redis Cluster the ledger (a per-number key, another slot) is not passed (ARGV[6] '')
# and the caller appends to it in the next step, unless the marker said redelivery.
_CHANGE_LUA = """
if ARGV[4] ~= '' then
  local seen = redis.call('GET', ARGV[4])
  if seen then return tonumber(seen) + 2 end
end
-- ARGV[8]: the plain number, when entries are keyed by its hash (lists written before hashing).
local changed
if ARGV[1] == 'add' then
  if ARGV[8] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[8]) == 1 then
    changed = 0
  else
    changed = redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
  end
else
  changed = redis.call('HDEL', KEYS[1], ARGV[2])
  if ARGV[8] ~= '' and redis.call('HDEL', KEYS[1], ARGV[8]) == 1 then changed = 1 end
end
if ARGV[4] ~= '' then redis.call('SET', ARGV[4], changed, 'EX', ARGV[5]) end
if ARGV[6] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[6] .. ',"changed":' .. (changed == 1 and 'true' or 'false') .. '}')
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[7]), -1)
end
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

    def __init__(self, redis: aioredis.Redis, *, daily_cap: int | None = None, pii: Pii | None = None) -> None:
        self.redis = redis
        self.daily_cap = daily_cap if daily_cap is not None else DEFAULT_DAILY_CAP
        #: Without it (a bare Compliance in a unit test) nothing is written to the consent ledger.
        self.pii = pii
        self._change = redis.register_script(_CHANGE_LUA)
        self._reserve = redis.register_script(_RESERVE_LUA)

    # --- suppression ----------------------------------------------------------------------------

    async def suppress(
        self,
        tenant_id: str,
        number: str,
        *,
        reason: str,
        at: float,
        source_id: str = "",
        source: ConsentSource | None = None,
    ) -> bool:
        """Add ``number`` to the tenant's list; True if it was not on it. ``source_id``: the inbound message.

        The opt-out is recorded in the consent ledger with ``source`` (else the one ``reason`` implies).
        """
        record: dict[str, Any] = {"reason": reason, "at": at}
        if self.pii is not None:
            record["number"] = self.pii.seal(normalize_e164(number))
        entry = consent_entry(tenant_id, "opt_out", source or source_of(reason), reason, at)
        return await self._run_change("add", tenant_id, number, json.dumps(record), source_id, entry)

    async def unsuppress(
        self,
        tenant_id: str,
        number: str,
        *,
        source_id: str = "",
        at: float | None = None,
        source: ConsentSource = "manual",
        detail: str = "",
    ) -> bool:
        """Remove ``number`` from the tenant's list; True if it was on it. Recorded as an opt-in."""
        when = time.time() if at is None else at
        entry = consent_entry(tenant_id, "opt_in", source, detail or source, when)
        return await self._run_change("remove", tenant_id, number, "", source_id, entry)

    async def _run_change(
        self, action: str, tenant_id: str, number: str, record: str, source_id: str, entry: str
    ) -> bool:
        normalized = normalize_e164(number)
        field = await self._field(normalized)
        marker = keyword_marker_key(tenant_id, source_id) if source_id else ""
        ledger = ledger_key(field) if self.pii is not None else ""
        if marker:
            await track_keys_now(self.redis, tenant_id, marker, ttl=KEYWORD_MEMORY_SECONDS)
        cluster = is_cluster_client(self.redis)
        result = int(
            await self._change(
                keys=[_suppressed_key(tenant_id), (ledger if not cluster else "") or _suppressed_key(tenant_id)],
                args=[
                    action,
                    field,
                    record,
                    marker,
                    KEYWORD_MEMORY_SECONDS,
                    entry if ledger and not cluster else "",
                    LEDGER_LIMIT,
                    normalized if field != normalized else "",
                ],
            )
        )
        changed = result % 2
        if cluster and ledger and result < 2:
            # The ledger's own step (its key is per number, across tenants: another slot).
            pipe = self.redis.pipeline(transaction=False)
            pipe.rpush(ledger, entry + ',"changed":' + ("true" if changed else "false") + "}")
            pipe.ltrim(ledger, -LEDGER_LIMIT, -1)
            await pipe.execute()
        return bool(changed)

    async def _field(self, number: str) -> str:
        """Where a number is kept: its keyed hash (no plaintext number at rest), or itself without PII support."""
        normalized = normalize_e164(number)
        return await self.pii.digest(normalized) if self.pii is not None else normalized

    async def is_suppressed(self, tenant_id: str, number: str) -> bool:
        normalized = normalize_e164(number)
        fields = list(dict.fromkeys((await self._field(normalized), normalized)))
        found = await cast("Awaitable[list[bytes | None]]", self.redis.hmget(_suppressed_key(tenant_id), fields))
        return any(value is not None for value in found)

    async def suppressed(self, tenant_id: str) -> dict[str, dict[str, Any]]:
        """The tenant's whole list: number → {reason, at} (numbers opened from their sealed copy)."""
        raw = await cast("Awaitable[dict[bytes, bytes]]", self.redis.hgetall(_suppressed_key(tenant_id)))
        result: dict[str, dict[str, Any]] = {}
        for field, value in raw.items():
            record = json.loads(value)
            sealed = record.pop("number", None)
            number = self.pii.open(sealed) if sealed and self.pii is not None else _text(field)
            result[number] = record
        return result

    # --- frequency cap ----------------------------------------------------------------------------

    async def reserve_send(self, tenant_id: str, number: str, message_id: str, now: float) -> float | None:
        """Count this message against the cap; None if it may go now, else when a slot frees up."""
        key = cap_key(tenant_id, await self._field(number))
        await track_keys_now(self.redis, tenant_id, key, ttl=CAP_WINDOW_SECONDS * 2)
        result = await self._reserve(
            keys=[key],
            args=[now, CAP_WINDOW_SECONDS, self.daily_cap, message_id],
        )
        until = float(_text(result))
        return None if until == 0 else until

    async def release_send(self, tenant_id: str, number: str, message_id: str) -> None:
        """A reserved message did not go out after all: give its slot back."""
        await self.redis.zrem(cap_key(tenant_id, await self._field(number)), message_id)


def _suppressed_key(tenant_id: str) -> str:
    return tenant_key(tenant_id, "sms", "suppressed")


def keyword_marker_key(tenant_id: str, source_id: str) -> str:
    return tenant_key(tenant_id, "sms", "keyword", source_id)


def cap_key(tenant_id: str, number_hash: str) -> str:
    return tenant_key(tenant_id, "sms", "cap", number_hash)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
