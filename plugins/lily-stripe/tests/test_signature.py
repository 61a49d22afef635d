"""Stripe-Signature verification, against headers made by Stripe's own SDK signer."""

from __future__ import annotations

import json

import pytest
import stripe

from lily_host import BadSignature
from lily_stripe.signature import TOLERANCE_SECONDS, signature_header, verify

NOW = 1_760_000_000
SECRET = "whsec_primary"
BODY = json.dumps({"id": "evt_1", "type": "customer.subscription.updated"}).encode()


def stripe_header(body: bytes, secret: str, timestamp: int) -> str:
    """The header exactly as Stripe computes it (the SDK's own test signer)."""
    header: str = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=timestamp)
    return header


def test_a_header_signed_by_stripe_is_accepted() -> None:
    assert verify(BODY, stripe_header(BODY, SECRET, NOW), [SECRET], now=NOW) == NOW


def test_our_signer_agrees_with_stripes() -> None:
    assert signature_header(BODY, [SECRET], NOW) == stripe_header(BODY, SECRET, NOW)


def test_during_a_secret_roll_any_v1_against_any_configured_secret_matches() -> None:
    both = signature_header(BODY, ["whsec_new", "whsec_old"], NOW)
    assert both.count("v1=") == 2
    assert verify(BODY, both, ["whsec_new"], now=NOW) == NOW
    assert verify(BODY, both, ["whsec_old"], now=NOW) == NOW
    assert verify(BODY, stripe_header(BODY, "whsec_old", NOW), ["whsec_new", "whsec_old"], now=NOW) == NOW


def test_v0_signatures_are_ignored() -> None:
    v0_only = stripe_header(BODY, SECRET, NOW).replace("v1=", "v0=")
    with pytest.raises(BadSignature) as caught:
        verify(BODY, v0_only, [SECRET], now=NOW)
    assert caught.value.status == 401


@pytest.mark.parametrize("offset", [-TOLERANCE_SECONDS, TOLERANCE_SECONDS, 0])
def test_timestamps_within_tolerance_either_side_are_accepted(offset: int) -> None:
    assert verify(BODY, stripe_header(BODY, SECRET, NOW + offset), [SECRET], now=NOW) == NOW + offset


@pytest.mark.parametrize(
    ("offset", "words"), [(-(TOLERANCE_SECONDS + 1), "old"), (TOLERANCE_SECONDS + 1, "future")], ids=["old", "future"]
)
def test_timestamps_beyond_tolerance_are_refused(offset: int, words: str) -> None:
    with pytest.raises(BadSignature) as caught:
        verify(BODY, stripe_header(BODY, SECRET, NOW + offset), [SECRET], now=NOW)
    assert caught.value.status == 403
    assert words in caught.value.reason


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (None, "missing"),
        ("", "missing"),
        (f"v1={'a' * 64}", "timestamp"),
        ("t=abc,v1=00", "Unix time"),
        (f"t={NOW}", "no v1"),
        ("garbage", "timestamp"),
    ],
)
def test_missing_or_unreadable_headers_are_401(header: str | None, words: str) -> None:
    with pytest.raises(BadSignature) as caught:
        verify(BODY, header, [SECRET], now=NOW)
    assert caught.value.status == 401
    assert words in caught.value.reason


def test_wrong_secret_is_403() -> None:
    with pytest.raises(BadSignature) as caught:
        verify(BODY, stripe_header(BODY, "whsec_someone_else", NOW), [SECRET], now=NOW)
    assert caught.value.status == 403


def test_tampered_body_is_403() -> None:
    header = stripe_header(BODY, SECRET, NOW)
    with pytest.raises(BadSignature):
        verify(BODY.replace(b"updated", b"deleted"), header, [SECRET], now=NOW)


def test_a_valid_signature_with_a_replaced_timestamp_is_403() -> None:
    header = stripe_header(BODY, SECRET, NOW).replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(BadSignature):
        verify(BODY, header, [SECRET], now=NOW)


def test_no_configured_secret_refuses_everything() -> None:
    with pytest.raises(BadSignature):
        verify(BODY, stripe_header(BODY, SECRET, NOW), [], now=NOW)
