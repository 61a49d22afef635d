"""The consent ledger: every opt-in and opt-out of a phone number, per tenant, with its source and time.

Written by :class:`lily_host.sms.compliance.Compliance` in the same Redis step as the suppression list
change it records (so a redelivered STOP is recorded once). One list per phone number, across
tenants, under the number's keyed hash (:mod:`lily_host.tenants.customer_pii`), so the ledger holds no plaintext
number and ``lily sms consent NUMBER`` / ``GET /api/sms/consent/<number>`` can export everything
about one person at once.

Kept on purpose after a tenant is erased, like the STOP list: it is the proof that an opt-out was
honoured, and holds nothing but the tenant id, what happened, where it came from and when.

Entry: ``{"tenant", "action": "opt_out"|"opt_in", "source", "detail", "at", "changed"}``; ``source``:

- ``keyword``  a STOP/START word (``detail``: the word)
- ``phrase``   a natural-language revocation ("please stop texting me"), FCC 24-18
- ``api``      the admin API
- ``carrier``  the carrier refused the number (Twilio error 21610)
- ``manual``   ``lily sms suppress`` / ``unsuppress``

``changed`` is false when the request found the number already in that state.

Redis keys: ``lily:sms:consent:<keyed hash>`` list of JSON entries, oldest first (last 1000 kept).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from lily_host.plugin_api.redis_typing import awaited
from lily_host.plugin_api.validators import normalize_e164

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from lily_host.tenants.customer_pii import Pii

ConsentSource = Literal["keyword", "phrase", "api", "carrier", "manual"]
SOURCES: frozenset[str] = frozenset({"keyword", "phrase", "api", "carrier", "manual"})
#: Entries kept per number (a number that flips consent thousands of times is not a person).
LEDGER_LIMIT = 1000


def ledger_key(digest: str) -> str:
    return f"lily:sms:consent:{digest}"


def source_of(reason: str) -> ConsentSource:
    """The ledger source a suppression reason implies (``keyword:STOP`` → keyword, ``provider:21610`` → carrier)."""
    prefix = reason.split(":", 1)[0]
    if prefix == "provider":
        return "carrier"
    if prefix in SOURCES:
        return prefix  # type: ignore[return-value]  # checked against SOURCES just above
    return "manual"


def consent_entry(tenant_id: str, action: str, source: str, detail: str, at: float) -> str:
    """A ledger entry as JSON without its closing brace (the Lua step appends ``changed``)."""
    text = json.dumps({"tenant": tenant_id, "action": action, "source": source, "detail": detail, "at": at})
    return text[:-1]


async def consent_history(
    redis: aioredis.Redis, pii: Pii, number: str, tenant: str | None = None
) -> list[dict[str, Any]]:
    """Every ledger entry of ``number`` (oldest first), or only one tenant's; ValueError for a bad number."""
    digest = await pii.digest(normalize_e164(number))
    raw = await awaited(redis.lrange(ledger_key(digest), 0, -1))
    entries = [json.loads(item) for item in raw]
    return [entry for entry in entries if tenant is None or entry.get("tenant") == tenant]
