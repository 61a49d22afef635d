"""Revocation in plain words and the consent ledger, end to end through Twilio's webhooks and the worker."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from lily_host.testing import Harness
from lily_host.testing import lily_cli as main
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import message_form

SMS = "/webhooks/twilio/sms"


async def test_a_revocation_phrase_opts_out_and_is_confirmed_once(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="Please stop texting me."))
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="remove me from your list"))
    await lily.run_due()

    [confirmation] = fake_twilio.messages
    assert "unsubscribed" in confirmation["body"]
    assert await lily.host.messaging.compliance.is_suppressed("acme", numbers.caller)
    # Nothing but the confirmation reaches the number afterwards.
    await lily.host.messaging.queue_sms("acme", numbers.caller, template="missed_call")
    await lily.advance(3600)
    assert len(fake_twilio.messages) == 1


async def test_a_sentence_that_only_contains_stop_is_an_ordinary_message(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="Can you stop by tomorrow?"))
    await lily.run_due()

    assert fake_twilio.messages == []
    assert not await lily.host.messaging.compliance.is_suppressed("acme", numbers.caller)


async def test_the_ledger_records_each_change_with_its_source(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    stop = message_form(sender=numbers.caller, to=numbers.acme, body="STOP")
    await post_twilio(SMS, stop)
    await lily.run_due()
    lily.clock.advance(60)
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="start"))
    await lily.run_due()
    lily.clock.advance(60)
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="don't text me anymore"))
    await lily.run_due()
    # Carrier refusal (21610) on bravo's send.
    fake_twilio.opt_out(numbers.caller)
    await lily.host.messaging.queue_sms("bravo", numbers.caller, template="missed_call")
    await lily.run_due()

    response = await lily.client.get(f"/api/sms/consent/{numbers.caller}", headers=lily.admin_headers)
    entries = (await response.get_json())["entries"]
    summary = [(entry["tenant"], entry["action"], entry["source"], entry["changed"]) for entry in entries]
    assert summary == [
        ("acme", "opt_out", "keyword", True),
        ("acme", "opt_in", "keyword", True),
        ("acme", "opt_out", "phrase", True),
        ("bravo", "opt_out", "carrier", True),
    ]
    assert entries[0]["detail"] == "keyword:STOP"
    assert entries[0]["at"] < entries[1]["at"] < entries[2]["at"]
    only_acme = await lily.client.get(f"/api/sms/consent/{numbers.caller}?tenant=acme", headers=lily.admin_headers)
    assert len((await only_acme.get_json())["entries"]) == 3
    # The ledger keys hold no plaintext number.
    keys = [key.decode() async for key in lily.host.redis.scan_iter(match="lily:sms:consent:*")]
    assert len(keys) == 1 and numbers.caller.lstrip("+") not in keys[0]


async def test_a_redelivered_stop_is_recorded_once(lily: Harness, post_twilio, numbers) -> None:
    form = message_form(sender=numbers.caller, to=numbers.acme, body="STOP")
    await lily.host.events.emit(
        "message.received",
        {"from": numbers.caller, "to": numbers.acme, "body": "STOP", "message_sid": form["MessageSid"], "media": []},
        tenant="acme",
    )
    await lily.host.events.emit(
        "message.received",
        {"from": numbers.caller, "to": numbers.acme, "body": "STOP", "message_sid": form["MessageSid"], "media": []},
        tenant="acme",
    )
    await lily.run_due()

    response = await lily.client.get(f"/api/sms/consent/{numbers.caller}", headers=lily.admin_headers)
    assert len((await response.get_json())["entries"]) == 1


async def test_admin_api_records_consent_and_refuses_bad_input(lily: Harness, numbers) -> None:
    url = f"/api/sms/consent/{numbers.caller}"
    changed = await lily.client.post(url, json={"tenant": "acme", "action": "opt_out"}, headers=lily.admin_headers)
    again = await lily.client.post(url, json={"tenant": "acme", "action": "opt_out"}, headers=lily.admin_headers)
    bad_action = await lily.client.post(url, json={"tenant": "acme", "action": "maybe"}, headers=lily.admin_headers)
    no_tenant = await lily.client.post(url, json={"tenant": "nope", "action": "opt_in"}, headers=lily.admin_headers)
    bad_number = await lily.client.get("/api/sms/consent/12ab", headers=lily.admin_headers)
    no_token = await lily.client.get(url)

    assert (await changed.get_json())["changed"] is True
    assert (await again.get_json())["changed"] is False
    assert (bad_action.status_code, no_tenant.status_code, bad_number.status_code) == (400, 404, 400)
    assert no_token.status_code == 401
    assert await lily.host.messaging.compliance.is_suppressed("acme", numbers.caller)
    entries = (await (await lily.client.get(url, headers=lily.admin_headers)).get_json())["entries"]
    assert [(entry["source"], entry["changed"]) for entry in entries] == [("api", True), ("api", False)]


async def test_the_ledger_survives_tenant_erasure_and_exports_from_the_cli(lily: Harness, post_twilio, numbers) -> None:
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="unsubscribe me"))
    await lily.run_due()
    assert await lily.host.delete_tenant("acme")
    await lily.run_due()

    assert await lily.host.messaging.compliance.is_suppressed("acme", numbers.caller)
    runner = CliRunner()
    # The CLI runs its own event loop: in a thread, against the same Redis (the harness set the env).
    result = await asyncio.to_thread(runner.invoke, main, ["sms", "consent", numbers.caller])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.output)
    assert [(entry["tenant"], entry["source"]) for entry in exported["entries"]] == [("acme", "phrase")]
    assert numbers.caller not in result.output

    bad = await asyncio.to_thread(runner.invoke, main, ["sms", "consent", "not-a-number"])
    assert bad.exit_code != 0 and "NUMBER" in bad.output and "Traceback" not in bad.output
