"""Cal.com's webhook signature: ``X-Cal-Signature-256`` = hex HMAC-SHA256 of the exact body."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

from lily_host import BadSignature

HEADER = "X-Cal-Signature-256"
#: What Cal.com sends when the webhook has no secret: such a delivery cannot be trusted.
NO_SECRET = "no-secret-provided"
_HEX = re.compile(r"[0-9a-fA-F]{64}")


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secrets: Iterable[str]) -> None:
    """Accept when the header matches the HMAC of ``body`` under any of ``secrets``; else BadSignature."""
    candidates = [secret for secret in secrets if secret]
    if not candidates:
        raise BadSignature(
            "no Cal.com webhook secret is configured for this tenant: set CALCOM_WEBHOOK_SECRET "
            "or the tenant's calcom webhook_secret, and the same secret on the Cal.com webhook"
        )
    value = (header or "").strip()
    if not value:
        raise BadSignature(f"missing {HEADER} header", missing=True)
    if value == NO_SECRET:
        raise BadSignature(
            f"{HEADER} is {NO_SECRET!r}: the Cal.com webhook has no secret; add the one Lily expects", missing=True
        )
    if not _HEX.fullmatch(value):
        raise BadSignature(f"{HEADER} is not a hex SHA-256 HMAC")
    expected = value.lower()
    # Compare against every candidate (no early exit) so timing does not reveal which secret matched.
    matched = False
    for secret in candidates:
        matched |= hmac.compare_digest(sign(body, secret), expected)
    if not matched:
        raise BadSignature(f"{HEADER} does not match the body: wrong secret or modified payload")
