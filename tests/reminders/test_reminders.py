"""Appointment reminders end to end: Cal.com webhooks in, the worker, texts out through the Twilio fake."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from lily_host.testing import Harness
from lily_twilio.fake import FakeTwilio

from .conftest import CUSTOMER, Confirmed

NEW_YORK = ZoneInfo("America/New_York")


def ny(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


async def run_until(lily: Harness, until: float) -> None:
    """Move the clock task by task up to ``until``, so each task runs exactly at its due time."""
    while True:
        due = [task.due for task in await lily.host.queue.list_tasks("due", 1000) if task.due is not None]
        upcoming = [when for when in due if when <= until]
        if not upcoming:
            break
        lily.clock.set(max(lily.clock.now(), min(upcoming)))
        await lily.run_due()
    lily.clock.set(max(lily.clock.now(), until))
    await lily.run_due()


async def sent(lily: Harness, template: str) -> list[dict[str, Any]]:
    records = [record.fields for record in await lily.host.messaging.recent("acme", 200)]
    chosen = [record for record in records if record["template"] == template and record.get("sent_at")]
    return sorted(chosen, key=lambda record: float(record["sent_at"]))


def local(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(record["sent_at"]), NEW_YORK)


async def reminders_of(lily: Harness, uid: str) -> dict[str, Any]:
    response = await lily.client.get(f"/api/bookings/{uid}/reminders", headers=await lily.tenant_headers())
    assert response.status_code == 200
    view: dict[str, Any] = await response.get_json()
    return view


async def test_reminders_go_24_and_2_hours_before(lily: Harness, book, fake_twilio: FakeTwilio) -> None:
    await book(uid="b1", start=ny(2030, 6, 5, 11))

    view = await reminders_of(lily, "b1")
    assert [(item["offset_minutes"], item["at"]) for item in view["reminders"]] == [
        (1440, ny(2030, 6, 4, 11).timestamp()),
        (120, ny(2030, 6, 5, 9).timestamp()),
    ]
    await run_until(lily, ny(2030, 6, 5, 12).timestamp())

    reminders = await sent(lily, "appointment_reminder")
    assert [local(record) for record in reminders] == [ny(2030, 6, 4, 11), ny(2030, 6, 5, 9)]
    texts = [message for message in fake_twilio.messages if "Reminder" in message["body"]]
    assert len(texts) == 2 and texts[0]["to"] == CUSTOMER
    assert "Wed, Jun 5 at 11:00 AM" in texts[0]["body"] and "Reply C to confirm or R to reschedule" in texts[0]["body"]


async def test_a_reschedule_moves_both_reminders(lily: Harness, book) -> None:
    await book(uid="b1", start=ny(2030, 6, 5, 11))
    lily.clock.advance(3600)
    await book("BOOKING_RESCHEDULED", uid="b2", reschedule_uid="b1", start=ny(2030, 6, 7, 14))

    view = await reminders_of(lily, "b1")
    assert view["uid"] == "b2"
    assert [item["at"] for item in view["reminders"]] == [
        ny(2030, 6, 6, 14).timestamp(),
        ny(2030, 6, 7, 12).timestamp(),
    ]
    await run_until(lily, ny(2030, 6, 8, 0).timestamp())

    assert [local(record) for record in await sent(lily, "appointment_reminder")] == [
        ny(2030, 6, 6, 14),
        ny(2030, 6, 7, 12),
    ]


async def test_a_cancellation_cancels_the_reminders(lily: Harness, book) -> None:
    await book(uid="b1", start=ny(2030, 6, 5, 11))
    await book("BOOKING_CANCELLED", uid="b1", start=ny(2030, 6, 5, 11))

    assert [task for task in await lily.host.queue.list_tasks("due") if task.type == "reminders.send"] == []
    await run_until(lily, ny(2030, 6, 6, 0).timestamp())
    assert await sent(lily, "appointment_reminder") == []


async def test_quiet_hours_move_a_reminder_earlier_or_skip_it(lily: Harness, book) -> None:
    # 8:30: the 24 h reminder (8:30 the day before, before the tenant's 9:00) goes at 20:59 two days
    # before (36 h early, within twice its offset); the 2 h one (6:30) would go 11.5 h early: skipped.
    await book(uid="early", start=ny(2030, 6, 6, 8, 30))

    view = await reminders_of(lily, "early")
    day_before, two_hours = view["reminders"]
    assert day_before["at"] == ny(2030, 6, 4, 20, 59).timestamp()
    assert (two_hours["at"], two_hours["skipped"]) == (None, "quiet hours would make it too early")
    await run_until(lily, ny(2030, 6, 6, 9).timestamp())
    assert [local(record) for record in await sent(lily, "appointment_reminder")] == [ny(2030, 6, 4, 20, 59)]


async def test_quiet_hour_rule_across_the_dst_change(lily: Harness, book) -> None:
    # Sunday 2031-03-09 is the spring-forward day. A 9:30 (EDT) visit: 24 h before is Saturday 8:30
    # (EST), before 9:00, so it goes Friday 20:59 EST; the 2 h one (7:30) is skipped.
    lily.clock.set(ny(2031, 3, 3, 12).timestamp())
    await book(uid="dst", start=ny(2031, 3, 9, 9, 30))

    day_before, two_hours = (await reminders_of(lily, "dst"))["reminders"]
    assert day_before["due"] == ny(2031, 3, 8, 8, 30).timestamp()
    assert day_before["at"] == ny(2031, 3, 7, 20, 59).timestamp()
    assert dt.datetime.fromtimestamp(day_before["at"], dt.UTC).hour == 1  # 20:59 EST is 01:59 UTC
    assert two_hours["skipped"] == "quiet hours would make it too early"
    await run_until(lily, ny(2031, 3, 9, 10).timestamp())
    assert [local(record) for record in await sent(lily, "appointment_reminder")] == [ny(2031, 3, 7, 20, 59)]


async def test_a_booking_made_late_gets_no_stale_reminder(lily: Harness, book) -> None:
    await book(uid="soon", start=ny(2030, 6, 3, 15))  # in 4 hours: only the 2 h reminder

    _day, two_hours = (await reminders_of(lily, "soon"))["reminders"]
    await run_until(lily, ny(2030, 6, 3, 16).timestamp())
    assert two_hours["at"] == ny(2030, 6, 3, 13).timestamp()
    assert [local(record) for record in await sent(lily, "appointment_reminder")] == [ny(2030, 6, 3, 13)]


async def test_tenant_offsets_and_turning_reminders_off(lily: Harness, book) -> None:
    await lily.host.tenants.update("acme", reminder_offsets_minutes=[60])
    await book(uid="one", start=ny(2030, 6, 5, 11))
    assert [item["offset_minutes"] for item in (await reminders_of(lily, "one"))["reminders"]] == [60]

    await lily.host.tenants.update("acme", reminder_offsets_minutes=[])
    await book(uid="none", start=ny(2030, 6, 5, 15))
    assert (await reminders_of(lily, "none"))["reminders"] == []

    bad = await lily.client.patch(
        "/api/tenants/acme", json={"reminder_offsets_minutes": [5]}, headers=lily.admin_headers
    )
    assert bad.status_code == 400 and "15 to 20160" in (await bad.get_json())["message"]


async def test_confirm_by_reply(lily: Harness, book, text_in, fake_twilio: FakeTwilio, confirmed: Confirmed) -> None:
    await book(uid="b1", start=ny(2030, 6, 5, 11))
    await run_until(lily, ny(2030, 6, 4, 11).timestamp())  # the 24 h reminder went

    await text_in("C")
    await text_in("yes!")

    [event] = confirmed
    assert (event["uid"], event["root_uid"], event["source"]) == ("b1", "b1", "sms_reply")
    thanks = [message for message in fake_twilio.messages if "you're confirmed" in message["body"]]
    assert len(thanks) == 1
    assert (await reminders_of(lily, "b1"))["confirmed_at"] is not None
    assert not await lily.host.messaging.compliance.is_suppressed("acme", CUSTOMER)


async def test_r_sends_the_reschedule_link(lily: Harness, book, text_in, fake_twilio: FakeTwilio) -> None:
    await lily.host.tenants.update("acme", reschedule_link="https://acme.test/move")
    await book(uid="b1", start=ny(2030, 6, 5, 11))
    await run_until(lily, ny(2030, 6, 4, 11).timestamp())

    await text_in("R")

    assert (
        "to reschedule your Pressure Washing Estimate on Wed, Jun 5 at 11:00 AM, go to https://acme.test/move"
        in (fake_twilio.messages[-1]["body"])
    )


async def test_replies_never_collide_with_stop_start_help(
    lily: Harness, book, text_in, fake_twilio: FakeTwilio, confirmed: Confirmed
) -> None:
    await book(uid="b1", start=ny(2030, 6, 5, 11))
    await run_until(lily, ny(2030, 6, 4, 11).timestamp())

    await text_in("HELP")
    assert confirmed == [] and "for help contact us" in fake_twilio.messages[-1]["body"]
    await text_in("STOP")
    assert confirmed == [] and "unsubscribed" in fake_twilio.messages[-1]["body"]
    # YES from an opted-out number is an opt-in, not a confirmation.
    await text_in("YES")
    assert confirmed == [] and "subscribed again" in fake_twilio.messages[-1]["body"]
    assert not await lily.host.messaging.compliance.is_suppressed("acme", CUSTOMER)
    # Now subscribed, the same word confirms.
    await text_in("YES")
    assert len(confirmed) == 1


async def test_c_without_a_reminder_is_just_a_message(
    lily: Harness, text_in, fake_twilio: FakeTwilio, confirmed
) -> None:
    await text_in("C")
    assert confirmed == [] and fake_twilio.messages == []


async def test_on_my_way(lily: Harness, book, fake_twilio: FakeTwilio) -> None:
    await book(uid="b1", start=ny(2030, 6, 3, 14))
    headers = await lily.tenant_headers()
    fake_twilio.messages.clear()

    with_eta = await lily.client.post("/api/bookings/b1/on-my-way", json={"eta_minutes": 20}, headers=headers)
    bare = await lily.client.post("/api/bookings/b1/on-my-way", headers=headers)
    await lily.run_due()

    assert (with_eta.status_code, bare.status_code) == (202, 202)
    assert sorted(message["body"] for message in fake_twilio.messages) == [
        "Acme Washing: we're on our way to your Pressure Washing Estimate! Reply STOP to opt out.",
        "Acme Washing: we're on our way to your Pressure Washing Estimate, about 20 minutes away! "
        "Reply STOP to opt out.",
    ]
    bad_eta = await lily.client.post("/api/bookings/b1/on-my-way", json={"eta_minutes": 0}, headers=headers)
    unknown = await lily.client.post("/api/bookings/nope/on-my-way", headers=headers)
    no_key = await lily.client.post("/api/bookings/b1/on-my-way")
    assert (bad_eta.status_code, unknown.status_code, no_key.status_code) == (400, 404, 401)

    await book("BOOKING_CANCELLED", uid="b1", start=ny(2030, 6, 3, 14))
    cancelled = await lily.client.post("/api/bookings/b1/on-my-way", headers=headers)
    assert cancelled.status_code == 409
