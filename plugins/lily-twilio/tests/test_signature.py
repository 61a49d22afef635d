"""X-Twilio-Signature on JSON-body requests (``bodySHA256``), against Twilio's published test vector."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import SecretStr

from lily_host import BadSignature
from lily_twilio.settings import TwilioSettings
from lily_twilio.signature import verify_signature

# The vector of twilio-python's own RequestValidator tests (auth token "12345").
AUTH_TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
BODY = b'{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="


def settings() -> TwilioSettings:
    return TwilioSettings(account_sid="AC" + "0" * 32, auth_token=SecretStr(AUTH_TOKEN))


def test_a_body_hash_request_verifies_with_twilios_vector() -> None:
    verify_signature(settings(), f"{URL}&bodySHA256={BODY_HASH}", BODY, {"X-Twilio-Signature": SIGNATURE})


def test_a_changed_body_fails_its_hash_even_with_the_right_signature() -> None:
    tampered = BODY.replace(b"value", b"other")
    with pytest.raises(BadSignature, match="does not match the bodySHA256"):
        verify_signature(settings(), f"{URL}&bodySHA256={BODY_HASH}", tampered, {"X-Twilio-Signature": SIGNATURE})


def test_a_body_hash_request_with_a_wrong_signature_fails() -> None:
    with pytest.raises(BadSignature, match="does not match"):
        verify_signature(
            settings(), f"{URL}&bodySHA256={BODY_HASH}", BODY, {"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}
        )


def test_a_hash_the_signature_does_not_cover_fails() -> None:
    # An attacker swaps body and hash together: the URL with the new hash is not what Twilio signed.
    other = b'{"property": "evil"}'

    url = f"{URL}&bodySHA256={hashlib.sha256(other).hexdigest()}"
    with pytest.raises(BadSignature):
        verify_signature(settings(), url, other, {"X-Twilio-Signature": SIGNATURE})
