"""Subscription sync: out-of-order events converge on Stripe's state; older states never win."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from lily_host import get_logger
from lily_host.testing import Harness, ManualClock
from lily_stripe.fake import FakeStripe
from lily_stripe.sandbox import SANDBOX_PRICES
from lily_stripe.signature import signature_header
from lily_stripe.subscription import SubscriptionState
from lily_stripe.sync import apply_subscription, schedule_sync

TENANT = "acme"
LOG = get_logger("lily.stripe.tests")


async def start_subscription(lily: Harness, fake: FakeStripe, plan: str = "starter") -> dict[str, Any]:
    """Checkout through Lily's API, then complete it at the fake: returns checkout.session.completed."""
    body = {"plan": plan, "success_url": "https://app.test/ok", "cancel_url": "https://app.test/no"}
    response = await lily.client.post("/api/billing/checkout", json=body, headers=await lily.tenant_headers(TENANT))
    assert response.status_code == 200
    return fake.complete_checkout((await response.get_json())["id"])


async def final_state(lily: Harness) -> dict[str, Any]:
    tenant = await lily.host.tenants.require(TENANT)
    billing = {key: value for key, value in tenant.billing.items() if key != "synced_at"}
    return {"plan": tenant.plan, "status": tenant.subscription_status, "trial_end": tenant.trial_end, **billing}


SCENARIOS = {
    # trial → paid → canceled
    "canceled": lambda fake, sub: [
        fake.update_subscription(sub, status="active"),
        fake.delete_subscription(sub),
    ],
    # trial → paid on pro → set to cancel at period end
    "upgraded": lambda fake, sub: [
        fake.update_subscription(sub, status="active", price=SANDBOX_PRICES["pro"]),
        fake.update_subscription(sub, cancel_at_period_end=True),
    ],
}
EXPECTED = {
    "canceled": {"plan": "none", "status": "canceled", "cancel_at_period_end": False},
    "upgraded": {"plan": "pro", "status": "active", "cancel_at_period_end": True},
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("run_between", [True, False], ids=["one-by-one", "all-then-run"])
async def test_the_three_events_in_every_order_give_the_same_final_state(
    lily_harness: Any, stripe_env: dict[str, str], scenario: str, run_between: bool
) -> None:
    results = []
    for order in itertools.permutations(range(3)):
        with FakeStripe() as fake:
            # Every run starts at the same instant, so the trial and period ends compare equal too.
            clock = ManualClock(1_760_000_000.0)
            env = {**stripe_env, "STRIPE_API_BASE": fake.url}
            async with lily_harness(plugins=["stripe"], env=env, clock=clock) as lily:
                fake.now = lily.clock.now
                await lily.create_tenant(TENANT)
                completed = await start_subscription(lily, fake)
                subscription_id = completed["data"]["object"]["subscription"]
                events = [completed, *SCENARIOS[scenario](fake, subscription_id)]
                for index in order:
                    response = await post_signed(lily, events[index])
                    assert response.status_code == 200
                    if run_between:
                        await lily.advance(5)
                await lily.advance(5)
                state = await final_state(lily)
                expected_trial_end = fake.subscriptions[subscription_id]["trial_end"]
        assert state["subscription_id"] == subscription_id
        assert state["trial_end"] == expected_trial_end
        assert {key: state[key] for key in EXPECTED[scenario]} == EXPECTED[scenario]
        results.append({key: value for key, value in state.items() if key not in ("subscription_id", "customer_id")})
    assert all(result == results[0] for result in results), results


async def post_signed(lily: Harness, event: dict[str, Any]) -> Any:
    body = json.dumps(event).encode()
    header = signature_header(body, ["whsec_lily_test_primary"], int(lily.clock.now()))
    return await lily.client.post(
        "/webhooks/stripe", data=body, headers={"Content-Type": "application/json", "Stripe-Signature": header}
    )


async def test_a_burst_of_events_costs_one_fetch(lily: Harness, fake_stripe: FakeStripe, post_event: Any) -> None:
    completed = await start_subscription(lily, fake_stripe)
    subscription_id = completed["data"]["object"]["subscription"]
    for event in (completed, fake_stripe.update_subscription(subscription_id, status="active")):
        assert (await post_event(event)).status_code == 200
    await lily.advance(5)

    assert len(fake_stripe.requests_to("GET", f"/v1/subscriptions/{subscription_id}")) == 1
    assert (await lily.host.tenants.require(TENANT)).subscription_status == "active"


async def test_a_state_fetched_earlier_never_overwrites_one_fetched_later(lily: Harness) -> None:
    settings, log = lily.host.plugin_settings("stripe"), LOG
    newer = SubscriptionState.from_stripe(subscription("sub_1", "canceled"))
    older = SubscriptionState.from_stripe(subscription("sub_1", "active"))

    assert await apply_subscription(lily.host, settings, TENANT, newer, fetched_at=200.0, log=log)
    assert not await apply_subscription(lily.host, settings, TENANT, older, fetched_at=100.0, log=log)

    tenant = await lily.host.tenants.require(TENANT)
    assert (tenant.subscription_status, tenant.plan, tenant.billing["synced_at"]) == ("canceled", "none", 200.0)


async def test_a_late_event_of_an_old_subscription_does_not_touch_the_new_one(lily: Harness) -> None:
    settings, log = lily.host.plugin_settings("stripe"), LOG
    current = SubscriptionState.from_stripe(subscription("sub_new", "active", created=2_000))
    old_ended = SubscriptionState.from_stripe(subscription("sub_old", "canceled", created=1_000))
    old_live = SubscriptionState.from_stripe(subscription("sub_old", "active", created=1_000))

    assert await apply_subscription(lily.host, settings, TENANT, current, fetched_at=10.0, log=log)
    assert not await apply_subscription(lily.host, settings, TENANT, old_ended, fetched_at=20.0, log=log)
    assert not await apply_subscription(lily.host, settings, TENANT, old_live, fetched_at=30.0, log=log)
    tenant = await lily.host.tenants.require(TENANT)
    assert (tenant.billing["subscription_id"], tenant.subscription_status) == ("sub_new", "active")


async def test_a_new_subscription_replaces_an_ended_one(lily: Harness) -> None:
    settings, log = lily.host.plugin_settings("stripe"), LOG
    ended = SubscriptionState.from_stripe(subscription("sub_old", "canceled", created=1_000))
    renewed = SubscriptionState.from_stripe(subscription("sub_new", "active", created=2_000, price="price_lily_growth"))

    assert await apply_subscription(lily.host, settings, TENANT, ended, fetched_at=10.0, log=log)
    assert await apply_subscription(lily.host, settings, TENANT, renewed, fetched_at=5.0, log=log)
    tenant = await lily.host.tenants.require(TENANT)
    assert (tenant.billing["subscription_id"], tenant.plan, tenant.subscription_status) == (
        "sub_new",
        "growth",
        "active",
    )


def subscription(
    subscription_id: str, status: str, *, created: int = 1_000, price: str = "price_lily_starter"
) -> dict[str, Any]:
    return {
        "id": subscription_id,
        "object": "subscription",
        "customer": "cus_acme",
        "status": status,
        "created": created,
        "metadata": {"tenant_id": TENANT},
        "items": {"data": [{"price": {"id": price}, "current_period_end": created + 86400}]},
    }


async def test_older_api_versions_keep_the_period_end_on_the_subscription(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    fake_stripe.legacy_period_fields = True
    completed = await start_subscription(lily, fake_stripe)
    await post_event(completed)
    await lily.advance(5)

    tenant = await lily.host.tenants.require(TENANT)
    served = fake_stripe.subscription_object(completed["data"]["object"]["subscription"])
    assert "current_period_end" not in served["items"]["data"][0]
    assert tenant.billing["current_period_end"] == served["current_period_end"]


async def test_a_price_outside_the_three_plans_is_plan_unknown(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    fake_stripe.prices = None  # the fake now accepts any price_... id
    completed = await start_subscription(lily, fake_stripe)
    subscription_id = completed["data"]["object"]["subscription"]
    await post_event(fake_stripe.update_subscription(subscription_id, price="price_legacy_2019"))
    await lily.advance(5)

    tenant = await lily.host.tenants.require(TENANT)
    assert (tenant.plan, tenant.billing["price_id"]) == ("unknown", "price_legacy_2019")


async def test_a_failing_fetch_is_retried_with_backoff(lily: Harness, fake_stripe: FakeStripe, post_event: Any) -> None:
    completed = await start_subscription(lily, fake_stripe)
    fake_stripe.fail_next("GET", "/v1/subscriptions/", status=500)
    await post_event(completed)
    await lily.advance(5)
    assert (await lily.host.tenants.require(TENANT)).subscription_status == "none"

    await lily.advance(120)

    assert (await lily.host.tenants.require(TENANT)).subscription_status == "trialing"
    assert len(fake_stripe.requests_to("GET", "/v1/subscriptions/")) == 2


async def test_a_rejected_key_sends_the_sync_to_the_dead_letters(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    completed = await start_subscription(lily, fake_stripe)
    fake_stripe.api_key = "sk_test_rotated"
    await post_event(completed)
    await lily.advance(5)

    [dead] = await lily.host.queue.list_tasks("dead")
    assert dead.type == "stripe.sync_subscription"
    assert "credentials" in (dead.last_error or "")
    assert (await lily.host.tenants.require(TENANT)).subscription_status == "none"


async def test_a_deleted_subscription_stripe_no_longer_knows_is_canceled(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    completed = await start_subscription(lily, fake_stripe)
    subscription_id = completed["data"]["object"]["subscription"]
    await post_event(completed)
    await lily.advance(5)
    deleted = fake_stripe.delete_subscription(subscription_id)
    del fake_stripe.subscriptions[subscription_id]  # test-mode data wiped

    await post_event(deleted)
    await lily.advance(5)

    tenant = await lily.host.tenants.require(TENANT)
    assert (tenant.plan, tenant.subscription_status) == ("none", "canceled")


async def test_an_update_naming_a_subscription_stripe_does_not_know_changes_nothing(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    completed = await start_subscription(lily, fake_stripe)
    subscription_id = completed["data"]["object"]["subscription"]
    updated = fake_stripe.update_subscription(subscription_id, status="active")
    del fake_stripe.subscriptions[subscription_id]

    await post_event(updated)
    await lily.advance(5)

    assert (await lily.host.tenants.require(TENANT)).subscription_status == "none"
    assert len(await lily.host.queue.list_tasks("dead")) == 1


async def test_metadata_naming_another_tenant_is_refused(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    await lily.create_tenant("bobs")
    completed = await start_subscription(lily, fake_stripe)
    subscription_id = completed["data"]["object"]["subscription"]
    fake_stripe.update_subscription(subscription_id, metadata={"tenant_id": "bobs"})

    await post_event(completed)  # client_reference_id says acme, Stripe's subscription says bobs
    await lily.advance(5)

    assert (await lily.host.tenants.require(TENANT)).subscription_status == "none"
    assert (await lily.host.tenants.require("bobs")).subscription_status == "none"


async def test_lily_billing_sync_refetches_the_linked_subscription(
    lily: Harness, fake_stripe: FakeStripe, post_event: Any
) -> None:
    completed = await start_subscription(lily, fake_stripe)
    await post_event(completed)
    await lily.advance(5)
    # A change whose webhook never arrived.
    fake_stripe.update_subscription(completed["data"]["object"]["subscription"], status="unpaid")

    assert await schedule_sync(lily.host, TENANT)
    await lily.run_due()

    assert (await lily.host.tenants.require(TENANT)).subscription_status == "unpaid"
