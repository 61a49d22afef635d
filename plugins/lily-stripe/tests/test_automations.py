"""The subscription status Stripe sets drives the tenant's automations (missed call → text back)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from lily_host.testing import Harness, ManualClock
from lily_stripe.fake import FakeStripe
from lily_stripe.signature import signature_header

TENANT = "acme"
SECRET = "whsec_lily_test_primary"
#: 11:00 in New York, the tenant's timezone: outside quiet hours, so a text-back is not deferred.
MIDDAY = datetime(2026, 6, 15, 15, 0, tzinfo=UTC).timestamp()
MISSED_CALL = {"caller": "+15551230001", "business_number": "+15559870000", "call_sid": "CA1", "status": "no-answer"}


async def deliver(lily: Harness, event: dict[str, Any]) -> None:
    body = json.dumps(event).encode()
    header = signature_header(body, [SECRET], int(lily.clock.now()))
    response = await lily.client.post(
        "/webhooks/stripe", data=body, headers={"Content-Type": "application/json", "Stripe-Signature": header}
    )
    assert response.status_code == 200
    await lily.advance(5)


@pytest.mark.parametrize(
    ("change", "texted"),
    [
        ({"status": "active"}, True),
        ({"status": "past_due"}, True),
        ("deleted", False),
        ({"status": "unpaid"}, False),
        ({"status": "paused"}, False),
    ],
    ids=["active", "past_due", "canceled", "unpaid", "paused"],
)
async def test_a_missed_call_is_texted_back_only_while_the_subscription_allows_it(
    lily_harness: Any, stripe_env: dict[str, str], fake_stripe: FakeStripe, change: Any, texted: bool
) -> None:
    async with lily_harness(plugins=["stripe"], env=stripe_env, clock=ManualClock(MIDDAY)) as lily:
        fake_stripe.now = lily.clock.now
        await lily.create_tenant(TENANT, name="Acme Washing")
        body = {"plan": "starter", "success_url": "https://app.test/ok", "cancel_url": "https://app.test/no"}
        created = await lily.client.post("/api/billing/checkout", json=body, headers=await lily.tenant_headers())
        completed = fake_stripe.complete_checkout((await created.get_json())["id"])
        subscription_id = completed["data"]["object"]["subscription"]
        await deliver(lily, completed)
        if change == "deleted":
            await deliver(lily, fake_stripe.delete_subscription(subscription_id))
        else:
            await deliver(lily, fake_stripe.update_subscription(subscription_id, **change))

        await lily.host.events.emit("call.missed", MISSED_CALL, tenant=TENANT)
        # The automation runs, then queues the text 10-45 s later; the second step sends it.
        await lily.advance(120)
        await lily.advance(120)

        outbox = await lily.outbox()
        tenant = await lily.host.tenants.require(TENANT)
    assert tenant.automations_active is texted
    if texted:
        assert [message["to"] for message in outbox] == ["+15551230001"]
    else:
        assert outbox == []
