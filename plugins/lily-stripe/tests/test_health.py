"""Health: the key is checked with a real (fake) Stripe call; past-due tenants show as a warning."""

from __future__ import annotations

from typing import Any

from lily_host.testing import Harness
from lily_stripe.fake import FakeStripe

TENANT = "acme"


async def stripe_health(lily: Harness) -> dict[str, Any]:
    response = await lily.client.get("/health", headers=lily.admin_headers)
    report: dict[str, Any] = (await response.get_json())["plugins"]["stripe"]
    return report


async def test_an_accepted_key_is_ok(lily: Harness, fake_stripe: FakeStripe) -> None:
    report = await stripe_health(lily)

    assert report["state"] == "ok"
    assert report["checks"]["api"]["state"] == "ok"
    assert report["checks"]["api"]["details"]["mode"] == "test"
    [call] = fake_stripe.requests_to("GET", "/v1/balance")
    assert call.api_key == fake_stripe.api_key


async def test_a_wrong_key_is_failed(lily: Harness, fake_stripe: FakeStripe) -> None:
    fake_stripe.api_key = "sk_test_someone_else"
    response = await lily.client.get("/health", headers=lily.admin_headers)
    report = (await response.get_json())["plugins"]["stripe"]

    assert response.status_code == 503
    assert report["state"] == "failed"
    assert report["checks"]["api"]["details"]["reason"] == "auth"
    assert "STRIPE_SECRET_KEY" in report["checks"]["api"]["message"]


async def test_an_unreachable_stripe_is_failed(lily: Harness, fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next("GET", "/v1/balance", status=500)
    report = await stripe_health(lily)
    assert report["checks"]["api"]["state"] == "failed"
    assert report["checks"]["api"]["details"]["reason"] == "unreachable"


async def test_without_a_key_it_is_not_configured(lily_harness: Any) -> None:
    async with lily_harness(plugins=["stripe"]) as lily:
        report = await stripe_health(lily)
    assert report["state"] == "not_configured"
    assert "STRIPE_SECRET_KEY" in report["message"]


async def test_a_past_due_tenant_is_a_warning_and_keeps_its_automations(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    body = {"plan": "starter", "success_url": "https://app.test/ok", "cancel_url": "https://app.test/no"}
    created = await lily.client.post("/api/billing/checkout", json=body, headers=await lily.tenant_headers())
    completed = fake_stripe.complete_checkout((await created.get_json())["id"])
    subscription_id = completed["data"]["object"]["subscription"]
    await post_event(fake_stripe.update_subscription(subscription_id, status="past_due"))
    await lily.advance(5)

    report = await stripe_health(lily)
    tenant = await lily.host.tenants.require(TENANT)
    assert tenant.automations_active
    assert report["state"] == "degraded"
    assert report["checks"]["subscriptions"]["details"]["past_due"] == [TENANT]
    assert "past due" in report["checks"]["subscriptions"]["message"]

    await post_event(fake_stripe.update_subscription(subscription_id, status="active"))
    await lily.advance(5)
    assert (await stripe_health(lily))["state"] == "ok"


async def test_the_key_check_is_reused_for_30_seconds(lily: Harness, fake_stripe: FakeStripe) -> None:
    await stripe_health(lily)
    await stripe_health(lily)
    assert len(fake_stripe.requests_to("GET", "/v1/balance")) == 1

    lily.clock.advance(31)
    await stripe_health(lily)
    assert len(fake_stripe.requests_to("GET", "/v1/balance")) == 2
