"""``POST /webhooks/stripe``: verify, dedupe on the event id, and hand subscription changes to the sync task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quart import Response, jsonify

from lily_host import (
    InvalidPayload,
    Tenant,
    TenantDirectory,
    WebhookContext,
    WebhookEndpoint,
    WebhookRequest,
    current_host,
)
from lily_stripe import signature
from lily_stripe.metrics import EVENTS
from lily_stripe.settings import StripeSettings
from lily_stripe.sync import CUSTOMER_INDEX, SYNC_DELAY_SECONDS, SYNC_TASK, redis_time, sync_payload

CHECKOUT_COMPLETED = "checkout.session.completed"
#: Events that say "this subscription changed": each triggers a fetch of the subscription.
SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    }
)
#: Stripe retries for up to three days; remember event ids a day longer.
DEDUPE_TTL_SECONDS = 4 * 24 * 3600


@dataclass(frozen=True)
class StripeEvent:
    """The parts of a Stripe event the endpoint uses."""

    id: str
    type: str
    subscription: str | None
    customer: str | None
    #: Tenant ids the event names itself (client_reference_id, subscription metadata), best first.
    tenant_hints: tuple[str, ...]


def _object_id(value: Any) -> str | None:
    """An id field that may also arrive expanded into an object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def parse_event(body: Any) -> StripeEvent:
    if not isinstance(body, Mapping):
        raise InvalidPayload("a Stripe event is a JSON object")
    event_id, event_type, data = body.get("id"), body.get("type"), body.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not (isinstance(event_id, str) and event_id and isinstance(event_type, str) and isinstance(obj, Mapping)):
        raise InvalidPayload("not a Stripe event: id, type and data.object are required")
    metadata = obj.get("metadata")
    metadata_tenant = metadata.get("tenant_id") if isinstance(metadata, Mapping) else None
    hints: list[str] = []
    subscription = customer = None
    if event_type == CHECKOUT_COMPLETED and obj.get("mode") == "subscription":
        subscription, customer = _object_id(obj.get("subscription")), _object_id(obj.get("customer"))
        if subscription is None or customer is None:
            raise InvalidPayload("checkout.session.completed in subscription mode needs subscription and customer")
        hints.append(obj.get("client_reference_id") or "")
    elif event_type in SUBSCRIPTION_EVENTS:
        subscription, customer = _object_id(obj.get("id")), _object_id(obj.get("customer"))
        if subscription is None or customer is None:
            raise InvalidPayload(f"{event_type} needs the subscription's id and customer")
    hints.append(metadata_tenant if isinstance(metadata_tenant, str) else "")
    return StripeEvent(
        id=event_id,
        type=event_type,
        subscription=subscription,
        customer=customer,
        tenant_hints=tuple(hint for hint in hints if isinstance(hint, str) and hint),
    )


def _answer(outcome: str, event: StripeEvent) -> Response:
    EVENTS.labels(event.type, outcome).inc()
    return jsonify({"received": True, "type": event.type, "outcome": outcome})


class StripeWebhook(WebhookEndpoint):
    path = "/webhooks/stripe"
    integration = "stripe"
    content_types = ("application/json",)
    dedupe_ttl = DEDUPE_TTL_SECONDS
    # Stripe sends every event type the endpoint subscribes to, for customers Lily may not know:
    # those are answered 2xx (ignored) rather than 404, so Stripe does not retry them for days.
    tenant_required = False

    def parse(self, request: WebhookRequest) -> StripeEvent:
        return parse_event(request.json())

    async def resolve_tenant(self, request: WebhookRequest, payload: Any, tenants: TenantDirectory) -> Tenant | None:
        event: StripeEvent = payload
        if event.subscription is None:
            return None
        if event.customer is not None:
            tenant = await tenants.resolve(CUSTOMER_INDEX, event.customer)
            if tenant is not None:
                return tenant
        for hint in event.tenant_hints:
            tenant = await tenants.get(hint)
            if tenant is not None:
                return tenant
        return None

    def verify(self, request: WebhookRequest, payload: Any, tenant: Tenant | None) -> None:
        settings: StripeSettings = request.settings
        signature.verify(
            request.body,
            request.headers.get(signature.HEADER),
            settings.webhook_secrets,
            now=current_host().clock.now(),
        )

    def delivery_id(self, request: WebhookRequest, payload: Any) -> str | None:
        event: StripeEvent = payload
        return event.id

    async def handle(self, request: WebhookRequest, payload: Any, ctx: WebhookContext) -> Response | None:
        event: StripeEvent = payload
        if await ctx.seen_before():
            # The pipeline's atomic commit refuses the redelivery anyway; this only labels the answer and metric.
            return _answer("duplicate", event)
        if event.subscription is None or event.customer is None:
            return _answer("ignored", event)
        if ctx.tenant is None:
            ctx.log.info("Stripe event names no Lily tenant; ignored", stripe_event=event.id, type=event.type)
            return _answer("unknown_tenant", event)
        ctx.schedule(
            SYNC_TASK,
            sync_payload(
                subscription=event.subscription,
                customer=event.customer,
                event_type=event.type,
                event_id=event.id,
                received_at=await redis_time(ctx.host.redis),
            ),
            delay=SYNC_DELAY_SECONDS,
        )
        return _answer("synced", event)
