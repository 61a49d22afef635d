"""Chatwoot's webhook signature.

Chatwoot signs each delivery of a webhook that has a secret: ``X-Chatwoot-Timestamp`` is the Unix
time of sending and ``X-Chatwoot-Signature`` is ``sha256=`` + the hex HMAC-SHA256, keyed with the
webhook's secret, of ``"<timestamp>.<raw body>"``. ``X-Chatwoot-Delivery`` is a fresh id per send.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from lily_host import BadSignature

SIGNATURE = "X-Chatwoot-Signature"
TIMESTAMP = "X-Chatwoot-Timestamp"
DELIVERY = "X-Chatwoot-Delivery"
#: A signed delivery older (or further in the future) than this is refused: a replay.
TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None) -> None:
    """Raise BadSignature unless ``body`` was signed with ``secret`` within the tolerance."""
    given = headers.get(SIGNATURE)
    timestamp = headers.get(TIMESTAMP)
    if not given or not timestamp:
        raise BadSignature(
            f"{SIGNATURE} or {TIMESTAMP} is missing: give the account's Chatwoot webhook a secret", missing=True
        )
    if not hmac.compare_digest(given.strip(), sign(secret, timestamp.strip(), body)):
        raise BadSignature(f"{SIGNATURE} does not match the body and the tenant's chatwoot webhook_secret")
    try:
        sent = float(timestamp)
    except ValueError:
        raise BadSignature(f"{TIMESTAMP} is not a Unix time") from None
    if abs((time.time() if now is None else now) - sent) > TOLERANCE_SECONDS:
        raise BadSignature(f"{TIMESTAMP} is more than {TOLERANCE_SECONDS} s away from now: a replay, or a wrong clock")
