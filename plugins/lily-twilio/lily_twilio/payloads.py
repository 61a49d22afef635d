"""Twilio's webhook forms turned into small typed records, and those into Lily's event payloads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lily_host import InvalidPayload
from lily_twilio.settings import to_e164

#: Call outcomes that mean nobody picked up.
MISSED_STATUSES = frozenset({"no-answer", "busy", "failed", "canceled"})
CALL_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress", "completed"} | MISSED_STATUSES)
#: What Twilio puts in ``From`` for callers who hide their number (anonymous, restricted, unknown).
HIDDEN_CALLER_IDS = frozenset({"+266696687", "+86282452253", "+7378742833", "+2562533", "anonymous", "restricted"})
#: Outbound message states a status callback may carry.
MESSAGE_STATUSES = frozenset(
    {"accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled"}
)
MAX_MEDIA = 10


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise InvalidPayload(f"Twilio webhook without {name}")
    return value


def _number(form: Mapping[str, str], name: str) -> str:
    value = _required(form, name)
    try:
        return to_e164(value)
    except ValueError as error:
        raise InvalidPayload(f"{name}: {error}") from error


def textable(number: str) -> str | None:
    """``number`` in E.164 if a text can reach it; None for hidden caller ids, SIP and client ids."""
    if number.strip().lower() in HIDDEN_CALLER_IDS:
        return None
    try:
        return to_e164(number)
    except ValueError:
        return None


@dataclass(frozen=True)
class CallUpdate:
    """One voice callback: a call status callback (CallStatus) or a ``<Dial action>`` (DialCallStatus)."""

    call_sid: str
    caller: str
    business_number: str
    status: str
    dial: bool
    bridged: bool | None

    @property
    def missed(self) -> bool:
        if self.status in MISSED_STATUSES:
            return True
        # A dial that completed without ever connecting the two legs (e.g. the forward target hung up first).
        return self.dial and self.bridged is False

    @property
    def delivery_id(self) -> str:
        return f"{self.call_sid}:{'dial-' if self.dial else ''}{self.status}"

    def event(self) -> dict[str, Any]:
        return {
            "caller": self.caller,
            "business_number": self.business_number,
            "call_sid": self.call_sid,
            "status": self.status,
        }


def parse_call(form: Mapping[str, str]) -> CallUpdate:
    call_sid = _required(form, "CallSid")
    business_number = _number(form, "To")
    dial_status = form.get("DialCallStatus", "").strip().lower()
    status = dial_status or form.get("CallStatus", "").strip().lower()
    if status not in CALL_STATUSES:
        raise InvalidPayload(f"unknown call status {status!r} (expected CallStatus or DialCallStatus)")
    bridged_text = form.get("DialBridged", "").strip().lower()
    bridged = {"true": True, "false": False}.get(bridged_text)
    return CallUpdate(
        call_sid=call_sid,
        caller=form.get("From", "").strip(),
        business_number=business_number,
        status=status,
        dial=bool(dial_status),
        bridged=bridged,
    )


@dataclass(frozen=True)
class InboundMessage:
    message_sid: str
    sender: str
    business_number: str
    body: str
    media: tuple[tuple[str, str], ...]

    def event(self) -> dict[str, Any]:
        return {
            "from": self.sender,
            "to": self.business_number,
            "body": self.body,
            "message_sid": self.message_sid,
            "media": [{"url": url, "content_type": content_type} for url, content_type in self.media],
        }


def parse_inbound_message(form: Mapping[str, str]) -> InboundMessage:
    message_sid = form.get("MessageSid", "").strip() or form.get("SmsSid", "").strip()
    if not message_sid:
        raise InvalidPayload("Twilio webhook without MessageSid")
    try:
        media_count = int(form.get("NumMedia", "0") or "0")
    except ValueError as error:
        raise InvalidPayload("NumMedia is not a number") from error
    if not 0 <= media_count <= MAX_MEDIA:
        raise InvalidPayload(f"NumMedia must be between 0 and {MAX_MEDIA}")
    media = []
    for index in range(media_count):
        url = _required(form, f"MediaUrl{index}")
        media.append((url, form.get(f"MediaContentType{index}", "application/octet-stream").strip()))
    return InboundMessage(
        message_sid=message_sid,
        sender=_number(form, "From"),
        business_number=_number(form, "To"),
        body=form.get("Body", ""),
        media=tuple(media),
    )


@dataclass(frozen=True)
class MessageStatus:
    message_sid: str
    status: str
    error_code: str | None

    @property
    def delivery_id(self) -> str:
        return f"{self.message_sid}:{self.status}"


def parse_message_status(form: Mapping[str, str]) -> MessageStatus:
    message_sid = form.get("MessageSid", "").strip() or form.get("SmsSid", "").strip()
    if not message_sid:
        raise InvalidPayload("Twilio status callback without MessageSid")
    status = (form.get("MessageStatus", "") or form.get("SmsStatus", "")).strip().lower()
    if status not in MESSAGE_STATUSES:
        raise InvalidPayload(f"unknown message status {status!r}")
    error_code = form.get("ErrorCode", "").strip() or None
    if error_code is not None and not (error_code.isascii() and error_code.isdigit()):
        raise InvalidPayload("ErrorCode is not a number")
    return MessageStatus(message_sid, status, error_code)
