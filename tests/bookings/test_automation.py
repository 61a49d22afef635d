"""The booking automation: record → confirmation text + calendar event, each its own task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lily_calcom.fake import booking_delivery, signed
from lily_gcal.calendar import WAIT_SECONDS, event_id
from lily_gcal.fake import FakeGoogle
from lily_host.builtins.booking_messages import CALENDAR_TASK, CALENDAR_WAIT_SECONDS, CANCEL_SETTLE_SECONDS
from lily_host.records.booking_store import Booking, BookingStore
from lily_host.testing import Harness, HarnessFactory

SLOT = datetime(2030, 6, 5, 14, 0, tzinfo=UTC)
MOVED = SLOT + timedelta(days=1, hours=2)
CALCOM_SECRET = "whsec-bookings-test"
EVENTS = "/calendar/v3/calendars/primary/events"

CONFIRMED_TEXT = (
    "Hi Jane! Your Pressure Washing Estimate with Acme Washing is confirmed for Wed, Jun 5 at 10:00 AM "
    "at 12 Elm St, Springfield. Questions? Just reply. Reply STOP to opt out."
)
RESCHEDULED_TEXT = (
    "Hi Jane, your Pressure Washing Estimate with Acme Washing is now Thu, Jun 6 at 12:00 PM "
    "at 12 Elm St, Springfield. See you then! Reply STOP to opt out."
)
CANCELLED_TEXT = (
    "Hi Jane, your Pressure Washing Estimate with Acme Washing on Thu, Jun 6 at 12:00 PM is cancelled. "
    "Book a new time: https://cal.com/acme/estimate Reply STOP to opt out."
)


def booking(uid: str, start: datetime = SLOT, **extra: Any) -> dict[str, Any]:
    return Booking(
        uid=uid,
        start=start,
        end=start + timedelta(minutes=30),
        timezone="America/New_York",
        title="Pressure Washing Estimate between Acme and Jane Doe",
        service_type="Pressure Washing Estimate",
        customer_name="Jane Doe",
        customer_email="jane@example.com",
        customer_phone="+15551234567",
        location="12 Elm St, Springfield",
        notes="Back gate is unlocked",
        **extra,
    ).as_event_data()


async def emit(lily: Harness, event: str, data: dict[str, Any]) -> None:
    await lily.host.events.emit(event, data, tenant="acme")


async def texts(lily: Harness) -> list[str]:
    return [message["body"] for message in await lily.outbox("acme")]


async def dead(lily: Harness) -> list[Any]:
    return await lily.host.queue.list_tasks("dead")


async def test_created_booking_texts_the_customer_and_writes_the_calendar(
    connected: Harness, google: FakeGoogle
) -> None:
    lily = connected
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    assert await texts(lily) == [CONFIRMED_TEXT]
    assert (await lily.outbox("acme"))[0]["to"] == "+15551234567"
    eid = event_id("acme", "bk1")
    insert = next(r for r in google.calendar_requests() if r.method == "POST" and r.path == EVENTS)
    assert insert.json == {
        "id": eid,
        "summary": "Pressure Washing Estimate \u2013 Jane Doe",
        "description": (
            "Customer: Jane Doe\nPhone: +15551234567\nEmail: jane@example.com\nAddress: 12 Elm St, Springfield\n"
            "Service: Pressure Washing Estimate\nNotes: Back gate is unlocked\nBooked via calcom (booking bk1)"
        ),
        "start": {"dateTime": "2030-06-05T10:00:00-04:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2030-06-05T11:30:00-04:00", "timeZone": "America/New_York"},
        "attendees": [{"email": "jane@example.com"}],
        "status": "confirmed",
        "extendedProperties": {"private": {"lily_tenant": "acme", "lily_booking_uid": "bk1"}},
        "location": "12 Elm St, Springfield",
    }
    assert await dead(lily) == []


async def test_reschedule_texts_and_moves_the_same_event(connected: Harness, google: FakeGoogle) -> None:
    lily = connected
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    await emit(lily, "booking.rescheduled", booking("bk2", MOVED, replaces_uid="bk1"))
    await lily.run_due()
    assert await texts(lily) == [CONFIRMED_TEXT, RESCHEDULED_TEXT]
    events = google.events()
    assert list(events) == [event_id("acme", "bk1")]
    assert events[event_id("acme", "bk1")]["start"]["dateTime"] == "2030-06-06T12:00:00-04:00"
    assert "booking bk2" in events[event_id("acme", "bk1")]["description"]


async def test_cancellation_texts_after_settling_and_cancels_the_event(connected: Harness, google: FakeGoogle) -> None:
    lily = connected
    await emit(lily, "booking.created", booking("bk1"))
    await emit(lily, "booking.rescheduled", booking("bk2", MOVED, replaces_uid="bk1"))
    await lily.run_due()
    await emit(lily, "booking.cancelled", booking("bk2", MOVED, cancellation_reason="sold the house"))
    await lily.run_due()
    assert google.events()[event_id("acme", "bk1")]["status"] == "cancelled"
    assert CANCELLED_TEXT not in await texts(lily)
    await lily.advance(CANCEL_SETTLE_SECONDS)
    assert (await texts(lily))[-1] == CANCELLED_TEXT


async def test_cancel_then_reschedule_in_quick_succession_sends_only_the_move(
    connected: Harness, google: FakeGoogle
) -> None:
    lily = connected
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    # Cal.com cancels the old slot and announces the new one; the cancellation arrives first.
    await emit(lily, "booking.cancelled", booking("bk1"))
    await lily.run_due()
    await lily.advance(CANCEL_SETTLE_SECONDS / 2)
    await emit(lily, "booking.rescheduled", booking("bk2", MOVED, replaces_uid="bk1"))
    await lily.run_due()
    await lily.advance(CANCEL_SETTLE_SECONDS)
    assert await texts(lily) == [CONFIRMED_TEXT, RESCHEDULED_TEXT]
    event = google.events()[event_id("acme", "bk1")]
    assert (event["status"], event["start"]["dateTime"]) == ("confirmed", "2030-06-06T12:00:00-04:00")


async def test_reschedule_arriving_before_the_creation(connected: Harness, google: FakeGoogle) -> None:
    lily = connected
    await emit(lily, "booking.rescheduled", booking("bk2", MOVED, replaces_uid="bk1"))
    await lily.run_due()
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    # No confirmation for a slot that no longer exists; one calendar event, at the new time.
    assert await texts(lily) == [RESCHEDULED_TEXT]
    assert [e["start"]["dateTime"] for e in google.events().values() if e["status"] == "confirmed"] == [
        "2030-06-06T12:00:00-04:00"
    ]
    assert google.events()[event_id("acme", "bk1")]["status"] == "confirmed"


async def due_besides_reminders(lily: Harness) -> list[str]:
    """Types of the due tasks other than appointment reminders (tests/reminders covers those)."""
    return [task.type for task in await lily.host.queue.list_tasks("due") if task.type != "reminders.send"]


async def test_google_outage_delays_only_the_calendar(connected: Harness, google: FakeGoogle) -> None:
    lily = connected
    google.fail_next("POST", "/events", status=503, times=2)
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    assert await texts(lily) == [CONFIRMED_TEXT]
    assert event_id("acme", "bk1") not in google.events()
    assert await due_besides_reminders(lily) == [CALENDAR_TASK]
    await lily.advance(60)
    await lily.advance(120)
    assert google.events()[event_id("acme", "bk1")]["status"] == "confirmed"
    assert await dead(lily) == []


async def test_calendar_waits_for_a_tenant_to_connect(lily: Harness, google: FakeGoogle, connect: Any) -> None:
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    assert await texts(lily) == [CONFIRMED_TEXT]
    waiting = [task for task in await lily.host.queue.list_tasks("due") if task.type != "reminders.send"]
    assert [task.type for task in waiting] == [CALENDAR_TASK]
    assert waiting[0].attempt <= 1
    await lily.advance(WAIT_SECONDS)
    assert await due_besides_reminders(lily) == [CALENDAR_TASK]
    await connect()
    await lily.advance(WAIT_SECONDS)
    assert google.events()[event_id("acme", "bk1")]["status"] == "confirmed"
    assert await dead(lily) == []


async def test_calendar_stops_waiting_after_the_limit(lily: Harness, google: FakeGoogle) -> None:
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    await lily.advance(CALENDAR_WAIT_SECONDS + WAIT_SECONDS)
    stats = await lily.host.queue.stats()
    assert (stats.due, stats.dead) == (0, 0)
    assert google.events() == {}


async def test_only_calcom_installed_records_bookings(lily_harness: HarnessFactory) -> None:
    async with lily_harness(plugins=["calcom"], env={"CALCOM_WEBHOOK_SECRET": CALCOM_SECRET}) as lily:
        await lily.create_tenant("acme", plugins={"calcom": {"organizer_emails": ["owner@acme.test"]}})
        raw, headers = signed(booking_delivery(uid="bk1", start=SLOT, customer_phone=None), CALCOM_SECRET)
        assert (await lily.client.post("/webhooks/calcom", data=raw, headers=headers)).status_code == 200
        await lily.run_due()
        state = await BookingStore(lily.host.redis, pii=lily.host.pii).state("acme", "bk1")
        assert state is not None and state.status == "confirmed"
        assert not lily.host.has_capability("calendar")
        stats = await lily.host.queue.stats()
        assert (stats.due, stats.dead) == (0, 0)


async def test_webhook_to_text_and_event_end_to_end(connected: Harness, google: FakeGoogle) -> None:
    lily = connected
    raw, headers = signed(booking_delivery(uid="cal-1", start=SLOT), CALCOM_SECRET)
    assert (await lily.client.post("/webhooks/calcom", data=raw, headers=headers)).status_code == 200
    await lily.run_due()
    assert await texts(lily) == [CONFIRMED_TEXT]
    assert google.events()[event_id("acme", "cal-1")]["summary"] == "Pressure Washing Estimate \u2013 Jane Doe"


async def test_no_phone_means_no_text_but_still_an_event(connected: Harness, google: FakeGoogle) -> None:
    lily = connected
    await emit(lily, "booking.created", booking("bk1") | {"customer_phone": None})
    await lily.run_due()
    assert await texts(lily) == []
    assert event_id("acme", "bk1") in google.events()


async def test_tenant_template_override(connected: Harness) -> None:
    lily = connected
    await lily.host.tenants.update("acme", templates={"booking_confirmed": "{tenant_name}: see you {when}!"})
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    assert await texts(lily) == ["Acme Washing: see you Wed, Jun 5 at 10:00 AM!"]


async def test_redelivered_event_texts_once(connected: Harness, google: FakeGoogle) -> None:
    lily = connected
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    await emit(lily, "booking.created", booking("bk1"))
    await lily.run_due()
    assert await texts(lily) == [CONFIRMED_TEXT]
    assert len(google.events()) == 1
