"""The two-way inbox end to end: inbound texts through Twilio's webhook, replies through the API and the worker."""

from __future__ import annotations

from typing import Any

from lily_host.testing import Harness
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import call_form, message_form

SMS = "/webhooks/twilio/sms"
VOICE = "/webhooks/twilio/voice"


async def conversations(lily: Harness, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await lily.client.get("/api/conversations", headers=headers)
    assert response.status_code == 200
    listed: list[dict[str, Any]] = (await response.get_json())["conversations"]
    return listed


async def test_a_reply_to_the_missed_call_text_lands_in_the_callers_conversation(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    headers = await lily.tenant_headers("acme")
    await post_twilio(VOICE, call_form(caller=numbers.caller, to=numbers.acme))
    await lily.run_due()
    await lily.advance(60)  # the text-back's jitter
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="Driveway, ZIP 30301. Price?"))
    await lily.run_due()

    [conversation] = await conversations(lily, headers)
    assert conversation["number"] == numbers.caller
    assert conversation["unread"] == 1
    assert conversation["last_message"] == "Driveway, ZIP 30301. Price?"
    response = await lily.client.get(f"/api/conversations/{conversation['id']}", headers=headers)
    messages = (await response.get_json())["messages"]
    assert [(item["direction"], item.get("template")) for item in messages] == [("out", "missed_call"), ("in", None)]
    assert messages[0]["status"] == "sent" and "Sorry we missed your call" in messages[0]["body"]
    assert messages[1]["body"] == "Driveway, ZIP 30301. Price?"


async def test_unread_conversations_come_first_and_read_marks_them(lily: Harness, post_twilio, numbers) -> None:
    headers = await lily.tenant_headers("acme")
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="first"))
    await lily.run_due()
    await lily.host.messaging.queue_sms("acme", numbers.other_caller, template="missed_call")
    await lily.advance(5)

    listed = await conversations(lily, headers)
    assert [(item["number"], item["unread"]) for item in listed] == [(numbers.caller, 1), (numbers.other_caller, 0)]

    read = await lily.client.post(f"/api/conversations/{listed[0]['id']}/read", headers=headers)
    assert read.status_code == 200
    lily.clock.advance(5)
    await post_twilio(SMS, message_form(sender=numbers.other_caller, to=numbers.acme, body="hello?"))
    await lily.run_due()
    listed = await conversations(lily, headers)
    assert [(item["number"], item["unread"]) for item in listed] == [(numbers.other_caller, 1), (numbers.caller, 0)]


async def test_a_business_reply_goes_through_the_pipeline_to_twilio(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers, new_york
) -> None:
    headers = await lily.tenant_headers("acme")
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="Do you clean gutters?"))
    await lily.run_due()
    [conversation] = await conversations(lily, headers)
    url = f"/api/conversations/{conversation['id']}/messages"

    response = await lily.client.post(url, json={"body": "Yes! $120 for a single-story home."}, headers=headers)
    await lily.run_due()

    assert response.status_code == 202
    [sent] = fake_twilio.messages
    assert (sent["to"], sent["from"], sent["body"]) == (
        numbers.caller,
        numbers.acme,
        "Yes! $120 for a single-story home.",
    )
    [after] = await conversations(lily, headers)
    assert after["unread"] == 0 and after["last_direction"] == "out"

    # A reply at night waits for the morning (quiet hours apply to replies too).
    lily.clock.set(new_york(22))
    await lily.client.post(url, json={"body": "See you tomorrow"}, headers=headers)
    await lily.run_due()
    assert len(fake_twilio.messages) == 1
    lily.clock.set(new_york(9, day=3))
    await lily.run_due()
    assert fake_twilio.messages[-1]["body"] == "See you tomorrow"


async def test_replies_refused_for_opted_out_customers_and_bad_input(lily: Harness, post_twilio, numbers) -> None:
    headers = await lily.tenant_headers("acme")
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="STOP"))
    await lily.run_due()
    [conversation] = await conversations(lily, headers)
    url = f"/api/conversations/{conversation['id']}/messages"

    opted_out = await lily.client.post(url, json={"body": "are you sure?"}, headers=headers)
    empty = await lily.client.post(url, json={"body": "  "}, headers=headers)
    extra = await lily.client.post(url, json={"body": "hi", "to": "+15550000000"}, headers=headers)
    not_json = await lily.client.post(url, data="body=hi", headers=headers)
    unknown = await lily.client.post(
        "/api/conversations/" + "0" * 32 + "/messages", json={"body": "x"}, headers=headers
    )
    malformed = await lily.client.get("/api/conversations/../../etc", headers=headers)
    bad_limit = await lily.client.get("/api/conversations?limit=0", headers=headers)
    no_key = await lily.client.get("/api/conversations")

    assert opted_out.status_code == 409
    assert (await opted_out.get_json())["error"] == "opted_out"
    assert (empty.status_code, extra.status_code, not_json.status_code) == (400, 400, 415)
    assert (unknown.status_code, malformed.status_code, bad_limit.status_code, no_key.status_code) == (
        404,
        404,
        400,
        401,
    )


async def test_a_tenant_sees_only_its_own_conversations(lily: Harness, post_twilio, numbers) -> None:
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="for acme"))
    await lily.run_due()
    [acme_conversation] = await conversations(lily, await lily.tenant_headers("acme"))
    bravo = await lily.tenant_headers("bravo")

    assert await conversations(lily, bravo) == []
    response = await lily.client.get(f"/api/conversations/{acme_conversation['id']}", headers=bravo)
    assert response.status_code == 404


async def test_a_redelivered_inbound_text_is_kept_once(lily: Harness, numbers) -> None:
    data = {"from": numbers.caller, "to": numbers.acme, "body": "hello", "message_sid": "SM" + "1" * 32, "media": []}
    await lily.host.events.emit("message.received", data, tenant="acme")
    await lily.host.events.emit("message.received", data, tenant="acme")
    await lily.run_due()

    [conversation] = await conversations(lily, await lily.tenant_headers("acme"))
    assert conversation["unread"] == 1


async def test_conversations_are_erased_with_the_tenant_and_trimmed_after_retention(
    lily: Harness, post_twilio, numbers
) -> None:
    await lily.host.tenants.update("acme", retention_days=2)
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="old"))
    await lily.run_due()
    lily.clock.advance(3 * 86400)
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="new"))
    await lily.run_due()
    headers = await lily.tenant_headers("acme")
    [conversation] = await conversations(lily, headers)
    response = await lily.client.get(f"/api/conversations/{conversation['id']}", headers=headers)
    assert [item["body"] for item in (await response.get_json())["messages"]] == ["new"]
    ttl = await lily.host.redis.ttl(f"lily:{{t:acme}}:conv:msgs:{conversation['id']}")
    assert 0 < ttl <= 2 * 86400

    await lily.host.delete_tenant("acme")
    await lily.run_due()
    assert [key async for key in lily.host.redis.scan_iter(match="lily:{t:*}:conv:*")] == []
