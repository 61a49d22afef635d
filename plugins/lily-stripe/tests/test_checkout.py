"""POST /api/billing/checkout against the fake Stripe API, through the real SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lily_host.testing import Harness
from lily_stripe.fake import FakeStripe
from lily_stripe.sandbox import SANDBOX_PRICES

CHECKOUT = "/api/billing/checkout"
TENANT = "acme"
PRICE_STARTER, PRICE_PRO, PRICE_GROWTH = SANDBOX_PRICES["starter"], SANDBOX_PRICES["pro"], SANDBOX_PRICES["growth"]
Body = Callable[..., dict[str, Any]]


async def test_checkout_creates_a_subscription_session_with_the_trial_and_the_tenant_on_it(
    lily: Harness, fake_stripe: FakeStripe, checkout_body: Body
) -> None:
    response = await lily.client.post(CHECKOUT, json=checkout_body("pro"), headers=await lily.tenant_headers())

    assert response.status_code == 200
    answer = await response.get_json()
    [sent] = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    session = fake_stripe.checkout_sessions[answer["id"]]
    assert answer["url"] == session["url"]
    assert sent.api_key == fake_stripe.api_key
    assert sent.idempotency_key and sent.idempotency_key.startswith(f"lily-checkout-{TENANT}-")
    params = sent.params
    assert params["mode"] == "subscription"
    assert params["line_items"] == [{"price": PRICE_PRO, "quantity": "1"}]
    assert params["client_reference_id"] == TENANT
    assert params["metadata"]["tenant_id"] == TENANT
    assert params["subscription_data"]["trial_period_days"] == "14"
    assert params["subscription_data"]["metadata"] == {"tenant_id": TENANT, "plan": "pro"}
    assert params["success_url"] == checkout_body()["success_url"]
    assert params["cancel_url"] == checkout_body()["cancel_url"]
    # No Stripe customer yet: Checkout creates one, pre-filled with the tenant's email.
    assert params["customer_email"] == "owner@acme.test"
    assert "customer" not in params
    assert "payment_method_collection" not in params


@pytest.mark.parametrize(("plan", "price"), [("starter", PRICE_STARTER), ("growth", PRICE_GROWTH)])
async def test_each_plan_uses_its_configured_price(
    lily: Harness, fake_stripe: FakeStripe, checkout_body: Body, plan: str, price: str
) -> None:
    response = await lily.client.post(CHECKOUT, json=checkout_body(plan), headers=await lily.tenant_headers())
    assert response.status_code == 200
    assert fake_stripe.requests_to("POST", "/v1/checkout/sessions")[0].params["line_items"][0]["price"] == price


async def test_a_repeated_identical_request_reuses_the_session_through_the_idempotency_key(
    lily: Harness, fake_stripe: FakeStripe, checkout_body: Body
) -> None:
    headers = await lily.tenant_headers()
    first = await (await lily.client.post(CHECKOUT, json=checkout_body(), headers=headers)).get_json()
    second = await (await lily.client.post(CHECKOUT, json=checkout_body(), headers=headers)).get_json()
    other_plan = await (await lily.client.post(CHECKOUT, json=checkout_body("growth"), headers=headers)).get_json()

    keys = [request.idempotency_key for request in fake_stripe.requests_to("POST", "/v1/checkout/sessions")]
    assert keys[0] == keys[1] != keys[2]
    assert first == second
    assert other_plan["id"] != first["id"]
    assert len(fake_stripe.checkout_sessions) == 2


async def test_the_callers_idempotency_key_is_passed_on_scoped_to_the_tenant(
    lily: Harness, fake_stripe: FakeStripe, checkout_body: Body
) -> None:
    headers = {**await lily.tenant_headers(), "Idempotency-Key": "order-42"}
    await lily.client.post(CHECKOUT, json=checkout_body(), headers=headers)
    reused = await lily.client.post(CHECKOUT, json=checkout_body("growth"), headers=headers)

    keys = {request.idempotency_key for request in fake_stripe.requests_to("POST", "/v1/checkout/sessions")}
    assert len(keys) == 1
    # Same key, different request: Stripe refuses, and the caller is told to use a new key.
    assert reused.status_code == 409
    assert (await reused.get_json())["error"] == "idempotency_conflict"


async def test_a_returning_tenant_reuses_its_customer_and_gets_no_second_trial(
    lily: Harness, fake_stripe: FakeStripe, checkout_body: Body
) -> None:
    customer = fake_stripe.add_customer(email="owner@acme.test")
    await lily.host.tenants.update(
        TENANT,
        subscription_status="canceled",
        billing={"customer_id": customer, "subscription_id": "sub_old"},
    )
    response = await lily.client.post(CHECKOUT, json=checkout_body(), headers=await lily.tenant_headers())

    assert response.status_code == 200
    params = fake_stripe.requests_to("POST", "/v1/checkout/sessions")[0].params
    assert params["customer"] == customer
    assert "customer_email" not in params
    assert "trial_period_days" not in params["subscription_data"]


@pytest.mark.parametrize("days", ["7", "0"])
async def test_the_trial_length_follows_stripe_trial_days(
    lily_harness: Any, stripe_env: dict[str, str], fake_stripe: FakeStripe, checkout_body: Body, days: str
) -> None:
    async with lily_harness(plugins=["stripe"], env={**stripe_env, "STRIPE_TRIAL_DAYS": days}) as lily:
        await lily.create_tenant(TENANT)
        response = await lily.client.post(CHECKOUT, json=checkout_body(), headers=await lily.tenant_headers())
        assert response.status_code == 200
    subscription_data = fake_stripe.requests_to("POST", "/v1/checkout/sessions")[0].params["subscription_data"]
    assert subscription_data.get("trial_period_days") == (None if days == "0" else days)


async def test_a_card_less_trial_pauses_when_it_ends_without_a_card(
    lily_harness: Any, stripe_env: dict[str, str], fake_stripe: FakeStripe, checkout_body: Body
) -> None:
    async with lily_harness(plugins=["stripe"], env={**stripe_env, "STRIPE_TRIAL_REQUIRES_CARD": "false"}) as lily:
        await lily.create_tenant(TENANT)
        assert (await lily.client.post(CHECKOUT, json=checkout_body(), headers=await lily.tenant_headers())).is_json
    params = fake_stripe.requests_to("POST", "/v1/checkout/sessions")[0].params
    assert params["payment_method_collection"] == "if_required"
    assert params["subscription_data"]["trial_settings"] == {"end_behavior": {"missing_payment_method": "pause"}}


async def test_an_unknown_plan_is_400_naming_the_valid_ones(
    lily: Harness, fake_stripe: FakeStripe, checkout_body: Body
) -> None:
    response = await lily.client.post(CHECKOUT, json=checkout_body("enterprise"), headers=await lily.tenant_headers())

    assert response.status_code == 400
    answer = await response.get_json()
    assert answer["error"] == "invalid_plan"
    assert answer["plans"] == ["starter", "pro", "growth"]
    assert "starter, pro, growth" in answer["message"]
    assert fake_stripe.requests == []


@pytest.mark.parametrize("status", ["trialing", "active", "past_due", "unpaid", "paused", "incomplete"])
async def test_a_tenant_with_a_live_subscription_is_sent_to_the_portal(
    lily: Harness, fake_stripe: FakeStripe, checkout_body: Body, status: str
) -> None:
    await lily.host.tenants.update(TENANT, subscription_status=status, billing={"subscription_id": "sub_1"})
    response = await lily.client.post(CHECKOUT, json=checkout_body(), headers=await lily.tenant_headers())

    assert response.status_code == 409
    answer = await response.get_json()
    assert answer["error"] == "subscription_exists"
    assert answer["portal"] == "/api/billing/portal"
    assert fake_stripe.requests == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"plan": "starter", "cancel_url": "https://a.test/"}, "missing_field"),
        ({"plan": "starter", "success_url": "https://a.test/"}, "missing_field"),
        ({"plan": "starter", "success_url": "/relative", "cancel_url": "https://a.test/"}, "invalid_url"),
        ({"plan": "starter", "success_url": "javascript:alert(1)", "cancel_url": "https://a.test/"}, "invalid_url"),
        ({"plan": "starter", "success_url": 42, "cancel_url": "https://a.test/"}, "invalid_url"),
        (["starter"], "invalid_json"),
    ],
)
async def test_bad_bodies_are_400_and_reach_no_stripe(
    lily: Harness, fake_stripe: FakeStripe, body: Any, error: str
) -> None:
    response = await lily.client.post(CHECKOUT, json=body, headers=await lily.tenant_headers())
    assert response.status_code == 400
    assert (await response.get_json())["error"] == error
    assert fake_stripe.requests == []


async def test_malformed_json_wrong_type_and_oversized_bodies_are_refused(
    lily: Harness, fake_stripe: FakeStripe
) -> None:
    headers = await lily.tenant_headers()
    malformed = await lily.client.post(
        CHECKOUT, data=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    form = await lily.client.post(CHECKOUT, form={"plan": "starter"}, headers=headers)
    huge = await lily.client.post(
        CHECKOUT, data=b'{"plan": "' + b"x" * 20_000 + b'"}', headers={**headers, "Content-Type": "application/json"}
    )
    assert (malformed.status_code, form.status_code, huge.status_code) == (400, 415, 413)
    assert fake_stripe.requests == []


async def test_without_a_tenant_api_key_it_is_401(lily: Harness, checkout_body: Body) -> None:
    assert (await lily.client.post(CHECKOUT, json=checkout_body())).status_code == 401
    bad_key = {"Authorization": "Bearer lily_acme_nope"}
    assert (await lily.client.post(CHECKOUT, json=checkout_body(), headers=bad_key)).status_code == 403


@pytest.mark.parametrize(
    ("failure", "status", "error"),
    [
        ({"status": 500, "type": "api_error"}, 502, "billing_unavailable"),
        (
            {"status": 401, "type": "invalid_request_error", "message": "Invalid API Key provided"},
            502,
            "billing_unavailable",
        ),
        (
            {"status": 429, "type": "invalid_request_error", "code": "rate_limit", "headers": {"Retry-After": "7"}},
            429,
            "rate_limited",
        ),
        (
            {"status": 400, "type": "invalid_request_error", "code": "resource_missing", "message": "No such price"},
            502,
            "billing_misconfigured",
        ),
        (
            {"status": 400, "type": "invalid_request_error", "code": "url_invalid", "param": "success_url"},
            400,
            "invalid_request",
        ),
    ],
    ids=["stripe-down", "wrong-key", "rate-limited", "bad-config", "url-refused"],
)
async def test_stripe_errors_become_clear_4xx_or_502(
    lily: Harness, fake_stripe: FakeStripe, checkout_body: Body, failure: dict[str, Any], status: int, error: str
) -> None:
    fake_stripe.fail_next("POST", "/v1/checkout/sessions", **failure)
    response = await lily.client.post(CHECKOUT, json=checkout_body(), headers=await lily.tenant_headers())

    assert response.status_code == status
    answer = await response.get_json()
    assert answer["error"] == error
    assert answer["message"]
    if status == 429:
        assert response.headers["Retry-After"] == "7"


async def test_a_price_stripe_does_not_know_is_502_billing_misconfigured(
    lily_harness: Any, stripe_env: dict[str, str], fake_stripe: FakeStripe, checkout_body: Body
) -> None:
    async with lily_harness(plugins=["stripe"], env={**stripe_env, "STRIPE_PRICE_GROWTH": "price_deleted"}) as lily:
        await lily.create_tenant(TENANT)
        response = await lily.client.post(CHECKOUT, json=checkout_body("growth"), headers=await lily.tenant_headers())
        assert response.status_code == 502
        answer = await response.get_json()
    assert answer["error"] == "billing_misconfigured"
    assert "No such price" in answer["message"]


async def test_an_unreachable_stripe_is_502(lily_harness: Any, stripe_env: dict[str, str], checkout_body: Body) -> None:
    closed = FakeStripe()  # bound, never served, then closed: its port refuses connections
    url = closed.url
    closed._server.server_close()
    async with lily_harness(plugins=["stripe"], env={**stripe_env, "STRIPE_API_BASE": url}) as lily:
        await lily.create_tenant(TENANT)
        response = await lily.client.post(CHECKOUT, json=checkout_body(), headers=await lily.tenant_headers())
        assert response.status_code == 502
        assert (await response.get_json())["error"] == "billing_unavailable"


async def test_without_stripe_settings_the_billing_api_is_503_naming_them(
    lily_harness: Any, checkout_body: Body
) -> None:
    async with lily_harness(plugins=["stripe"]) as lily:
        await lily.create_tenant(TENANT)
        response = await lily.client.post(CHECKOUT, json=checkout_body(), headers=await lily.tenant_headers())
        assert response.status_code == 503
        assert "STRIPE_SECRET_KEY" in await response.get_data(as_text=True)
