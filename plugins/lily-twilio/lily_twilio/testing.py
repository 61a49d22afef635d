"""Helpers for tests that drive lily-twilio's webhooks: forms shaped and signed the way Twilio sends them.

Other plugins' tests can use them too (e.g. "a canceled tenant's missed call schedules no SMS")::

    params = call_form(caller="+15557654321", to="+15551230000", status="no-answer")
    headers = signed_headers(fake.auth_token, "https://lily.test/webhooks/twilio/voice", params)
    await client.post("/webhooks/twilio/voice", data=urlencode(params), headers=headers)
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from twilio.request_validator import RequestValidator

FORM = "application/x-www-form-urlencoded"
ACCOUNT_SID = "AC" + "11" * 16


def signed_headers(auth_token: str, url: str, params: Mapping[str, str]) -> dict[str, str]:
    """Content type and ``X-Twilio-Signature`` for ``params`` posted to the public ``url``."""
    signature = RequestValidator(auth_token).compute_signature(url, dict(params))
    return {"Content-Type": FORM, "X-Twilio-Signature": str(signature)}


def call_form(
    *, caller: str, to: str, status: str = "no-answer", call_sid: str | None = None, **extra: str
) -> dict[str, str]:
    """A voice status callback (``CallStatus``); pass ``DialCallStatus=...`` for a ``<Dial action>``."""
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid or "CA" + secrets.token_hex(16),
        "CallStatus": status,
        "Direction": "inbound",
        "From": caller,
        "To": to,
        **extra,
    }


def message_form(
    *, sender: str, to: str, body: str, message_sid: str | None = None, media: Mapping[str, str] | None = None
) -> dict[str, str]:
    """An inbound SMS (or MMS with ``media``: url → content type)."""
    form = {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": message_sid or ("MM" if media else "SM") + secrets.token_hex(16),
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": str(len(media or {})),
    }
    for index, (url, content_type) in enumerate((media or {}).items()):
        form[f"MediaUrl{index}"] = url
        form[f"MediaContentType{index}"] = content_type
    return form


def status_form(
    *, message_sid: str, status: str, to: str, sender: str, error_code: str | None = None
) -> dict[str, str]:
    """An outbound message status callback."""
    form = {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": message_sid,
        "MessageStatus": status,
        "To": to,
        "From": sender,
    }
    if error_code:
        form["ErrorCode"] = error_code
    return form
