"""Console sessions: the admin token is exchanged once for a session cookie; forms carry a CSRF token.

A session is a random id in an HttpOnly, SameSite=Strict cookie (Secure in production); Redis keeps
only its SHA-256 under ``lily:console:session:<hash>`` with the CSRF token, when it was made and a
fingerprint of the admin token it was opened with. A session ends when its owner signs out, after
:data:`IDLE_SECONDS` without a request, :data:`MAX_SECONDS` after sign-in whatever happens, or as
soon as ``LILY_ADMIN_TOKEN`` changes (rotating the token signs every operator out).

The one-click link ``lily dev`` prints holds a one-time token (``lily:console:link:<hash>``, gone
after its first use or :data:`LINK_SECONDS`), never the admin token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from lily_host.operations.audit_log import fingerprint

COOKIE = "lily_console"
#: The pre-sign-in cookie that the sign-in form's hidden field must match (login CSRF).
SIGNIN_COOKIE = "lily_console_signin"
SESSION_PREFIX = "lily:console:session:"
LINK_PREFIX = "lily:console:link:"
IDLE_SECONDS = 2 * 3600
MAX_SECONDS = 12 * 3600
LINK_SECONDS = 15 * 60


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class Session:
    key: str
    csrf: str
    created: float
    admin: str  # fingerprint of the admin token it was opened with

    @property
    def actor(self) -> str:
        return f"console:admin:{self.admin}"

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), self.csrf.encode())


async def open_session(redis: Any, admin_token: str) -> tuple[str, Session]:
    """A new session for the holder of ``admin_token``: (cookie value, session)."""
    sid = secrets.token_urlsafe(32)
    session = Session(_digest(sid), secrets.token_urlsafe(32), time.time(), fingerprint(admin_token))
    record = {"csrf": session.csrf, "created": session.created, "admin": session.admin}
    await redis.set(SESSION_PREFIX + session.key, json.dumps(record), ex=IDLE_SECONDS)
    return sid, session


async def load_session(redis: Any, sid: str | None, admin_token: str | None) -> Session | None:
    """The live session of cookie value ``sid``, its idle timer renewed; None when there is none."""
    if not sid or not admin_token or len(sid) > 100:
        return None
    key = _digest(sid)
    raw = await redis.get(SESSION_PREFIX + key)
    if raw is None:
        return None
    record = json.loads(raw)
    session = Session(key, str(record["csrf"]), float(record["created"]), str(record["admin"]))
    if time.time() - session.created > MAX_SECONDS or session.admin != fingerprint(admin_token):
        await redis.delete(SESSION_PREFIX + key)
        return None
    await redis.expire(SESSION_PREFIX + key, IDLE_SECONDS)
    return session


async def close_session(redis: Any, session: Session) -> None:
    await redis.delete(SESSION_PREFIX + session.key)


async def mint_link_token(redis: Any) -> str:
    token = secrets.token_urlsafe(32)
    await redis.set(LINK_PREFIX + _digest(token), "1", ex=LINK_SECONDS)
    return token


async def use_link_token(redis: Any, token: str) -> bool:
    """True once for a token :func:`mint_link_token` made and that has not expired."""
    if not token or len(token) > 100:
        return False
    return await redis.getdel(LINK_PREFIX + _digest(token)) is not None
