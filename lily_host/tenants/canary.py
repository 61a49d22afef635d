"""The secret-key canary: a value encrypted with ``LILY_SECRET_KEY`` and stored in Redis.

A wrong key used to go unnoticed until a webhook needed a tenant's secret (a 500) or
``tenants rotate-secrets`` died with ``InvalidToken``. The first process to start with an empty
Redis stores the canary; every later start (``lily serve``, ``lily worker``, CLI commands that
touch tenant data) and every ``/readyz`` decrypts it, and a key that cannot is refused with one
line explaining key rotation. ``lily tenants rotate-secrets`` re-encrypts it with the newest key.
"""

from __future__ import annotations

from typing import Any

from lily_host.plugin_api.errors import ConfigurationError
from lily_host.tenants.secret_box import SecretBox

CANARY_KEY = "lily:secret_canary"
PLAINTEXT = "lily secret-key canary v1"

WRONG_KEY = (
    "LILY_SECRET_KEY cannot decrypt the data Lily stored with its earlier key. If you are rotating "
    "keys, set LILY_SECRET_KEY=<new>,<old> (new key first), run `lily tenants rotate-secrets`, then "
    "drop the old key; otherwise set LILY_SECRET_KEY back to the key Lily was started with"
)


async def secret_key_problem(redis: Any, box: SecretBox) -> str | None:
    """None when LILY_SECRET_KEY decrypts the canary (storing one the first time), else why not."""
    raw = await redis.get(CANARY_KEY)
    if raw is None:
        await redis.set(CANARY_KEY, box.encrypt(PLAINTEXT), nx=True)
        raw = await redis.get(CANARY_KEY)
        if raw is None:
            return None
    try:
        plain = box.decrypt(raw.decode())
    except (ConfigurationError, ValueError):
        return WRONG_KEY
    return None if plain == PLAINTEXT else WRONG_KEY


async def require_secret_key(redis: Any, box: SecretBox) -> None:
    """Raise ConfigurationError (one line) when LILY_SECRET_KEY is not the key of the stored data."""
    problem = await secret_key_problem(redis, box)
    if problem is not None:
        raise ConfigurationError(problem)


async def rotate_canary(redis: Any, box: SecretBox) -> None:
    raw = await redis.get(CANARY_KEY)
    if raw is not None:
        await redis.set(CANARY_KEY, box.rotate(raw.decode()))
