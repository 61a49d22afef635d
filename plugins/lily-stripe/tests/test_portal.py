"""POST /api/billing/portal and GET /api/billing."""

from __future__ import annotations

from lily_host.testing import Harness
from lily_stripe.fake import FakeStripe

TENANT = "acme"
PORTAL = "/api/billing/portal"
RETURN_URL = "https://app.lily.test/settings/billing"


async def link_customer(lily: Harness, fake: FakeStripe) -> str:
    customer = fake.add_customer(email="owner@acme.test")
    await lily.host.tenants.update(
        TENANT,
        plan="pro",
        subscription_status="active",
        billing={"customer_id": customer, "subscription_id": "sub_1", "current_period_end": 1_800_000_000.0},
    )
    return customer


async def test_the_portal_url_is_a_fresh_session_for_the_tenants_customer(
    lily: Harness, fake_stripe: FakeStripe
) -> None:
    customer = await link_customer(lily, fake_stripe)
    response = await lily.client.post(PORTAL, json={"return_url": RETURN_URL}, headers=await lily.tenant_headers())

    assert response.status_code == 200
    [sent] = fake_stripe.requests_to("POST", "/v1/billing_portal/sessions")
    assert sent.params == {"customer": customer, "return_url": RETURN_URL}
    [session] = fake_stripe.portal_sessions.values()
    assert await response.get_json() == {"url": session["url"]}


async def test_a_tenant_without_a_stripe_customer_gets_409_pointing_to_checkout(
    lily: Harness, fake_stripe: FakeStripe
) -> None:
    response = await lily.client.post(PORTAL, json={"return_url": RETURN_URL}, headers=await lily.tenant_headers())

    assert response.status_code == 409
    answer = await response.get_json()
    assert answer["error"] == "no_customer"
    assert "/api/billing/checkout" in answer["message"]
    assert fake_stripe.requests == []


async def test_the_return_url_is_required_and_checked(lily: Harness, fake_stripe: FakeStripe) -> None:
    await link_customer(lily, fake_stripe)
    headers = await lily.tenant_headers()
    missing = await lily.client.post(PORTAL, json={}, headers=headers)
    relative = await lily.client.post(PORTAL, json={"return_url": "/billing"}, headers=headers)
    assert (missing.status_code, relative.status_code) == (400, 400)
    assert fake_stripe.requests == []


async def test_a_customer_stripe_does_not_know_is_502(lily: Harness, fake_stripe: FakeStripe) -> None:
    await lily.host.tenants.update(TENANT, billing={"customer_id": "cus_deleted"})
    response = await lily.client.post(PORTAL, json={"return_url": RETURN_URL}, headers=await lily.tenant_headers())

    assert response.status_code == 502
    answer = await response.get_json()
    assert answer["error"] == "billing_misconfigured"
    assert "No such customer" in answer["message"]


async def test_stripe_down_is_502(lily: Harness, fake_stripe: FakeStripe) -> None:
    await link_customer(lily, fake_stripe)
    fake_stripe.fail_next("POST", "/v1/billing_portal/sessions", status=503)
    response = await lily.client.post(PORTAL, json={"return_url": RETURN_URL}, headers=await lily.tenant_headers())
    assert response.status_code == 502
    assert (await response.get_json())["error"] == "billing_unavailable"


async def test_the_portal_needs_the_tenant_api_key(lily: Harness) -> None:
    assert (await lily.client.post(PORTAL, json={"return_url": RETURN_URL})).status_code == 401


async def test_get_billing_shows_the_tenants_plan_and_status(lily: Harness, fake_stripe: FakeStripe) -> None:
    await link_customer(lily, fake_stripe)
    response = await lily.client.get("/api/billing", headers=await lily.tenant_headers())

    assert response.status_code == 200
    assert await response.get_json() == {
        "plan": "pro",
        "status": "active",
        "trial_end": None,
        "current_period_end": 1_800_000_000.0,
        "cancel_at_period_end": False,
        "automations_active": True,
        "has_customer": True,
    }
