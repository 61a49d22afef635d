"""A Stripe subscription reduced to what a tenant record keeps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lily_stripe.settings import StripeSettings

#: Statuses after which the subscription never comes back: the tenant has no plan.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})
KNOWN_STATUSES = frozenset(
    {"incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused"}
)
#: Plan of a live subscription whose price is none of STRIPE_PRICE_*.
UNKNOWN_PLAN = "unknown"


class MalformedSubscription(ValueError):
    """Stripe's answer lacks a field we need."""


@dataclass(frozen=True)
class SubscriptionState:
    id: str
    customer: str
    status: str
    price_id: str | None
    trial_end: float | None
    current_period_end: float | None
    cancel_at_period_end: bool
    cancel_at: float | None
    created: float
    tenant_id: str | None

    @property
    def live(self) -> bool:
        return self.status not in ENDED_STATUSES

    def plan(self, settings: StripeSettings) -> str:
        if not self.live:
            return "none"
        return settings.plan_for_price(self.price_id) or UNKNOWN_PLAN

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any]) -> SubscriptionState:
        subscription_id = data.get("id")
        customer = data.get("customer")
        if isinstance(customer, Mapping):  # an expanded customer
            customer = customer.get("id")
        status = data.get("status")
        if not (isinstance(subscription_id, str) and isinstance(customer, str) and isinstance(status, str)):
            raise MalformedSubscription("a subscription needs id, customer and status")
        items = data.get("items")
        first_item: Mapping[str, Any] = {}
        if isinstance(items, Mapping) and isinstance(items.get("data"), list) and items["data"]:
            first_item = items["data"][0] if isinstance(items["data"][0], Mapping) else {}
        price = first_item.get("price")
        price_id = price.get("id") if isinstance(price, Mapping) else price if isinstance(price, str) else None
        # API 2025-03-31 moved the billing period onto the items; older versions keep it on the subscription.
        period_end = first_item.get("current_period_end", data.get("current_period_end"))
        metadata = data.get("metadata")
        tenant_id = metadata.get("tenant_id") if isinstance(metadata, Mapping) else None
        return cls(
            id=subscription_id,
            customer=customer,
            status=status,
            price_id=price_id if isinstance(price_id, str) else None,
            trial_end=_timestamp(data.get("trial_end")),
            current_period_end=_timestamp(period_end),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            cancel_at=_timestamp(data.get("cancel_at")),
            created=_timestamp(data.get("created")) or 0.0,
            tenant_id=tenant_id if isinstance(tenant_id, str) and tenant_id else None,
        )

    @classmethod
    def gone(cls, subscription_id: str, customer: str) -> SubscriptionState:
        """A subscription Stripe no longer knows (deleted test data): treat it as canceled."""
        return cls(
            id=subscription_id,
            customer=customer,
            status="canceled",
            price_id=None,
            trial_end=None,
            current_period_end=None,
            cancel_at_period_end=False,
            cancel_at=None,
            created=0.0,
            tenant_id=None,
        )


def _timestamp(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
