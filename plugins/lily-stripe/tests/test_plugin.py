"""Registration and settings: what the host sees of the plugin."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lily_host.testing import Harness
from lily_stripe.sandbox import SANDBOX_PRICES
from lily_stripe.settings import StripeSettings


def make_settings(**overrides: Any) -> StripeSettings:
    values = {
        "secret_key": "sk_test_x",
        "webhook_secret": "whsec_a",
        "price_starter": SANDBOX_PRICES["starter"],
        "price_pro": SANDBOX_PRICES["pro"],
        "price_growth": SANDBOX_PRICES["growth"],
        **overrides,
    }
    return StripeSettings(**values)


def test_defaults_are_a_14_day_trial_against_stripes_api() -> None:
    settings = make_settings()
    assert (settings.trial_days, settings.api_base, settings.trial_requires_card) == (
        14,
        "https://api.stripe.com",
        True,
    )


def test_a_comma_separated_webhook_secret_is_a_list_for_secret_rolls() -> None:
    assert make_settings(webhook_secret="whsec_new, whsec_old ,").webhook_secrets == ["whsec_new", "whsec_old"]


def test_each_price_maps_back_to_its_plan() -> None:
    settings = make_settings()
    assert [settings.plan_for_price(price) for price in SANDBOX_PRICES.values()] == ["starter", "pro", "growth"]
    assert settings.plan_for_price("price_other") is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"price_pro": SANDBOX_PRICES["starter"]},
        {"secret_key": "  "},
        {"api_base": "api.stripe.com"},
        {"trial_days": -1},
    ],
    ids=["same-price-twice", "blank-key", "no-scheme", "negative-trial"],
)
def test_invalid_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_settings(**overrides)


def test_secrets_never_show_in_the_settings_repr() -> None:
    text = repr(make_settings(secret_key="sk_live_very_secret", webhook_secret="whsec_hidden"))
    assert "very_secret" not in text
    assert "whsec_hidden" not in text


async def test_the_plugin_registers_its_webhook_routes_task_and_checks(lily: Harness) -> None:
    record = lily.host.registry.records["stripe"]
    assert record.state == "loaded"
    assert record.tasks == ["stripe.sync_subscription"]
    assert record.health_checks == ["api", "subscriptions"]
    assert {
        "POST /webhooks/stripe",
        "POST /api/billing/checkout",
        "POST /api/billing/portal",
        "GET /api/billing",
    } <= set(record.routes)


async def test_invalid_settings_fail_the_plugin_with_a_message_naming_them(
    lily_harness: Any, stripe_env: dict[str, str]
) -> None:
    env = {**stripe_env, "STRIPE_PRICE_PRO": stripe_env["STRIPE_PRICE_STARTER"]}
    async with lily_harness(plugins=["stripe"], env=env) as lily:
        record = lily.host.registry.records["stripe"]
        assert record.state == "failed"
        assert "STRIPE_PRICE_PRO" in (record.error or "")


async def test_an_oversized_webhook_is_413(lily: Harness, post_event: Any) -> None:
    response = await post_event(b'{"id": "evt_big", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    assert response.status_code == 413
