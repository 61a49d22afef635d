"""The tenant billing API under ``/api/billing``: start a Checkout, open the portal, read the state.

Every route needs the tenant's API key (``Authorization: Bearer ...``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

import stripe
from quart import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from lily_host import Tenant, UntrustedInput, current_host, get_logger, loads_json, require_tenant
from lily_stripe.errors import ApiFailure, api_failure
from lily_stripe.gateway import StripeGateway
from lily_stripe.settings import PLANS, StripeSettings
from lily_stripe.subscription import ENDED_STATUSES
from lily_stripe.sync import PLUGIN

URL_PREFIX = "/api/billing"
MAX_BODY_BYTES = 16 * 1024
MAX_URL_LENGTH = 2048
#: Identical checkout requests within this window reuse one Checkout Session (a double click, a retry).
IDEMPOTENCY_WINDOW_SECONDS = 600
#: Statuses in which the tenant has no subscription to manage, so Checkout may start a new one.
CHECKOUT_ALLOWED_STATUSES = frozenset({"none"}) | ENDED_STATUSES

log = get_logger("lily.stripe.api")


class BadRequest(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.failure = ApiFailure(status, error, message)
        self.extra = extra


def _respond(failure: ApiFailure, **extra: Any) -> Response:
    response = jsonify({**failure.body(), **extra})
    response.status_code = failure.status
    for name, value in failure.headers.items():
        response.headers[name] = value
    return response


async def _json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise BadRequest(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest(413, "too_large", f"body exceeds {MAX_BODY_BYTES} bytes")
    try:
        raw = await request.get_data(as_text=False)
    except RequestEntityTooLarge as error:  # beyond the app's MAX_CONTENT_LENGTH
        raise BadRequest(413, "too_large", f"body exceeds {MAX_BODY_BYTES} bytes") from error
    # Checked after reading too: a chunked body has no Content-Length to refuse it by.
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(413, "too_large", f"body exceeds {MAX_BODY_BYTES} bytes")
    try:
        body = loads_json(raw or b"null")
    except UntrustedInput as error:
        raise BadRequest(400, "invalid_json", str(error)) from error
    if not isinstance(body, dict):
        raise BadRequest(400, "invalid_json", "body must be a JSON object")
    return body


def _url(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise BadRequest(400, "missing_field", f"{name} is required (an absolute http(s) URL)")
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(value) > MAX_URL_LENGTH:
        raise BadRequest(
            400, "invalid_url", f"{name} must be an absolute http(s) URL of at most {MAX_URL_LENGTH} chars"
        )
    return str(value)


def _settings() -> StripeSettings:
    settings = current_host().plugin_settings(PLUGIN)
    if not isinstance(settings, StripeSettings):
        raise BadRequest(503, "not_configured", "billing is not configured on this Lily (STRIPE_* settings)")
    return settings


def checkout_params(
    settings: StripeSettings, tenant: Tenant, plan: str, success_url: str, cancel_url: str
) -> dict[str, Any]:
    """The Checkout Session for ``plan``: subscription mode, the tenant on it three ways, the trial."""
    subscription_data: dict[str, Any] = {"metadata": {"tenant_id": tenant.id, "plan": plan}}
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": [{"price": settings.prices[plan], "quantity": 1}],
        "client_reference_id": tenant.id,
        "metadata": {"tenant_id": tenant.id, "plan": plan},
        "success_url": success_url,
        "cancel_url": cancel_url,
        "subscription_data": subscription_data,
    }
    # One free trial per tenant: a tenant that ever had a subscription pays from day one.
    if settings.trial_days > 0 and not tenant.billing.get("subscription_id"):
        subscription_data["trial_period_days"] = settings.trial_days
        if not settings.trial_requires_card:
            params["payment_method_collection"] = "if_required"
            subscription_data["trial_settings"] = {"end_behavior": {"missing_payment_method": "pause"}}
    customer = tenant.billing.get("customer_id")
    if isinstance(customer, str) and customer:
        params["customer"] = customer
    elif tenant.contact_email:
        params["customer_email"] = tenant.contact_email
    return params


def idempotency_key(tenant: Tenant, params: dict[str, Any], client_key: str | None, now: float) -> str:
    """Stripe's Idempotency-Key: the caller's own key when sent, else one per identical request and window."""
    if client_key:
        material = f"client:{client_key}"
    else:
        window = int(now // IDEMPOTENCY_WINDOW_SECONDS)
        material = f"auto:{window}:{json.dumps(params, sort_keys=True)}"
    return f"lily-checkout-{tenant.id}-{hashlib.sha256(material.encode()).hexdigest()[:40]}"


def make_blueprint() -> Blueprint:
    blueprint = Blueprint("lily_stripe_billing", __name__)

    @blueprint.errorhandler(BadRequest)
    async def bad_request(error: BadRequest) -> Response:
        return _respond(error.failure, **error.extra)

    @blueprint.post("/checkout")
    @require_tenant
    async def checkout() -> Response:
        tenant: Tenant = g.tenant
        settings = _settings()
        body = await _json_body()
        plan = body.get("plan")
        if plan not in PLANS:
            raise BadRequest(
                400, "invalid_plan", f"plan must be one of {', '.join(PLANS)} (got {plan!r})", plans=list(PLANS)
            )
        success_url, cancel_url = _url(body, "success_url"), _url(body, "cancel_url")
        if tenant.subscription_status not in CHECKOUT_ALLOWED_STATUSES:
            raise BadRequest(
                409,
                "subscription_exists",
                f"the tenant already has a {tenant.subscription_status} subscription; change or cancel it in the "
                f"customer portal (POST {URL_PREFIX}/portal)",
                portal=f"{URL_PREFIX}/portal",
                subscription_status=tenant.subscription_status,
            )
        client_key = request.headers.get("Idempotency-Key", "").strip() or None
        if client_key is not None and len(client_key) > 200:
            raise BadRequest(400, "invalid_idempotency_key", "Idempotency-Key must be at most 200 characters")
        params = checkout_params(settings, tenant, str(plan), success_url, cancel_url)
        key = idempotency_key(tenant, params, client_key, current_host().clock.now())
        try:
            session = await StripeGateway(settings).create_checkout_session(params, idempotency_key=key)
        except stripe.StripeError as error:
            failure = api_failure(error)
            log.warning("checkout session failed", tenant=tenant.id, status=failure.status, error=failure.error)
            return _respond(failure)
        return jsonify({"url": session["url"], "id": session["id"]})

    @blueprint.post("/portal")
    @require_tenant
    async def portal() -> Response:
        tenant: Tenant = g.tenant
        settings = _settings()
        body = await _json_body()
        return_url = _url(body, "return_url")
        customer = tenant.billing.get("customer_id")
        if not isinstance(customer, str) or not customer:
            raise BadRequest(
                409,
                "no_customer",
                f"the tenant has no Stripe customer yet; start a subscription with POST {URL_PREFIX}/checkout",
            )
        try:
            session = await StripeGateway(settings).create_portal_session(customer, return_url)
        except stripe.StripeError as error:
            failure = api_failure(error)
            log.warning("portal session failed", tenant=tenant.id, status=failure.status, error=failure.error)
            return _respond(failure)
        return jsonify({"url": session["url"]})

    @blueprint.get("")
    @require_tenant
    async def show() -> Response:
        tenant: Tenant = g.tenant
        billing = tenant.billing
        return jsonify(
            {
                "plan": tenant.plan,
                "status": tenant.subscription_status,
                "trial_end": tenant.trial_end,
                "current_period_end": billing.get("current_period_end"),
                "cancel_at_period_end": bool(billing.get("cancel_at_period_end")),
                "automations_active": tenant.automations_active,
                "has_customer": bool(billing.get("customer_id")),
            }
        )

    return blueprint
