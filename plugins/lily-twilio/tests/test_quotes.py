"""Quotes by text end to end: the API, the short link page, YES replies through Twilio's webhook, follow-ups."""

from __future__ import annotations

import re
from typing import Any

from lily_host.testing import TEST_PUBLIC_URL, Harness
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import message_form

SMS = "/webhooks/twilio/sms"
DAY = 86400.0


async def send_quote(lily: Harness, numbers, **body: Any) -> Any:
    payload = {"amount": "250", "description": "driveway wash", "to": numbers.caller, **body}
    return await lily.client.post("/api/quotes/Q1/send", json=payload, headers=await lily.tenant_headers())


def accepted_events(event_log) -> list[dict[str, Any]]:
    return [payload for event, _tenant, payload in event_log if event == "quote.accepted"]


def token_of(text: str) -> str:
    match = re.search(re.escape(TEST_PUBLIC_URL) + r"/q/([A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(1)


async def status(lily: Harness) -> dict[str, Any]:
    response = await lily.client.get("/api/quotes/Q1/status", headers=await lily.tenant_headers())
    result: dict[str, Any] = await response.get_json()
    return result


async def test_a_quote_is_texted_viewed_and_accepted_by_link(
    lily: Harness, fake_twilio: FakeTwilio, numbers, event_log
) -> None:
    response = await send_quote(lily, numbers, link="https://acme.test/quotes/Q1.pdf")
    await lily.run_due()

    assert response.status_code == 202
    [text] = fake_twilio.messages
    assert text["to"] == numbers.caller
    assert text["body"].startswith("Acme Washing: here's your quote for driveway wash: $250. See it and accept: ")
    token = token_of(text["body"])
    assert (await status(lily))["status"] == "sent"

    page = await lily.client.get(f"/q/{token}")
    html = await page.get_data(as_text=True)
    assert page.status_code == 200 and "$250" in html and "Accept quote" in html
    assert "https://acme.test/quotes/Q1.pdf" in html
    assert (await status(lily))["status"] == "viewed"

    accepted = await lily.client.post(f"/q/{token}/accept")
    again = await lily.client.post(f"/q/{token}/accept")
    await lily.run_due()

    assert accepted.status_code == 200 and again.status_code == 200
    [event] = accepted_events(event_log)
    assert (event["quote_id"], event["accepted_via"], event["amount"]) == ("Q1", "link", "250.00")
    assert (await status(lily))["status"] == "accepted"
    assert "is accepted" in fake_twilio.messages[-1]["body"]
    assert len(fake_twilio.messages) == 2
    assert "Accepted" in await (await lily.client.get(f"/q/{token}")).get_data(as_text=True)


async def test_a_yes_reply_accepts_the_quote(lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers, event_log):
    await send_quote(lily, numbers)
    await lily.run_due()

    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="Yes!"))
    await lily.run_due()

    [event] = accepted_events(event_log)
    assert event["accepted_via"] == "reply"
    assert (await status(lily))["status"] == "accepted"
    assert "is accepted" in fake_twilio.messages[-1]["body"]


async def test_the_follow_up_goes_after_n_days_when_nobody_answers(
    lily: Harness, fake_twilio: FakeTwilio, numbers
) -> None:
    await lily.host.tenants.update("acme", quote_follow_up_days=3)
    await send_quote(lily, numbers)
    await lily.run_due()

    await lily.advance(3 * DAY - 60)
    assert len(fake_twilio.messages) == 1
    await lily.advance(120)
    assert len(fake_twilio.messages) == 2
    assert "just checking in on your quote for driveway wash ($250)" in fake_twilio.messages[-1]["body"]
    await lily.advance(10 * DAY)
    assert len(fake_twilio.messages) == 2


async def test_the_follow_up_is_cancelled_by_a_reply_acceptance_or_stop(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await lily.host.tenants.update("acme", quote_follow_up_days=1)
    for action in ("reply", "accept", "stop"):
        fake_twilio.messages.clear()
        await lily.host.messaging.compliance.unsuppress("acme", numbers.caller)
        await send_quote(lily, numbers)
        await lily.run_due()
        token = token_of(fake_twilio.messages[0]["body"])
        if action == "reply":
            await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="Can you do Friday?"))
        elif action == "accept":
            await lily.client.post(f"/q/{token}/accept")
        else:
            await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="STOP"))
        await lily.run_due()
        await lily.advance(2 * DAY)
        bodies = [message["body"] for message in fake_twilio.messages]
        assert not any("just checking in" in body for body in bodies), (action, bodies)
        assert [task for task in await lily.host.queue.list_tasks("due") if task.type == "quotes.follow_up"] == []


async def test_a_quote_can_go_to_a_conversation_and_bad_requests_change_nothing(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    headers = await lily.tenant_headers()
    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="photos sent, price?"))
    await lily.run_due()
    [conversation] = (await (await lily.client.get("/api/conversations", headers=headers)).get_json())["conversations"]

    by_conversation = await lily.client.post(
        "/api/quotes/Q1/send",
        json={"amount": 99.5, "description": "gutters", "conversation": conversation["id"]},
        headers=headers,
    )
    await lily.run_due()
    assert by_conversation.status_code == 202
    assert "gutters: $99.50" in fake_twilio.messages[-1]["body"]

    bad = [
        await lily.client.post(
            "/api/quotes/Q2/send", json={"amount": -1, "description": "x", "to": numbers.caller}, headers=headers
        ),
        await lily.client.post(
            "/api/quotes/Q2/send", json={"amount": "1.234", "description": "x", "to": numbers.caller}, headers=headers
        ),
        await lily.client.post(
            "/api/quotes/Q2/send", json={"amount": 5, "description": "", "to": numbers.caller}, headers=headers
        ),
        await lily.client.post("/api/quotes/Q2/send", json={"amount": 5, "description": "x"}, headers=headers),
        await lily.client.post(
            "/api/quotes/Q2/send", json={"amount": 5, "description": "x", "to": "12"}, headers=headers
        ),
        await lily.client.post(
            "/api/quotes/Q2/send",
            json={"amount": 5, "description": "x", "to": numbers.caller, "link": "ftp://x"},
            headers=headers,
        ),
        await lily.client.post("/api/quotes/Q2/send", data="amount=5", headers=headers),
        await lily.client.post(
            "/api/quotes/Q2/send", json={"amount": 5, "description": "x", "conversation": "0" * 32}, headers=headers
        ),
    ]
    assert [response.status_code for response in bad] == [400, 400, 400, 400, 400, 400, 415, 404]
    missing = await lily.client.get("/api/quotes/Q2/status", headers=headers)
    unknown_page = await lily.client.get("/q/notarealtoken0000")
    assert (missing.status_code, unknown_page.status_code) == (404, 404)

    await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="STOP"))
    await lily.run_due()
    opted_out = await lily.client.post(
        "/api/quotes/Q3/send", json={"amount": 5, "description": "x", "to": numbers.caller}, headers=headers
    )
    assert opted_out.status_code == 409
