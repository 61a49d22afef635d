"""``X-Twilio-Signature`` checks, done by the SDK's own RequestValidator.

Form webhooks are signed over the URL plus the sorted form fields; JSON-body webhooks over the URL
alone, which then carries ``bodySHA256`` (the hex SHA-256 of the raw body), checked here too.

The URL Twilio signed is the public one it called (LILY_PUBLIC_URL + path + query), never what
the app sees behind a TLS-terminating proxy; ``WebhookRequest.public_url`` is exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import (
    HMAC_SHA1,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from werkzeug.datastructures import Headers

from lily_host import BadSignature, RequestHeaders, parse_form
from lily_twilio.settings import TwilioSettings

#: Query parameter of JSON-body webhooks: the hex SHA-256 of the raw body.
BODY_HASH_PARAMETER = "bodySHA256"
_MISMATCH = (
    f"{SIGNATURE_HEADER} does not match; check TWILIO_AUTH_TOKEN and that LILY_PUBLIC_URL is the URL "
    "configured in Twilio"
)


class FormParams(dict[str, list[str]]):
    """Every value of every form field: Twilio signs repeated fields too (RequestValidator reads ``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def form_params(body: bytes) -> FormParams:
    return FormParams(parse_form(body))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    # The pipeline's RequestHeaders (and Werkzeug's Headers) already match names case-insensitively:
    # an absent header needs no second, linear look. Plain mappings (tests, tools) get one.
    if value is None and not isinstance(headers, RequestHeaders | Headers):
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_signature(
    settings: TwilioSettings | None,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    params: Mapping[str, list[str]] | None = None,
) -> None:
    """Raise BadSignature unless ``headers`` carry a valid Twilio signature of ``url`` + form ``body``."""
    if settings is None:
        raise BadSignature("Twilio is not configured here (set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)")
    signature = _header(headers, SIGNATURE_HEADER)
    if not signature:
        raise BadSignature(f"missing {SIGNATURE_HEADER} header", missing=True)
    algorithm = get_signature_algorithm(_header(headers, SIGNATURE_SETTINGS_HEADER))
    secret = settings.auth_token
    if algorithm != HMAC_SHA1 and settings.webhook_shared_key is not None:
        secret = settings.webhook_shared_key
    validator = RequestValidator(secret.get_secret_value())
    if BODY_HASH_PARAMETER in url:
        body_hash = parse_qs(urlsplit(url).query).get(BODY_HASH_PARAMETER)
        if body_hash:
            _verify_body_hash_request(validator, url, body, body_hash[0], signature, algorithm)
            return
    signed = FormParams(params) if params is not None else form_params(body)
    # The URL exactly as configured is what Twilio signs almost always: one HMAC. validate() then
    # covers the URL with or without an explicit port.
    if hmac.compare_digest(validator.compute_signature(url, signed, algorithm), signature):
        return
    if not validator.validate(url, signed, signature, algorithm):
        raise BadSignature(_MISMATCH)


def _verify_body_hash_request(
    validator: RequestValidator, url: str, body: bytes, body_hash: str, signature: str, algorithm: str
) -> None:
    """A JSON-body request: Twilio signs the URL alone (``bodySHA256`` in its query) and the query
    carries the SHA-256 of the raw body. Both are checked here, on the bytes as they arrived (the
    SDK's validate() checks the hash only when handed the body as text, never a parsed form)."""
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), body_hash.strip().lower()):
        raise BadSignature(f"the body does not match the {BODY_HASH_PARAMETER} in the URL Twilio signed")
    if not validator.validate(url, {}, signature, algorithm):
        raise BadSignature(_MISMATCH)


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The signature Twilio would send for ``params`` posted to ``url`` (for simulations and tests)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))
