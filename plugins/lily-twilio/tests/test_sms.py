"""Inbound texts: message.received, and STOP / START / HELP handled by the host for every tenant."""

from __future__ import annotations

from lily_host.testing import Harness
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import call_form, message_form

SMS = "/webhooks/twilio/sms"
VOICE = "/webhooks/twilio/voice"


async def test_inbound_mms_emits_message_received_with_media(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers, event_log
) -> None:
    photo = fake_twilio.add_media(b"\xff\xd8jpeg", "image/jpeg")
    form = message_form(sender=numbers.caller, to=numbers.acme, body="Driveway, 30301", media={photo: "image/jpeg"})

    response = await post_twilio(SMS, form)
    await lily.run_due()

    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert event_log == [
        (
            "message.received",
            "acme",
            {
                "from": numbers.caller,
                "to": numbers.acme,
                "body": "Driveway, 30301",
                "message_sid": form["MessageSid"],
                "media": [{"url": photo, "content_type": "image/jpeg"}],
            },
        )
    ]
    assert fake_twilio.messages == []


async def test_duplicate_inbound_message_is_handled_once(lily: Harness, post_twilio, numbers, event_log) -> None:
    form = message_form(sender=numbers.caller, to=numbers.acme, body="hello")

    await post_twilio(SMS, form)
    await post_twilio(SMS, form)
    await lily.run_due()

    assert len(event_log) == 1


async def test_inbound_text_with_bad_signature_or_unknown_number_is_refused(
    lily: Harness, post_twilio, numbers
) -> None:
    bad_signature = await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="STOP"), token="x")
    unknown = await post_twilio(SMS, message_form(sender=numbers.caller, to="+15550001111", body="STOP"))
    malformed = await post_twilio(SMS, {"From": numbers.caller, "To": numbers.acme, "Body": "STOP"})

    assert (bad_signature.status_code, unknown.status_code, malformed.status_code) == (403, 404, 400)
    assert (await lily.host.queue.stats()).due == 0
    assert not await lily.host.messaging.compliance.is_suppressed("acme", numbers.caller)


async def test_stop_suppresses_confirms_once_and_blocks_the_text_back(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="  stop "))
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="STOP"))
    await lily.run_due()

    [confirmation] = fake_twilio.messages
    assert confirmation["to"] == numbers.caller
    assert confirmation["from"] == numbers.acme
    assert "unsubscribed" in confirmation["body"]
    assert await lily.host.messaging.compliance.is_suppressed("acme", numbers.caller)

    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    await lily.run_due()
    await lily.advance(3600)

    assert len(fake_twilio.messages) == 1


async def test_start_lifts_the_suppression_and_texts_flow_again(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="UNSUBSCRIBE"))
    await lily.run_due()
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="Start"))
    await lily.run_due()
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    await lily.run_due()
    await lily.advance(60)

    bodies = [m["body"] for m in fake_twilio.messages]
    assert len(bodies) == 3
    assert "unsubscribed" in bodies[0]
    assert "subscribed again" in bodies[1]
    assert "Sorry we missed your call" in bodies[2]


async def test_yes_from_someone_who_never_opted_out_gets_no_confirmation(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="yes"))
    await lily.run_due()

    assert fake_twilio.messages == []


async def test_help_replies_with_the_tenants_help_text(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="Help"))
    await lily.run_due()

    [reply] = fake_twilio.messages
    assert reply["to"] == numbers.caller
    assert "Acme Washing" in reply["body"]
    assert numbers.acme_contact in reply["body"]
    assert "Reply STOP to opt out" in reply["body"]


async def test_keywords_are_whole_messages_only(lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers) -> None:
    # "STOP please" is an opt-out since FCC 24-18 (test_revocation.py); these only contain the words.
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="can you stop by at 3?"))
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="can you help?"))
    await lily.run_due()

    assert fake_twilio.messages == []
    assert not await lily.host.messaging.compliance.is_suppressed("acme", numbers.caller)


async def test_stop_to_one_tenant_does_not_silence_another(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="STOP"))
    await lily.run_due()
    fake_twilio.messages.clear()

    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.bravo))
    await lily.run_due()
    await lily.advance(60)

    assert [(m["from"], m["to"]) for m in fake_twilio.messages] == [(numbers.bravo, numbers.caller)]


async def test_stop_confirmation_goes_out_during_quiet_hours(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers, new_york
) -> None:
    lily.clock.set(new_york(23, 30))

    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="STOP"))
    await lily.run_due()

    assert len(fake_twilio.messages) == 1
