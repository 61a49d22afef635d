"""Normalising Cal.com bodies into the host's Booking, and the signature scheme."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lily_calcom import signature
from lily_calcom.fake import booking_delivery
from lily_calcom.payloads import normalize, parse_delivery
from lily_host import BadSignature, InvalidPayload

SLOT = datetime(2030, 6, 5, 14, 0, tzinfo=UTC)


def booking(**options: Any) -> Any:
    trigger = options.pop("trigger", "BOOKING_CREATED")
    return normalize(parse_delivery(booking_delivery(trigger, uid="bk1", start=SLOT, **options)))


def test_phone_from_cal_com_phone_field_in_national_form() -> None:
    assert booking(customer_phone="(415) 555-2671").customer_phone == "+14155552671"


def test_phone_from_a_custom_field_labelled_phone() -> None:
    extra = {"mobile_number": {"label": "Mobile phone", "value": "+44 20 7946 0958"}}
    assert booking(customer_phone=None, extra_responses=extra).customer_phone == "+442079460958"


def test_phone_from_a_phone_location() -> None:
    extra = {"location": {"label": "location", "value": {"value": "phone", "optionValue": "+1 415 555 2671"}}}
    assert booking(customer_phone=None, extra_responses=extra).customer_phone == "+14155552671"


def test_no_phone_is_none() -> None:
    assert booking(customer_phone=None).customer_phone is None
    assert booking(customer_phone="call me maybe").customer_phone is None


def test_national_numbers_read_in_the_given_region() -> None:
    delivery = parse_delivery(booking_delivery(uid="bk1", start=SLOT, customer_phone="020 7946 0958"))
    assert normalize(delivery, default_region="GB").customer_phone == "+442079460958"


def test_address_prefers_an_address_field_then_the_in_person_location() -> None:
    extra = {"address": {"label": "Service address", "value": "9 Oak Ave"}}
    assert booking(extra_responses=extra).location == "9 Oak Ave"
    assert booking(address="12 Elm St").location == "12 Elm St"


def test_video_locations_are_not_addresses() -> None:
    raw = booking_delivery(uid="bk1", start=SLOT, address=None)
    raw["payload"]["location"] = "integrations:daily"
    assert normalize(parse_delivery(raw)).location is None


def test_service_type_from_a_form_field_else_the_event_type() -> None:
    extra = {"service": {"label": "Service", "value": "Roof Cleaning"}}
    assert booking(extra_responses=extra).service_type == "Roof Cleaning"
    assert booking(event_title="Window Cleaning Estimate").service_type == "Window Cleaning Estimate"


def test_first_and_last_name_variant() -> None:
    extra = {"name": {"label": "your_name", "value": {"firstName": "Ana", "lastName": "Lima"}}}
    assert booking(extra_responses=extra).customer_name == "Ana Lima"


def test_bare_response_values_of_older_senders() -> None:
    extra = {"name": "Old Style", "email": "OLD@Example.com"}
    parsed = booking(extra_responses=extra)
    assert (parsed.customer_name, parsed.customer_email) == ("Old Style", "old@example.com")


def test_timezone_is_the_attendees_then_the_organizers() -> None:
    assert booking(customer_timezone="America/Chicago").timezone == "America/Chicago"
    assert booking(customer_timezone="Mars/Olympus", organizer_timezone="Europe/Paris").timezone == "Europe/Paris"


def test_reschedule_and_cancellation_fields() -> None:
    moved = booking(trigger="BOOKING_RESCHEDULED", reschedule_uid="bk0")
    assert moved.replaces_uid == "bk0"
    cancelled = booking(trigger="BOOKING_CANCELLED", cancellation_reason="moved away")
    assert (cancelled.cancellation_reason, cancelled.replaces_uid) == ("moved away", None)


def test_delivery_id_is_trigger_uid_and_reschedule_uid() -> None:
    moved = parse_delivery(booking_delivery("BOOKING_RESCHEDULED", uid="bk2", reschedule_uid="bk1", start=SLOT))
    assert moved.delivery_id() == "BOOKING_RESCHEDULED:bk2:bk1"
    assert parse_delivery(booking_delivery(uid="bk1", start=SLOT)).delivery_id() == "BOOKING_CREATED:bk1"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"payload": {}},
        {"triggerEvent": "booking_created", "payload": {}},
        {"triggerEvent": "BOOKING_CREATED", "payload": "x"},
        {"triggerEvent": "BOOKING_CREATED", "payload": {"startTime": "2030-06-05T14:00:00Z"}},
    ],
)
def test_malformed_deliveries(body: Any) -> None:
    with pytest.raises(InvalidPayload):
        parse_delivery(body)


def test_end_before_start_is_invalid() -> None:
    raw = booking_delivery(uid="bk1", start=SLOT)
    raw["payload"]["endTime"] = "2030-06-05T13:00:00Z"
    with pytest.raises(InvalidPayload):
        normalize(parse_delivery(raw))


def test_times_without_offset_are_invalid() -> None:
    raw = booking_delivery(uid="bk1", start=SLOT)
    raw["payload"]["startTime"] = "2030-06-05T14:00:00"
    with pytest.raises(InvalidPayload):
        normalize(parse_delivery(raw))


def test_signature_accepts_any_configured_secret() -> None:
    body = b'{"a":1}'
    signature.verify(body, signature.sign(body, "two"), ["one", "two"])
    signature.verify(body, signature.sign(body, "two").upper(), ["two"])


@pytest.mark.parametrize(
    ("header", "missing"),
    [(None, True), ("", True), ("no-secret-provided", True), ("zz" * 32, False), ("abc", False)],
)
def test_signature_refusals(header: str | None, missing: bool) -> None:
    with pytest.raises(BadSignature) as refused:
        signature.verify(b"{}", header, ["secret"])
    assert refused.value.status == (401 if missing else 403)


def test_signature_without_any_secret_configured_is_refused() -> None:
    with pytest.raises(BadSignature, match="CALCOM_WEBHOOK_SECRET"):
        signature.verify(b"{}", signature.sign(b"{}", "x"), [])
