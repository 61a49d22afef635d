"""Fixtures: a fake Stripe API on a local port, a Lily with only the stripe plugin, signed deliveries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import pytest
import stripe

from lily_host.testing import Harness, HarnessFactory
from lily_stripe.fake import FakeStripe
from lily_stripe.signature import signature_header

WEBHOOK_SECRET = "whsec_lily_test_primary"
TENANT = "acme"


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


@pytest.fixture
def stripe_env(fake_stripe: FakeStripe) -> dict[str, str]:
    # No SDK retries: they would hide the fake's injected failures from the tests.
    return {**fake_stripe.sandbox_env(WEBHOOK_SECRET), "STRIPE_MAX_NETWORK_RETRIES": "0"}


@pytest.fixture
async def lily(
    lily_harness: HarnessFactory, stripe_env: dict[str, str], fake_stripe: FakeStripe
) -> AsyncIterator[Harness]:
    """Lily with the stripe plugin, tenant ``acme``, and the fake's clock tied to Lily's."""
    async with lily_harness(plugins=["stripe"], env=stripe_env) as harness:
        fake_stripe.now = harness.clock.now
        await harness.create_tenant(TENANT, name="Acme Washing", contact_email="owner@acme.test")
        yield harness


class PostEvent(Protocol):
    def __call__(
        self,
        event: Mapping[str, Any] | bytes,
        *,
        secrets: Sequence[str] = ...,
        timestamp: int | None = ...,
        header: str | None = ...,
        content_type: str = ...,
    ) -> Awaitable[Any]: ...


@pytest.fixture
def post_event(lily: Harness) -> PostEvent:
    """POST an event to /webhooks/stripe signed exactly as Stripe does (or with the header given)."""

    async def post(
        event: Mapping[str, Any] | bytes,
        *,
        secrets: Sequence[str] = (WEBHOOK_SECRET,),
        timestamp: int | None = None,
        header: str | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> Any:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        when = int(lily.clock.now()) if timestamp is None else timestamp
        headers = {"Content-Type": content_type}
        if header is None and len(secrets) == 1:
            header = stripe.WebhookSignature.generate_signature_header(body.decode(), secrets[0], timestamp=when)
        elif header is None:
            header = signature_header(body, secrets, when)
        if header:
            headers["Stripe-Signature"] = header
        return await lily.client.post("/webhooks/stripe", data=body, headers=headers)

    return post


@pytest.fixture
def checkout_body() -> Callable[..., dict[str, Any]]:
    def build(plan: str = "starter", **overrides: Any) -> dict[str, Any]:
        return {
            "plan": plan,
            "success_url": "https://app.lily.test/billing/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.lily.test/billing",
            **overrides,
        }

    return build
