"""The Stripe calls Lily makes, through the real SDK's ``StripeClient`` (never the module globals).

The SDK blocks, so each call runs in a worker thread; each is timed and its failures counted by
``track_api_call``. Results come back as plain dicts so nothing downstream depends on StripeObject.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import stripe

from lily_host import track_api_call
from lily_stripe.settings import StripeSettings

INTEGRATION = "stripe"
T = TypeVar("T")


class StripeGateway:
    """Async wrappers around the four Stripe operations the plugin needs."""

    def __init__(self, settings: StripeSettings) -> None:
        self.client = settings.client()

    async def _call(self, operation: str, func: Callable[[], T]) -> T:
        with track_api_call(INTEGRATION, operation):
            return await asyncio.to_thread(func)

    async def create_checkout_session(self, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        session = await self._call(
            "checkout.sessions.create",
            lambda: self.client.v1.checkout.sessions.create(
                params=dict(params),  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            ),
        )
        return session.to_dict()

    async def create_portal_session(self, customer: str, return_url: str) -> dict[str, Any]:
        session = await self._call(
            "billing_portal.sessions.create",
            lambda: self.client.v1.billing_portal.sessions.create(
                params={"customer": customer, "return_url": return_url}
            ),
        )
        return session.to_dict()

    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        subscription = await self._call(
            "subscriptions.retrieve", lambda: self.client.v1.subscriptions.retrieve(subscription_id)
        )
        return subscription.to_dict()

    async def retrieve_balance(self) -> dict[str, Any]:
        balance = await self._call("balance.retrieve", lambda: self.client.v1.balance.retrieve())
        return balance.to_dict()


def retry_after(error: stripe.StripeError, default: float) -> float:
    """Seconds from a ``Retry-After`` header on the error's response, else ``default``."""
    headers = error.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default
