"""Voice webhooks: a missed call becomes exactly one text-back, sent through Twilio."""

from __future__ import annotations

import json

import pytest

from lily_host.testing import Harness, configure_logging
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import call_form

VOICE = "/webhooks/twilio/voice"


async def due_tasks(lily: Harness) -> int:
    return (await lily.host.queue.stats()).due


async def test_missed_call_texts_the_caller_once_inside_the_jitter_window(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    response = await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))

    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert (await response.get_data(as_text=True)).endswith("<Response />")
    await lily.run_due()
    await lily.advance(9.9)
    assert fake_twilio.messages == []
    await lily.advance(35.2)
    [message] = fake_twilio.messages
    assert message["to"] == numbers.caller
    assert message["from"] == numbers.acme
    assert message["body"].startswith("Acme Washing: Sorry we missed your call! 📞 Text us 2-3 photos")
    assert message["status_callback"] == "https://lily.test/webhooks/twilio/status?tenant=acme"


async def test_call_missed_event_carries_the_documented_payload(lily: Harness, post_twilio, numbers, event_log) -> None:
    form = call_form(caller=numbers.caller, to=numbers.acme, status="busy")

    await post_twilio(VOICE, form)
    await lily.run_due()

    assert event_log == [
        (
            "call.missed",
            "acme",
            {"caller": numbers.caller, "business_number": numbers.acme, "call_sid": form["CallSid"], "status": "busy"},
        )
    ]


async def test_duplicate_webhook_still_sends_one_text(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    form = call_form(caller=numbers.caller, to=numbers.acme)

    first = await post_twilio(VOICE, form)
    second = await post_twilio(VOICE, form)
    await lily.run_due()
    await lily.advance(60)

    assert first.status_code == second.status_code == 200
    assert (await second.get_data(as_text=True)).endswith("<Response />")
    assert len(fake_twilio.messages) == 1


async def test_dial_action_that_was_not_answered_is_a_missed_call(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    form = call_form(caller=numbers.caller, to=numbers.acme, status="in-progress", DialCallStatus="no-answer")

    assert (await post_twilio(VOICE, form)).status_code == 200
    await lily.run_due()
    await lily.advance(60)

    assert [m["to"] for m in fake_twilio.messages] == [numbers.caller]


async def test_dial_that_never_bridged_is_a_missed_call(lily: Harness, post_twilio, numbers, event_log) -> None:
    form = call_form(
        caller=numbers.caller, to=numbers.acme, status="in-progress", DialCallStatus="completed", DialBridged="false"
    )

    await post_twilio(VOICE, form)
    await lily.run_due()

    assert [entry[0] for entry in event_log] == ["call.missed"]


async def test_answered_calls_send_nothing(lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers) -> None:
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme, status="completed"))
    await post_twilio(
        VOICE,
        call_form(caller=numbers.caller, to=numbers.acme, DialCallStatus="completed", DialBridged="true"),
    )
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme, status="ringing"))
    await lily.run_due()
    await lily.advance(60)

    assert fake_twilio.messages == []


async def test_bad_signature_is_403_and_schedules_nothing(lily: Harness, post_twilio, numbers) -> None:
    response = await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme), token="not-the-token")

    assert response.status_code == 403
    assert await due_tasks(lily) == 0


async def test_missing_signature_is_401(lily: Harness, post_twilio, numbers) -> None:
    response = await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme), signature="")

    assert response.status_code == 401
    assert await due_tasks(lily) == 0


async def test_signature_over_another_url_is_rejected(lily: Harness, numbers, fake_twilio: FakeTwilio) -> None:
    from urllib.parse import urlencode

    from lily_twilio.testing import signed_headers

    form = call_form(caller=numbers.caller, to=numbers.acme)
    headers = signed_headers(fake_twilio.auth_token, "http://internal:8000" + VOICE, form)

    response = await lily.client.post(VOICE, data=urlencode(form), headers=headers)

    assert response.status_code == 403


async def test_unknown_business_number_is_404(lily: Harness, post_twilio, numbers) -> None:
    response = await post_twilio(VOICE, call_form(caller=numbers.caller, to="+15550001111"))

    assert response.status_code == 404
    assert await due_tasks(lily) == 0


async def test_malformed_callbacks_are_400(lily: Harness, post_twilio, numbers) -> None:
    no_sid = call_form(caller=numbers.caller, to=numbers.acme)
    del no_sid["CallSid"]
    bad_status = call_form(caller=numbers.caller, to=numbers.acme, status="exploded")
    bad_to = call_form(caller=numbers.caller, to="not-a-number")

    for form in (no_sid, bad_status, bad_to):
        assert (await post_twilio(VOICE, form)).status_code == 400
    assert await due_tasks(lily) == 0


async def test_json_body_is_415(lily: Harness, numbers) -> None:
    response = await lily.client.post(VOICE, json={"CallSid": "CA1"}, headers={"X-Twilio-Signature": "x"})

    assert response.status_code == 415


async def test_oversized_body_is_413(lily: Harness, numbers) -> None:
    body = "Junk=" + "x" * 70_000
    # A real server (hypercorn) always passes Content-Length on; the test client does not add it.
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body)),
        "X-Twilio-Signature": "x",
    }

    response = await lily.client.post(VOICE, data=body, headers=headers)

    assert response.status_code == 413


async def test_call_from_the_tenants_own_number_gets_no_text(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await post_twilio(VOICE, call_form(caller=numbers.acme_contact, to=numbers.acme))
    await post_twilio(VOICE, call_form(caller=numbers.acme, to=numbers.acme))
    await lily.run_due()
    await lily.advance(60)

    assert fake_twilio.messages == []


async def test_hidden_caller_id_emits_nothing(lily: Harness, post_twilio, numbers, event_log) -> None:
    response = await post_twilio(VOICE, call_form(caller="+266696687", to=numbers.acme))
    await lily.run_due()

    assert response.status_code == 200
    assert event_log == []


async def test_one_text_back_per_caller_per_day(lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers) -> None:
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    await lily.advance(60)
    await lily.advance(3600)
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    await lily.advance(60)
    assert len(fake_twilio.messages) == 1

    await lily.advance(23 * 3600)
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    await lily.run_due()
    await lily.advance(60)

    assert len(fake_twilio.messages) == 2


async def test_each_tenant_texts_from_its_own_number(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.bravo))
    await lily.run_due()
    await lily.advance(60)

    assert sorted((m["from"], m["body"].partition(":")[0]) for m in fake_twilio.messages) == [
        (numbers.acme, "Acme Washing"),
        (numbers.bravo, "Bravo Windows"),
    ]


async def test_canceled_tenant_schedules_no_text(lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers) -> None:
    await lily.host.tenants.update("acme", subscription_status="canceled")

    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    await lily.run_due()

    assert await due_tasks(lily) == 0
    await lily.advance(3600)
    assert fake_twilio.messages == []


async def test_the_missed_call_log_line_masks_the_caller(
    lily: Harness, post_twilio, numbers, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("production", "INFO")  # JSON lines on the (captured) stderr
    try:
        await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    finally:
        configure_logging("development", "WARNING")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [missed] = [line for line in lines if line["event"] == "twilio.missed_call"]
    assert missed["caller"] == "+1******4321" and missed["tenant"] == "acme"
    assert numbers.caller not in json.dumps(lines)
