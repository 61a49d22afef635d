"""POST /webhooks/stripe: only correctly signed, fresh, first deliveries change a tenant."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lily_host.testing import Harness
from lily_stripe.fake import FakeStripe
from lily_stripe.sandbox import SANDBOX_PRICES
from lily_stripe.signature import signature_header

TENANT = "acme"
SECRET = "whsec_lily_test_primary"


async def start_subscription(lily: Harness, fake: FakeStripe, plan: str = "starter") -> dict[str, Any]:
    """Checkout through Lily's API, then complete it at the fake: returns checkout.session.completed."""
    body = {"plan": plan, "success_url": "https://app.test/ok", "cancel_url": "https://app.test/no"}
    response = await lily.client.post("/api/billing/checkout", json=body, headers=await lily.tenant_headers(TENANT))
    assert response.status_code == 200
    return fake.complete_checkout((await response.get_json())["id"])


def counted(event_type: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("lily_stripe_events_total", {"type": event_type, "outcome": outcome})
    return value or 0.0


async def test_a_signed_checkout_completion_links_the_tenant_and_sets_plan_and_trial(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    event = await start_subscription(lily, fake_stripe, "pro")
    response = await post_event(event)
    assert response.status_code == 200
    assert (await response.get_json())["outcome"] == "synced"

    await lily.advance(5)

    tenant = await lily.host.tenants.require(TENANT)
    session = event["data"]["object"]
    subscription = fake_stripe.subscriptions[session["subscription"]]
    assert (tenant.plan, tenant.subscription_status) == ("pro", "trialing")
    assert tenant.trial_end == subscription["trial_end"] == pytest.approx(lily.clock.now() - 5 + 14 * 86400, abs=2)
    assert tenant.billing["customer_id"] == session["customer"]
    assert tenant.billing["subscription_id"] == session["subscription"]
    assert tenant.billing["price_id"] == SANDBOX_PRICES["pro"]
    assert tenant.billing["current_period_end"] == subscription["items"]["data"][0]["current_period_end"]
    assert tenant.billing["cancel_at_period_end"] is False
    resolved = await lily.host.tenants.resolve("stripe_customer", session["customer"])
    assert resolved is not None and resolved.id == TENANT


async def test_during_a_secret_roll_both_secrets_are_accepted(
    lily_harness: Any, stripe_env: dict[str, str], fake_stripe: FakeStripe
) -> None:
    env = {**stripe_env, "STRIPE_WEBHOOK_SECRET": "whsec_new, whsec_old"}
    async with lily_harness(plugins=["stripe"], env=env) as lily:
        await lily.create_tenant(TENANT)
        fake_stripe.now = lily.clock.now
        statuses: list[int] = []
        for secrets in (["whsec_new", "whsec_old"], ["whsec_old"], ["whsec_new"], ["whsec_other"]):
            event = await start_subscription(lily, fake_stripe) if not statuses else fake_stripe.event("ping", {})
            body = json.dumps(event).encode()
            header = signature_header(body, secrets, int(lily.clock.now()))
            response = await lily.client.post(
                "/webhooks/stripe", data=body, headers={"Content-Type": "application/json", "Stripe-Signature": header}
            )
            statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 403]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("old", 403),
        ("future", 403),
        ("missing-timestamp", 401),
        ("missing-header", 401),
        ("wrong-secret", 403),
        ("tampered-body", 403),
        ("v0-only", 401),
    ],
)
async def test_bad_signatures_are_refused_and_change_nothing(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any, case: str, status: int
) -> None:
    event = await start_subscription(lily, fake_stripe)
    body = json.dumps(event).encode()
    now = int(lily.clock.now())
    good = signature_header(body, [SECRET], now)
    variants: dict[str, dict[str, Any]] = {
        "old": {"timestamp": now - 301},
        "future": {"timestamp": now + 301},
        "missing-timestamp": {"header": good.split(",", 1)[1]},
        "missing-header": {"header": ""},
        "wrong-secret": {"secrets": ["whsec_attacker"]},
        "tampered-body": {"header": good, "body": body.replace(b'"acme"', b'"evil"')},
        "v0-only": {"header": good.replace("v1=", "v0=")},
    }
    options = variants[case]
    payload = options.pop("body", body)
    response = await post_event(payload, **options)

    assert response.status_code == status
    assert (await response.get_json())["error"] == "bad_signature"
    await lily.advance(60)
    tenant = await lily.host.tenants.require(TENANT)
    assert (tenant.plan, tenant.subscription_status, tenant.billing) == ("none", "none", {})
    assert fake_stripe.requests_to("GET", "/v1/subscriptions") == []


async def test_a_duplicate_delivery_changes_nothing(lily: Harness, fake_stripe: FakeStripe, post_event: Any) -> None:
    completed = await start_subscription(lily, fake_stripe)
    subscription_id = completed["data"]["object"]["subscription"]
    activated = fake_stripe.update_subscription(subscription_id, status="active")
    assert (await post_event(activated)).status_code == 200
    await lily.advance(5)
    before = await lily.host.tenants.require(TENANT)
    assert before.subscription_status == "active"

    # Stripe's state moves on without an event for it; a redelivery of the old event must not sync it.
    fake_stripe.update_subscription(subscription_id, status="past_due")
    duplicate_before = counted("customer.subscription.updated", "duplicate")
    again = await post_event(activated)
    await lily.advance(60)

    assert again.status_code == 200
    assert (await again.get_json())["outcome"] == "duplicate"
    assert counted("customer.subscription.updated", "duplicate") == duplicate_before + 1
    after = await lily.host.tenants.require(TENANT)
    assert after.model_dump() == before.model_dump()
    assert len(fake_stripe.requests_to("GET", "/v1/subscriptions")) == 1


async def test_other_event_types_are_acknowledged_ignored_and_counted(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    before = counted("invoice.paid", "ignored")
    event = fake_stripe.event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_x"})
    response = await post_event(event)

    assert response.status_code == 200
    assert await response.get_json() == {"received": True, "type": "invoice.paid", "outcome": "ignored"}
    assert counted("invoice.paid", "ignored") == before + 1
    assert (await lily.host.queue.stats()).due == 0


async def test_a_checkout_that_is_not_a_subscription_is_ignored(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    session = {"id": "cs_1", "object": "checkout.session", "mode": "payment", "client_reference_id": TENANT}
    response = await post_event(fake_stripe.event("checkout.session.completed", session))
    assert (await response.get_json())["outcome"] == "ignored"


async def test_a_subscription_of_no_lily_tenant_is_acknowledged_and_ignored(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    customer = fake_stripe.add_customer()
    foreign = fake_stripe.create_subscription(customer, SANDBOX_PRICES["pro"], metadata={"tenant_id": "nobody"})
    before = counted("customer.subscription.updated", "unknown_tenant")
    response = await post_event(fake_stripe.event("customer.subscription.updated", foreign))

    assert response.status_code == 200
    assert (await response.get_json())["outcome"] == "unknown_tenant"
    assert counted("customer.subscription.updated", "unknown_tenant") == before + 1
    assert (await lily.host.queue.stats()).due == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[]", "application/json", 400),
        (b'{"type": "customer.subscription.updated", "data": {"object": {}}}', "application/json", 400),
        (
            b'{"id": "evt_1", "type": "customer.subscription.updated", "data": {"object": {"id": "sub_1"}}}',
            "application/json",
            400,
        ),
        (b'{"id": "evt_1"}', "text/plain", 415),
    ],
    ids=["malformed", "not-an-object", "no-id", "no-customer", "wrong-type"],
)
async def test_malformed_deliveries_are_4xx(
    lily: Harness, post_event: Any, body: bytes, content_type: str, status: int
) -> None:
    response = await post_event(body, content_type=content_type)
    assert response.status_code == status
    assert (await lily.host.queue.stats()).due == 0


async def test_without_stripe_settings_the_webhook_is_503(lily_harness: Any) -> None:
    async with lily_harness(plugins=["stripe"]) as lily:
        response = await lily.client.post("/webhooks/stripe", json={"id": "evt_1"})
        assert response.status_code == 503
