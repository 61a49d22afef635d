"""Signed Cal.com deliveries against the real routes: verification, tenants, dedupe, ordering."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from lily_calcom.fake import booking_delivery, encode, signed
from lily_calcom.webhooks import IGNORED
from lily_host import BookingStore
from lily_host.testing import Harness

SLOT = datetime(2030, 6, 5, 14, 0, tzinfo=UTC)
BRAVO_SECRET = "whsec-bravo-own"


async def due(lily: Harness) -> int:
    """Tasks due now or later, other than the appointment reminders a booking plans for its future."""
    return len([task for task in await lily.host.queue.list_tasks("due", 1000) if task.type != "reminders.send"])


async def state(lily: Harness, uid: str, tenant: str = "acme") -> Any:
    return await BookingStore(lily.host.redis, pii=lily.host.pii).state(tenant, uid)


async def test_signed_booking_created_becomes_a_recorded_booking(lily: Harness, deliver: Any) -> None:
    response = await deliver(booking_delivery(uid="bk1", start=SLOT, minutes=45))
    assert response.status_code == 200
    assert await response.get_json() == {"ok": True, "event": "booking.created", "uid": "bk1"}
    await lily.run_due()
    recorded = await state(lily, "bk1")
    assert recorded.status == "confirmed"
    booking = recorded.booking
    assert (booking.start, booking.end) == (SLOT, SLOT + timedelta(minutes=45))
    assert booking.timezone == "America/New_York"
    assert booking.service_type == "Pressure Washing Estimate"
    assert (booking.customer_name, booking.customer_email, booking.customer_phone) == (
        "Jane Doe",
        "jane@example.com",
        "+15551234567",
    )
    assert booking.location == "12 Elm St, Springfield"


async def test_wrong_secret_is_403_and_stores_nothing(lily: Harness, deliver: Any) -> None:
    response = await deliver(booking_delivery(uid="bk1", start=SLOT), secret="not-the-secret")
    assert response.status_code == 403
    assert (await response.get_json())["error"] == "bad_signature"
    assert await due(lily) == 0
    assert await state(lily, "bk1") is None


async def test_tampered_body_is_403(lily: Harness) -> None:
    raw, headers = signed(booking_delivery(uid="bk1", start=SLOT), "whsec-platform-calcom")
    tampered = raw.replace(b"Jane Doe", b"Mallory X")
    response = await lily.client.post("/webhooks/calcom", data=tampered, headers=headers)
    assert response.status_code == 403
    assert await due(lily) == 0


async def test_unsigned_delivery_is_401(lily: Harness) -> None:
    raw = encode(booking_delivery(uid="bk1", start=SLOT))
    response = await lily.client.post("/webhooks/calcom", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert "X-Cal-Signature-256" in (await response.get_json())["message"]
    assert await due(lily) == 0


async def test_no_secret_provided_is_refused(lily: Harness, deliver: Any) -> None:
    response = await deliver(booking_delivery(uid="bk1", start=SLOT), secret=None)
    assert response.status_code == 401
    assert "no-secret-provided" in (await response.get_json())["message"]
    assert await due(lily) == 0


async def test_duplicate_delivery_is_2xx_and_schedules_nothing_new(lily: Harness, deliver: Any) -> None:
    body = booking_delivery(uid="bk1", start=SLOT)
    assert (await deliver(body)).status_code == 200
    assert await due(lily) == 1
    assert (await deliver(body)).status_code == 200
    assert await due(lily) == 1


async def test_a_reschedule_of_the_same_uid_is_not_a_duplicate(lily: Harness, deliver: Any) -> None:
    await deliver(booking_delivery("BOOKING_RESCHEDULED", uid="bk2", reschedule_uid="bk1", start=SLOT))
    await deliver(booking_delivery("BOOKING_RESCHEDULED", uid="bk2", reschedule_uid="bk0", start=SLOT))
    assert await due(lily) == 2


async def test_reschedule_links_the_new_uid_to_the_original(lily: Harness, deliver: Any) -> None:
    await deliver(booking_delivery(uid="bk1", start=SLOT))
    moved = SLOT + timedelta(days=1)
    response = await deliver(booking_delivery("BOOKING_RESCHEDULED", uid="bk2", reschedule_uid="bk1", start=moved))
    assert (await response.get_json())["event"] == "booking.rescheduled"
    await lily.run_due()
    for uid in ("bk1", "bk2"):
        current = await state(lily, uid)
        assert (current.root_uid, current.current_uid, current.status) == ("bk1", "bk2", "confirmed")
        assert current.booking.start == moved


async def test_out_of_order_deliveries_end_in_the_right_state(lily: Harness, deliver: Any) -> None:
    moved = SLOT + timedelta(days=1)
    # The reschedule arrives first, then the cancellation Cal.com sent for the old slot, then the creation.
    await deliver(booking_delivery("BOOKING_RESCHEDULED", uid="bk2", reschedule_uid="bk1", start=moved))
    await deliver(booking_delivery("BOOKING_CANCELLED", uid="bk1", start=SLOT))
    await deliver(booking_delivery("BOOKING_CREATED", uid="bk1", start=SLOT))
    await lily.run_due()
    current = await state(lily, "bk1")
    assert (current.current_uid, current.status, current.booking.start) == ("bk2", "confirmed", moved)
    # Now the customer cancels the new slot; a late duplicate of the old creation changes nothing.
    await deliver(booking_delivery("BOOKING_CANCELLED", uid="bk2", start=moved, cancellation_reason="sold house"))
    await deliver(booking_delivery("BOOKING_CREATED", uid="bk1", start=SLOT))
    await lily.run_due()
    current = await state(lily, "bk2")
    assert (current.current_uid, current.status) == ("bk2", "cancelled")
    assert current.booking.cancellation_reason == "sold house"


async def test_event_type_wins_over_organizer(lily: Harness, deliver: Any) -> None:
    body = booking_delivery(uid="bk1", start=SLOT, organizer_email="bravo@bravo.test", event_type_id=7)
    assert (await deliver(body)).status_code == 200
    await lily.run_due()
    assert await state(lily, "bk1", tenant="acme") is not None
    assert await state(lily, "bk1", tenant="bravo") is None


async def test_organizer_email_resolves_case_insensitively(lily: Harness, deliver: Any) -> None:
    body = booking_delivery(uid="bk1", start=SLOT, organizer_email="OWNER@acme.TEST", event_type_id=99)
    assert (await deliver(body)).status_code == 200
    await lily.run_due()
    assert await state(lily, "bk1") is not None


async def test_unknown_organizer_is_404_after_the_signature_check(lily: Harness, deliver: Any) -> None:
    body = booking_delivery(uid="bk1", start=SLOT, organizer_email="who@else.test", event_type_id=99)
    response = await deliver(body)
    assert response.status_code == 404
    assert "organizer_emails" in (await response.get_json())["message"]
    assert (await deliver(body, secret="wrong")).status_code == 403
    assert await due(lily) == 0


async def test_tenant_secret_signs_for_that_tenant_only(lily: Harness, deliver: Any) -> None:
    bravo = booking_delivery(uid="b1", start=SLOT, organizer_email="bravo@bravo.test", event_type_id=99)
    assert (await deliver(bravo, secret=BRAVO_SECRET)).status_code == 200
    acme = booking_delivery(uid="a1", start=SLOT)
    assert (await deliver(acme, secret=BRAVO_SECRET)).status_code == 403


async def test_tenant_scoped_url(lily: Harness, deliver: Any) -> None:
    body = booking_delivery(uid="b1", start=SLOT, organizer_email="someone@else.test", event_type_id=99)
    response = await deliver(body, secret=BRAVO_SECRET, path="/webhooks/calcom/bravo")
    assert response.status_code == 200
    await lily.run_due()
    assert await state(lily, "b1", tenant="bravo") is not None
    assert (await deliver(body, secret=BRAVO_SECRET, path="/webhooks/calcom/bravo")).status_code == 200
    assert await due(lily) == 0
    # The tenant named in the URL decides which secrets count; an unknown tenant is only known after them.
    assert (await deliver(body, secret=BRAVO_SECRET, path="/webhooks/calcom")).status_code == 403
    assert (await deliver(body, secret=BRAVO_SECRET, path="/webhooks/calcom/nobody")).status_code == 403
    assert (await deliver(body, path="/webhooks/calcom/nobody")).status_code == 404
    assert (await deliver(body, path="/webhooks/calcom/Not_A_Slug")).status_code == 404


async def test_other_triggers_are_acknowledged_ignored_and_counted(lily: Harness, deliver: Any) -> None:
    before = IGNORED.labels("MEETING_ENDED")._value.get()
    response = await deliver(booking_delivery("MEETING_ENDED", uid="bk1", start=SLOT))
    assert response.status_code == 200
    assert (await response.get_json())["ignored"] == "MEETING_ENDED"
    form = {"triggerEvent": "FORM_SUBMITTED", "createdAt": "2030-06-03T15:00:00Z", "payload": {"formId": "f1"}}
    assert (await deliver(form)).status_code == 200
    assert IGNORED.labels("MEETING_ENDED")._value.get() == before + 1
    assert await due(lily) == 0


async def test_flat_meeting_triggers_are_verified_and_answered_200_ignored(lily: Harness, deliver: Any) -> None:
    # Cal.com's scheduled MEETING_STARTED / MEETING_ENDED: the booking's fields at the top level, no payload.
    flat = {
        "triggerEvent": "MEETING_ENDED",
        "createdAt": "2030-06-05T14:45:00.000Z",
        "id": 61,
        "uid": "bk-flat-1",
        "title": "Pressure Washing Estimate between Acme and Jane Doe",
        "startTime": "2030-06-05T14:00:00.000Z",
        "endTime": "2030-06-05T14:30:00.000Z",
        "eventTypeId": 7,
        "status": "ACCEPTED",
        "user": {"email": "owner@acme.test", "name": "Acme Owner", "timeZone": "America/New_York"},
        "attendees": [{"name": "Jane Doe", "email": "jane@example.com", "timeZone": "America/New_York"}],
    }
    before = IGNORED.labels("MEETING_ENDED")._value.get()
    response = await deliver(flat)
    assert response.status_code == 200, await response.get_data()
    assert await response.get_json() == {"ok": True, "ignored": "MEETING_ENDED"}
    started = {**flat, "triggerEvent": "MEETING_STARTED"}
    assert (await deliver(started)).status_code == 200
    # Still verified: the shape does not excuse the signature.
    assert (await deliver(flat, secret="not-the-secret")).status_code == 403
    odd = {"triggerEvent": "RECORDING_READY", "payload": ["not", "an", "object"]}
    assert (await deliver(odd)).status_code == 200
    assert IGNORED.labels("MEETING_ENDED")._value.get() == before + 1
    assert await due(lily) == 0


async def test_malformed_bodies_are_400_and_change_nothing(lily: Harness, deliver: Any) -> None:
    assert (await deliver(b"{not json")).status_code == 400
    assert (await deliver({"hello": "world"})).status_code == 400
    no_uid = booking_delivery(uid="bk1", start=SLOT)
    del no_uid["payload"]["uid"]
    assert (await deliver(no_uid)).status_code == 400
    bad_time = booking_delivery(uid="bk2", start=SLOT)
    bad_time["payload"]["startTime"] = "next tuesday"
    response = await deliver(bad_time)
    assert response.status_code == 400
    assert "startTime" in (await response.get_json())["message"]
    assert await due(lily) == 0


async def test_wrong_content_type_is_415(lily: Harness) -> None:
    raw, headers = signed(booking_delivery(uid="bk1", start=SLOT), "whsec-platform-calcom")
    response = await lily.client.post("/webhooks/calcom", data=raw, headers={**headers, "Content-Type": "text/plain"})
    assert response.status_code == 415


async def test_oversized_body_is_413(lily: Harness, deliver: Any) -> None:
    body = booking_delivery(uid="bk1", start=SLOT, notes="x" * (1024 * 1024))
    assert (await deliver(body)).status_code == 413


async def test_event_data_is_the_normalised_booking(lily: Harness, deliver: Any) -> None:
    await deliver(booking_delivery(uid="bk1", start=SLOT, notes="Gate code 1234"))
    task = (await lily.host.queue.list_tasks("due"))[0]
    assert task.type == "automations.booking_created"
    data = task.payload
    assert json.loads(json.dumps(data)) == data
    assert data["uid"] == "bk1"
    assert data["start"] == "2030-06-05T14:00:00Z"
    assert data["notes"] == "Gate code 1234"
    assert data["organizer_email"] == "owner@acme.test"
    assert data["event_type_id"] == "7"


async def test_a_secret_the_key_cannot_decrypt_is_a_503_with_a_logged_reason(lily: Harness, deliver: Any) -> None:
    from lily_host import Tenant

    # bravo's webhook secret as stored under another LILY_SECRET_KEY (a key swapped without rotation)
    box = type(lily.host.tenants.secret_box)
    other = box([box.generate_key()])
    raw = await lily.host.redis.get("lily:{t:bravo}:tenant")
    tenant = Tenant.model_validate_json(raw)
    plugins = {**tenant.plugins, "calcom": {**tenant.plugins["calcom"], "webhook_secret": other.encrypt(BRAVO_SECRET)}}
    await lily.host.redis.set("lily:{t:bravo}:tenant", tenant.model_copy(update={"plugins": plugins}).model_dump_json())
    lily.host.tenants.forget_cached()
    body = booking_delivery(uid="b1", start=SLOT, organizer_email="bravo@bravo.test", event_type_id=99)
    response = await deliver(body, secret=BRAVO_SECRET, path="/webhooks/calcom/bravo")
    assert response.status_code == 503
    assert (await response.get_json())["error"] == "unavailable"
    [entry] = (await lily.host.webhook_log.list(outcome="unavailable"))[0]
    assert "LILY_SECRET_KEY" in entry["reason"]


async def test_a_booking_is_traced_to_its_delivery(lily: Harness, deliver: Any) -> None:
    assert (await deliver(booking_delivery(uid="bk1", start=SLOT))).status_code == 200
    await lily.run_due()
    # the booking uid finds the delivery
    trace = await (await lily.client.get("/api/trace/bk1", headers=lily.admin_headers)).get_json()
    assert trace is not None and trace["delivery"]["integration"] == "calcom"
    assert {"kind": "booking", "id": "bk1", "tenant": "acme", "event": "booking.created"} in trace["effects"]
    record = await BookingStore(lily.host.redis, pii=lily.host.pii).record("acme", "bk1")
    assert record is not None and record["deliveries"] == [trace["id"]]
