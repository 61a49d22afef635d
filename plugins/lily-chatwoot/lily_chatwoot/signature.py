"""Chatwoot's webhook signature.

Chatwoot signs each delivery of a webhook that has a secret: ``X-Chatwoot-Timestamp`` is the Unix
time of sending and ``X-Chatwoot-Signature`` is ``sha256=`` + the hex HMAC-SHA256, keyed with the
webhook's secret, of ``"<timestamp>.<raw body>"``. ``X-Chatwoot-Delivery`` is a fresh id per send.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping

from lily_host import BadSignature

SIGNATURE = "X-Chatwoot-Signature"
TIMESTAMP = "X-Chatwoot-Timestamp"
DELIVERY = "X-Chatwoot-Delivery"
#: A signed delivery older (or further in the future) than this is refused: a replay.
TOLERANCE_SECONDS = 300
#: A Unix time in seconds: up to 12 ASCII digits. float() takes "nan" (never "too old"), "1e999" and "١٢".
_UNIX_TIME = re.compile(r"[0-9]{1,12}")


#: The one answer to a delivery that cannot be verified, whatever the reason (a wrong signature, an
#: account no tenant has, a tenant without a secret): an unsigned caller learns nothing about tenants.
NO_MATCH = f"{SIGNATURE} does not match the body and the tenant's chatwoot webhook_secret"


def require_headers(headers: Mapping[str, str]) -> None:
    """Raise BadSignature (401) when the signature headers are missing."""
    if not headers.get(SIGNATURE) or not headers.get(TIMESTAMP):
        raise BadSignature(
            f"{SIGNATURE} or {TIMESTAMP} is missing: give the account's Chatwoot webhook a secret", missing=True
        )


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
        raise BadSignature(NO_MATCH)
    if not _UNIX_TIME.fullmatch(timestamp.strip()):
        raise BadSignature(f"{TIMESTAMP} is not a Unix time")
    sent = int(timestamp.strip())
    if abs((time.time() if now is None else now) - sent) > TOLERANCE_SECONDS:
        raise BadSignature(f"{TIMESTAMP} is more than {TOLERANCE_SECONDS} s away from now: a replay, or a wrong clock")
