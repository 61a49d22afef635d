"""Cal.com webhook bodies: parsing and normalisation into the host's Booking.

A delivery is ``{"triggerEvent", "createdAt", "payload"}`` (Cal.com's scheduled
``MEETING_STARTED`` / ``MEETING_ENDED`` are flat: the booking's fields beside ``triggerEvent``).
Cal.com's booking form answers live in
``payload.responses`` as ``{"<field>": {"label": ..., "value": ...}}`` (older senders put the bare
value there); the phone number and the service address can come from several fields depending on
how the event type's form is set up, so each is looked up in a documented order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import ValidationError

from lily_host import Booking, InvalidPayload

#: Cal.com triggers Lily acts on, and the domain event each becomes.
BOOKING_EVENTS: dict[str, str] = {
    "BOOKING_CREATED": "booking.created",
    "BOOKING_RESCHEDULED": "booking.rescheduled",
    "BOOKING_CANCELLED": "booking.cancelled",
}

#: Form fields that may hold the customer's phone number, in the order they are tried.
PHONE_FIELDS = ("attendeePhoneNumber", "phone", "phoneNumber", "phone_number", "mobile", "smsReminderNumber")
#: Form fields that may hold the service address, in the order they are tried.
ADDRESS_FIELDS = ("address", "service_address", "serviceAddress", "property_address", "propertyAddress")
#: Form fields that may name the service the customer wants.
SERVICE_FIELDS = ("service", "service_type", "serviceType", "services")
#: Location types whose ``optionValue`` is the place the meeting happens.
IN_PERSON_TYPES = ("attendeeInPerson", "inPerson", "attendeeAddress")
_TRIGGER = re.compile(r"[A-Z][A-Z0-9_]{1,63}")


@dataclass(frozen=True)
class Delivery:
    """One Cal.com webhook delivery, checked for shape but not yet trusted (signature comes after)."""

    trigger: str
    created_at: float | None
    payload: Mapping[str, Any]

    @property
    def event(self) -> str | None:
        """The domain event this delivery becomes, or None for triggers Lily ignores."""
        return BOOKING_EVENTS.get(self.trigger)

    @property
    def uid(self) -> str | None:
        return _text(self.payload.get("uid"))

    @property
    def reschedule_uid(self) -> str | None:
        return _text(self.payload.get("rescheduleUid"))

    @property
    def organizer_email(self) -> str | None:
        organizer = self.payload.get("organizer")
        if isinstance(organizer, Mapping):
            return _text(organizer.get("email"))
        return None

    @property
    def event_type_id(self) -> str | None:
        value = self.payload.get("eventTypeId")
        if isinstance(value, bool) or value is None:
            return None
        text = str(value).strip()
        return text if text.isascii() and text.isdigit() else None

    def delivery_id(self) -> str:
        """Cal.com signs no timestamp, so a replay is only caught by this: trigger + uid (+ rescheduleUid)."""
        parts = [self.trigger, self.uid or ""]
        if self.reschedule_uid:
            parts.append(self.reschedule_uid)
        return ":".join(parts)


def parse_delivery(data: Any) -> Delivery:
    if not isinstance(data, Mapping):
        raise InvalidPayload("a Cal.com webhook body is a JSON object")
    trigger = data.get("triggerEvent")
    if not isinstance(trigger, str) or not _TRIGGER.fullmatch(trigger):
        raise InvalidPayload(
            "triggerEvent is missing: this is not a Cal.com webhook body (custom payload templates are not supported)"
        )
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        if trigger in BOOKING_EVENTS:
            raise InvalidPayload("payload must be a JSON object")
        # Triggers Lily ignores may come in any shape: Cal.com's scheduled MEETING_STARTED and
        # MEETING_ENDED put the booking's fields at the top level, with no payload object. They are
        # still verified and answered 200; their top-level fields stand in for the payload (so an
        # eventTypeId there still finds the tenant whose secret signed it).
        payload = {key: value for key, value in data.items() if key not in ("triggerEvent", "createdAt", "payload")}
    if trigger in BOOKING_EVENTS and not _text(payload.get("uid")):
        raise InvalidPayload(f"{trigger} without payload.uid")
    return Delivery(trigger=trigger, created_at=_timestamp(data.get("createdAt")), payload=payload)


def normalize(delivery: Delivery, *, default_region: str = "US") -> Booking:
    """The Booking a booking delivery describes. InvalidPayload when a required field is missing or bad."""
    payload = delivery.payload
    uid = delivery.uid
    if uid is None:
        raise InvalidPayload("payload.uid is missing")
    start = _datetime(payload.get("startTime"), "startTime")
    end = _datetime(payload.get("endTime"), "endTime")
    if end < start:
        raise InvalidPayload("payload.endTime is before payload.startTime")
    responses = payload.get("responses")
    answers: Mapping[str, Any] = responses if isinstance(responses, Mapping) else {}
    attendee = _first_attendee(payload)
    raw_organizer = payload.get("organizer")
    organizer: Mapping[str, Any] = raw_organizer if isinstance(raw_organizer, Mapping) else {}
    try:
        return Booking(
            uid=uid,
            provider="calcom",
            start=start,
            end=end,
            timezone=_zone(attendee.get("timeZone")) or _zone(organizer.get("timeZone")) or "UTC",
            title=_text(payload.get("title")) or "",
            service_type=_service_type(payload, answers),
            customer_name=_customer_name(answers, attendee),
            customer_email=_email(_answer(answers, "email")) or _email(attendee.get("email")),
            customer_phone=_phone(payload, answers, attendee, default_region),
            location=_address(payload, answers),
            notes=_text(payload.get("additionalNotes")) or _text(_answer(answers, "notes")),
            replaces_uid=delivery.reschedule_uid if delivery.trigger == "BOOKING_RESCHEDULED" else None,
            cancellation_reason=_text(payload.get("cancellationReason")),
            occurred_at=delivery.created_at,
            organizer_email=delivery.organizer_email,
            event_type_id=delivery.event_type_id,
        )
    except ValidationError as error:
        raise InvalidPayload(f"booking cannot be read: {error.errors()[0]['msg']}") from error


# --- field helpers -------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _timestamp(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            return _parse_iso(value).timestamp()
        except ValueError:
            return None
    return None


def _parse_iso(value: str) -> datetime:
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        raise ValueError("no UTC offset")
    return moment


def _datetime(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidPayload(f"payload.{name} is missing")
    try:
        return _parse_iso(value)
    except ValueError as error:
        raise InvalidPayload(f"payload.{name} is not an ISO 8601 time with offset: {value!r}") from error


def _zone(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return text


def _answer(answers: Mapping[str, Any], key: str) -> Any:
    """A form answer: ``{"label", "value"}`` in current payloads, the bare value in older ones."""
    raw = answers.get(key)
    if isinstance(raw, Mapping) and ("value" in raw or "label" in raw):
        return raw.get("value")
    return raw


def _first_attendee(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    attendees = payload.get("attendees")
    if isinstance(attendees, list) and attendees and isinstance(attendees[0], Mapping):
        return attendees[0]
    return {}


def _customer_name(answers: Mapping[str, Any], attendee: Mapping[str, Any]) -> str:
    value = _answer(answers, "name")
    if isinstance(value, Mapping):  # the "first and last name" variant of Cal.com's name field
        parts = [_text(value.get("firstName")), _text(value.get("lastName"))]
        joined = " ".join(part for part in parts if part)
        if joined:
            return joined
    return _text(value) or _text(attendee.get("name")) or ""


def _email(value: Any) -> str | None:
    text = _text(value)
    if text and "@" in text and " " not in text:
        return text.lower()
    return None


def _phone(
    payload: Mapping[str, Any], answers: Mapping[str, Any], attendee: Mapping[str, Any], region: str
) -> str | None:
    candidates: list[Any] = [_answer(answers, key) for key in PHONE_FIELDS]
    candidates.append(attendee.get("phoneNumber"))
    location = _answer(answers, "location")
    if isinstance(location, Mapping) and location.get("value") in ("phone", "attendeePhone", "userPhone"):
        candidates.append(location.get("optionValue"))
    # A custom form field whose label says "phone" (e.g. "Mobile phone") is the last resort.
    for key, raw in answers.items():
        if key in PHONE_FIELDS or not isinstance(raw, Mapping):
            continue
        label = str(raw.get("label") or key).lower()
        if "phone" in label or "phone" in key.lower():
            candidates.append(raw.get("value"))
    for candidate in candidates:
        number = to_e164(candidate, region)
        if number:
            return number
    return None


def to_e164(value: Any, region: str = "US") -> str | None:
    """A phone number in E.164, or None when ``value`` cannot be one."""
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    # "Possible" (right length for the country), as lily_host.sms.compliance checks it: a stricter check
    # would drop real numbers that libphonenumber's tables do not know yet.
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _address(payload: Mapping[str, Any], answers: Mapping[str, Any]) -> str | None:
    for key in ADDRESS_FIELDS:
        text = _text(_answer(answers, key))
        if text:
            return text
    location = _answer(answers, "location")
    if isinstance(location, Mapping) and location.get("value") in IN_PERSON_TYPES:
        text = _text(location.get("optionValue"))
        if text:
            return text
    text = _text(payload.get("location"))
    # Video links and Cal.com integration ids ("integrations:daily") are not addresses.
    if text and not text.startswith(("integrations:", "http://", "https://")) and not to_e164(text):
        return text
    return None


def _service_type(payload: Mapping[str, Any], answers: Mapping[str, Any]) -> str:
    for key in SERVICE_FIELDS:
        value = _answer(answers, key)
        if isinstance(value, list):
            joined = ", ".join(str(item).strip() for item in value if str(item).strip())
            if joined:
                return joined
        text = _text(value)
        if text:
            return text
    return (
        _text(payload.get("eventTitle")) or _text(payload.get("type")) or _text(payload.get("title")) or "Appointment"
    )
