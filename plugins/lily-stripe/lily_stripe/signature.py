"""Stripe's webhook signature scheme: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``.

The signed string is ``b"<t>." + raw body``, HMAC-SHA256 with the endpoint secret, hex-encoded. We
verify it ourselves rather than with ``stripe.Webhook.construct_event`` because that checks one
secret at a time, reads the wall clock instead of the host's, and accepts timestamps from the future.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lily_host import BadSignature

HEADER = "Stripe-Signature"
#: Stripe's own default: a signed delivery is valid for five minutes either side of now.
TOLERANCE_SECONDS = 300
#: The only scheme Stripe signs live events with; ``v0`` appears on test events and is ignored.
SCHEME = "v1"
#: A Unix time in seconds: up to 12 ASCII digits (the year 33658).
_UNIX_TIME = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]


def parse_header(header: str | None) -> SignatureHeader:
    """Split the header into its timestamp and its ``v1`` signatures; BadSignature when unusable."""
    if header is None or not header.strip():
        raise BadSignature(f"missing {HEADER} header", missing=True)
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            # Digits only, and no more than a Unix time has: int() takes "+1_0" and "١٢", and a
            # thousand-digit one overflows the float arithmetic of the age check.
            if not _UNIX_TIME.fullmatch(value):
                raise BadSignature(f"{HEADER} timestamp {value[:20]!r} is not a Unix time", missing=True)
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value.strip().lower())
    if timestamp is None:
        raise BadSignature(f"{HEADER} has no timestamp (t=)", missing=True)
    if not signatures:
        raise BadSignature(f"{HEADER} has no {SCHEME} signature", missing=True)
    return SignatureHeader(timestamp=timestamp, signatures=tuple(signatures))


def compute_signature(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """Accept when any ``v1`` matches any secret and ``t`` is within ``tolerance`` of ``now``.

    Returns the signed timestamp. Raises BadSignature (401 missing/unreadable, 403 wrong or stale).
    """
    parsed = parse_header(header)
    if not secrets:
        raise BadSignature("no STRIPE_WEBHOOK_SECRET is configured")
    matched = False
    # Compare against every pair (no early exit) so timing says nothing about which secret matched.
    for secret in secrets:
        expected = compute_signature(body, secret, parsed.timestamp)
        for candidate in parsed.signatures:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise BadSignature(f"no {SCHEME} signature matches the body with a configured webhook secret")
    age = now - parsed.timestamp
    if age > tolerance:
        raise BadSignature(f"signature timestamp is {int(age)} s old (limit {tolerance} s): a replay?")
    if -age > tolerance:
        raise BadSignature(f"signature timestamp is {int(-age)} s in the future (limit {tolerance} s)")
    return parsed.timestamp


def signature_header(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The header Stripe would send for ``body``: one ``v1`` per secret (several during a roll)."""
    parts = [f"t={timestamp}"]
    parts.extend(f"{SCHEME}={compute_signature(body, secret, timestamp)}" for secret in secrets)
    return ",".join(parts)
