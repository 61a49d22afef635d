"""Sending through Twilio: error mapping, retries, quiet hours, and delivery status callbacks."""

from __future__ import annotations

import socket

from lily_host.testing import Harness
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import call_form, status_form

STATUS = "/webhooks/twilio/status"


def create_statuses(fake: FakeTwilio) -> list[int]:
    return [r.status for r in fake.requests if r.method == "POST" and r.path.endswith("/Messages.json")]


async def message_record(lily: Harness, tenant: str = "acme") -> dict[str, str]:
    [record] = await lily.host.messaging.recent(tenant)
    return dict(record.fields)


async def test_twilio_500_twice_then_201_sends_one_text_after_two_retries(
    lily: Harness, fake_twilio: FakeTwilio, numbers
) -> None:
    fake_twilio.fail_next(2, status=500)
    await lily.host.messaging.queue_sms("acme", numbers.caller, template="missed_call")

    await lily.run_due()
    for _ in range(10):
        await lily.advance(60)

    assert create_statuses(fake_twilio) == [500, 500, 201]
    assert len(fake_twilio.messages) == 1
    record = await message_record(lily)
    assert record["status"] == "sent"
    assert record["provider_id"] == fake_twilio.messages[0]["sid"]
    assert record["attempt"] == "3"


async def test_rate_limit_waits_for_retry_after(lily: Harness, fake_twilio: FakeTwilio, numbers) -> None:
    fake_twilio.rate_limit_next(retry_after=120)
    await lily.host.messaging.queue_sms("acme", numbers.caller, template="missed_call")

    await lily.run_due()
    await lily.advance(110)
    assert fake_twilio.messages == []
    await lily.advance(11)

    assert create_statuses(fake_twilio) == [429, 201]
    assert len(fake_twilio.messages) == 1


async def test_21610_suppresses_the_recipient_without_retrying(lily: Harness, fake_twilio: FakeTwilio, numbers) -> None:
    fake_twilio.opt_out(numbers.caller)
    await lily.host.messaging.queue_sms("acme", numbers.caller, template="missed_call")

    await lily.run_due()
    await lily.advance(3600)

    assert create_statuses(fake_twilio) == [400]
    assert await lily.host.messaging.compliance.is_suppressed("acme", numbers.caller)
    assert not await lily.host.messaging.compliance.is_suppressed("bravo", numbers.caller)
    record = await message_record(lily)
    assert (record["status"], record["error_code"]) == ("opted_out", "21610")
    assert (await lily.host.queue.stats()).dead == 0


async def test_other_client_errors_go_to_the_dead_letters_with_twilios_code(
    lily: Harness, fake_twilio: FakeTwilio, numbers
) -> None:
    fake_twilio.reject_next(21211, "The 'To' number +15557654321 is not a valid phone number.")
    await lily.host.messaging.queue_sms("acme", numbers.caller, template="missed_call")

    await lily.run_due()
    await lily.advance(3600)

    assert create_statuses(fake_twilio) == [400]
    [dead] = await lily.host.queue.list_tasks("dead")
    assert "21211" in (dead.last_error or "")
    assert "not a valid phone number" in (dead.last_error or "")
    record = await message_record(lily)
    assert (record["status"], record["error_code"]) == ("failed", "21211")


async def test_unreachable_twilio_is_retried(lily_harness, fake_twilio: FakeTwilio, numbers, new_york) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {**fake_twilio.env(), "TWILIO_API_BASE": f"http://127.0.0.1:{closed_port}"}
    async with lily_harness(plugins=["twilio"], env=env) as lily:
        lily.clock.set(new_york(12))
        await lily.create_tenant("acme", name="Acme", plugins={"twilio": {"business_numbers": [numbers.acme]}})
        await lily.host.messaging.queue_sms("acme", numbers.caller, template="missed_call")

        await lily.run_due()

        record = await message_record(lily)
        assert record["status"] == "retrying"
        assert "Twilio did not answer" in record["error"]
        [task] = await lily.host.queue.list_tasks("due")
        assert task.attempt == 2


async def test_text_due_in_quiet_hours_goes_out_at_nine_tenant_time(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers, new_york
) -> None:
    lily.clock.set(new_york(22, 0))
    await post_twilio("/webhooks/twilio/voice", call_form(caller=numbers.caller, to=numbers.acme))
    await lily.run_due()
    await lily.advance(60)
    assert fake_twilio.messages == []

    lily.clock.set(new_york(8, 59, day=3))
    await lily.run_due()
    assert fake_twilio.messages == []
    lily.clock.set(new_york(9, 0, day=3))
    await lily.run_due()

    assert len(fake_twilio.messages) == 1
    [task_after] = await lily.host.queue.list_tasks("due") or [None]
    assert task_after is None


async def test_status_callbacks_are_recorded_and_counted(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await lily.host.messaging.queue_sms("acme", numbers.caller, template="missed_call")
    await lily.run_due()
    [sent] = fake_twilio.messages
    callback = sent["status_callback"].removeprefix("https://lily.test")

    delivered = status_form(message_sid=sent["sid"], status="delivered", to=numbers.caller, sender=numbers.acme)
    late_sent = status_form(message_sid=sent["sid"], status="sent", to=numbers.caller, sender=numbers.acme)
    assert (await post_twilio(callback, delivered)).status_code == 200
    assert (await post_twilio(callback, delivered)).status_code == 200
    assert (await post_twilio(callback, late_sent)).status_code == 200
    await lily.run_due()

    record = await message_record(lily)
    assert record["status"] == "delivered"
    metrics = await (await lily.client.get("/metrics")).get_data(as_text=True)
    assert 'lily_sms_status_total{channel="twilio",status="delivered"}' in metrics


async def test_undelivered_with_21610_suppresses_the_recipient(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await lily.host.messaging.queue_sms("acme", numbers.caller, template="missed_call")
    await lily.run_due()
    [sent] = fake_twilio.messages

    form = status_form(
        message_sid=sent["sid"], status="undelivered", to=numbers.caller, sender=numbers.acme, error_code="21610"
    )
    await post_twilio(STATUS + "?tenant=acme", form)
    await lily.run_due()

    record = await message_record(lily)
    assert (record["status"], record["error_code"]) == ("undelivered", "21610")
    assert await lily.host.messaging.compliance.is_suppressed("acme", numbers.caller)


async def test_status_callback_without_a_known_tenant_is_refused(lily: Harness, post_twilio, numbers) -> None:
    form = status_form(message_sid="SM" + "0" * 32, status="delivered", to=numbers.caller, sender=numbers.acme)

    assert (await post_twilio(STATUS, form)).status_code == 404
    assert (await post_twilio(STATUS + "?tenant=nobody", form)).status_code == 404
    assert (await post_twilio(STATUS + "?tenant=acme", {**form, "MessageStatus": "vaporised"})).status_code == 400
    assert (await lily.host.queue.stats()).due == 0


async def test_tenant_without_a_number_falls_back_to_twilio_from_number(
    lily_harness, fake_twilio: FakeTwilio, numbers, new_york
) -> None:
    async with lily_harness(
        plugins=["twilio"], env={**fake_twilio.env(), "TWILIO_FROM_NUMBER": "+15550009999"}
    ) as lily:
        lily.clock.set(new_york(12))
        await lily.create_tenant("solo", name="Solo")
        await lily.host.messaging.queue_sms("solo", numbers.caller, template="missed_call")
        await lily.run_due()

    assert [m["from"] for m in fake_twilio.messages] == ["+15550009999"]


async def test_tenant_without_any_sender_is_a_dead_letter_that_says_what_to_do(
    lily: Harness, fake_twilio: FakeTwilio, numbers
) -> None:
    await lily.create_tenant("solo", name="Solo")
    await lily.host.messaging.queue_sms("solo", numbers.caller, template="missed_call")

    await lily.run_due()

    [dead] = await lily.host.queue.list_tasks("dead")
    assert "twilio.business_numbers" in (dead.last_error or "")
    assert fake_twilio.requests == []
