"""One-time links and OAuth state, kept server-side in Redis with an expiry.

- ``lily:gcal:link:<sha256 of token>``   tenant id: a connect link made by ``lily gcal connect``.
  Works once: opening it consumes it.
- ``lily:gcal:oauth:<sha256 of state>``   ``{"tenant", "code_verifier"}`` of a consent in progress.
  The callback consumes it: a state works once, and only within ``STATE_TTL_SECONDS``.

Key names hold a hash of the token, never the token: key names show up where values do not
(``SCAN``, ``MONITOR``, slow logs, key-space notifications, RDB tooling), and whoever reads a live
link token there could use it.

A connect link is a bearer capability (whoever opens it decides which Google account receives the
tenant's bookings), so links are only ever printed to the operator who asked for one: never put in
logs, task errors or the unauthenticated ``/health``. Those show ``reconnect_hint`` instead.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lily_host import LilyHost

LINK_TTL_SECONDS = 24 * 3600
STATE_TTL_SECONDS = 10 * 60
START_PATH = "/auth/google/start"


def link_key(token: str) -> str:
    return f"lily:gcal:link:{_digest(token)}"


def state_key(state: str) -> str:
    return f"lily:gcal:oauth:{_digest(state)}"


def _digest(token: str) -> str:
    # Tokens are 256-bit random values: a plain hash is enough (nothing to brute-force).
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def connect_link(host: LilyHost, tenant_id: str) -> str:
    """A fresh one-time link that starts the Google consent for ``tenant_id``."""
    token = secrets.token_urlsafe(32)
    await host.redis.set(link_key(token), tenant_id, ex=LINK_TTL_SECONDS)
    return host.public_url(f"{START_PATH}?link={token}")


def reconnect_url(host: LilyHost) -> str:
    """Where a tenant's app reconnects (with the tenant's API key); no secret in it."""
    return host.public_url(START_PATH)


def reconnect_hint(host: LilyHost, tenant_id: str) -> str:
    return f"GET {reconnect_url(host)} with the tenant's API key, or run `lily gcal connect {tenant_id}`"


async def use_link(host: LilyHost, token: str) -> str | None:
    """The tenant a link was made for, consuming the link; None if unknown, used or expired."""
    raw = await host.redis.getdel(link_key(token))
    return None if raw is None else raw.decode()


async def save_state(host: LilyHost, state: str, tenant_id: str, code_verifier: str) -> None:
    record = json.dumps({"tenant": tenant_id, "code_verifier": code_verifier})
    await host.redis.set(state_key(state), record, ex=STATE_TTL_SECONDS)


async def take_state(host: LilyHost, state: str) -> dict[str, Any] | None:
    raw = await host.redis.getdel(state_key(state))
    if raw is None:
        return None
    record: dict[str, Any] = json.loads(raw)
    return record
