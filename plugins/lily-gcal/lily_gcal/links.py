"""One-time links and OAuth state, kept server-side in Redis with an expiry.

- ``lily:gcal:link:<token>``   tenant id: a connect link made by ``lily gcal connect``. Works once:
  opening it consumes it.
- ``lily:gcal:oauth:<state>``   ``{"tenant", "code_verifier"}`` of a consent in progress. The callback
  consumes it: a state works once, and only within ``STATE_TTL_SECONDS``.

A connect link is a bearer capability (whoever opens it decides which Google account receives the
tenant's bookings), so links are only ever printed to the operator who asked for one: never put in
logs, task errors or the unauthenticated ``/health``. Those show ``reconnect_hint`` instead.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lily_host import LilyHost

LINK_TTL_SECONDS = 24 * 3600
STATE_TTL_SECONDS = 10 * 60
START_PATH = "/auth/google/start"


async def connect_link(host: LilyHost, tenant_id: str) -> str:
    """A fresh one-time link that starts the Google consent for ``tenant_id``."""
    token = secrets.token_urlsafe(32)
    await host.redis.set(f"lily:gcal:link:{token}", tenant_id, ex=LINK_TTL_SECONDS)
    return host.public_url(f"{START_PATH}?link={token}")


def reconnect_url(host: LilyHost) -> str:
    """Where a tenant's app reconnects (with the tenant's API key); no secret in it."""
    return host.public_url(START_PATH)


def reconnect_hint(host: LilyHost, tenant_id: str) -> str:
    return f"GET {reconnect_url(host)} with the tenant's API key, or run `lily gcal connect {tenant_id}`"


async def use_link(host: LilyHost, token: str) -> str | None:
    """The tenant a link was made for, consuming the link; None if unknown, used or expired."""
    raw = await host.redis.getdel(f"lily:gcal:link:{token}")
    return None if raw is None else raw.decode()


async def save_state(host: LilyHost, state: str, tenant_id: str, code_verifier: str) -> None:
    record = json.dumps({"tenant": tenant_id, "code_verifier": code_verifier})
    await host.redis.set(f"lily:gcal:oauth:{state}", record, ex=STATE_TTL_SECONDS)


async def take_state(host: LilyHost, state: str) -> dict[str, Any] | None:
    raw = await host.redis.getdel(f"lily:gcal:oauth:{state}")
    if raw is None:
        return None
    record: dict[str, Any] = json.loads(raw)
    return record
