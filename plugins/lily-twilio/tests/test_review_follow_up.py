"""Review requests that follow up once, never gate: jobs API → worker → Twilio fake; clicks and replies cancel."""

from __future__ import annotations

import re

from lily_host.testing import TEST_PUBLIC_URL, Harness
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import message_form

SMS = "/webhooks/twilio/sms"
DAY = 86400.0


async def complete_job(lily: Harness, numbers, job_id: str = "J1") -> None:
    body = {"customer_name": "Sam Lee", "customer_phone": numbers.caller, "service": "roof wash"}
    response = await lily.client.post(f"/api/jobs/{job_id}/complete", json=body, headers=await lily.tenant_headers())
    assert response.status_code == 202
    await lily.run_due()
    await lily.advance(DAY)  # the review request goes 24 h after completion


def follow_ups(fake_twilio: FakeTwilio) -> list[str]:
    return [message["body"] for message in fake_twilio.messages if "a quick reminder from" in message["body"]]


def tracked(body: str) -> str:
    match = re.search(re.escape(TEST_PUBLIC_URL) + r"/r/([A-Za-z0-9_-]+)", body)
    assert match, body
    return match.group(1)


async def test_off_by_default_the_request_carries_the_plain_link(lily: Harness, fake_twilio: FakeTwilio, numbers):
    await complete_job(lily, numbers)
    await lily.advance(30 * DAY)

    [request] = fake_twilio.messages
    assert "https://g.page/r/acme" in request["body"]
    assert follow_ups(fake_twilio) == []


async def test_one_follow_up_after_the_tenants_delay_through_a_tracked_link(
    lily: Harness, fake_twilio: FakeTwilio, numbers
) -> None:
    await lily.host.tenants.update("acme", review_follow_up_days=3)
    await complete_job(lily, numbers)
    [request] = fake_twilio.messages
    token = tracked(request["body"])

    await lily.advance(3 * DAY - 60)
    assert follow_ups(fake_twilio) == []
    await lily.advance(120)
    [follow_up] = follow_ups(fake_twilio)
    assert tracked(follow_up) == token
    await lily.advance(30 * DAY)
    assert len(follow_ups(fake_twilio)) == 1

    click = await lily.client.get(f"/r/{token}")
    assert (click.status_code, click.headers["Location"]) == (302, "https://g.page/r/acme")


async def test_a_click_a_reply_or_stop_cancels_the_follow_up(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    await lily.host.tenants.update("acme", review_follow_up_days=2)
    for index, action in enumerate(("click", "reply", "stop")):
        fake_twilio.messages.clear()
        await complete_job(lily, numbers, job_id=f"J{index}")
        token = tracked(fake_twilio.messages[0]["body"])
        if action == "click":
            assert (await lily.client.get(f"/r/{token}")).status_code == 302
        elif action == "reply":
            await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="Done, thanks!"))
        else:
            await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body="STOP"))
        await lily.run_due()
        await lily.advance(5 * DAY)
        assert follow_ups(fake_twilio) == [], action
        assert [task for task in await lily.host.queue.list_tasks("due") if task.type == "reviews.follow_up"] == []


async def test_no_sentiment_routing_an_unhappy_reply_is_treated_like_any_other(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio, numbers
) -> None:
    outcomes = []
    for index, reply in enumerate(("Terrible job, very unhappy", "Amazing work, thank you!")):
        fake_twilio.messages.clear()
        await complete_job(lily, numbers, job_id=f"S{index}")
        await post_twilio(SMS, message_form(sender=numbers.caller, to=numbers.acme, body=reply))
        await lily.run_due()
        await lily.advance(5 * DAY)
        outcomes.append([message["body"] for message in fake_twilio.messages])

    # The same single request either way; the answer triggers nothing, neither a different text nor silence.
    assert outcomes[0] == outcomes[1] and len(outcomes[0]) == 1


async def test_an_unknown_tracked_link_is_a_plain_404(lily: Harness) -> None:
    response = await lily.client.get("/r/not-a-real-token-000")
    assert response.status_code == 404
