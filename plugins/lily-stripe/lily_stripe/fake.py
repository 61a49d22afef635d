"""A small local Stripe API for tests and for a local sandbox.

It speaks Stripe's wire format: form-encoded parameters with bracketed nesting
(``line_items[0][price]=...``), ``Authorization: Bearer <secret key>``, the ``Idempotency-Key``
header (replays return the first response; other parameters under the same key are refused), and
errors as ``{"error": {"type", "message", "code", "param"}}`` with Stripe's status codes. Point the real
SDK at it with ``STRIPE_API_BASE=<fake.url>``.

Served:

- ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions/{id}``
- ``POST /v1/billing_portal/sessions``
- ``GET /v1/subscriptions/{id}``, ``GET /v1/customers/{id}``
- ``GET /v1/balance``, ``GET /v1/account``
- sandbox pages: ``GET /checkout/{id}`` (a "complete the checkout" button) and ``GET /portal/{id}``
  (cancel now / at period end); each action delivers a signed webhook to ``webhook_url``.
  ``POST /checkout/{id}/complete-event`` completes Checkout and answers the event instead of
  delivering it (``lily simulate stripe.checkout``).

Tests drive subscriptions directly: :meth:`FakeStripe.complete_checkout`,
:meth:`FakeStripe.update_subscription` and :meth:`FakeStripe.delete_subscription` change the
state and return the Stripe event describing the change, ready to sign and post.

Run a sandbox: ``python -m lily_stripe.fake --webhook-url http://127.0.0.1:8000/webhooks/stripe``; it
prints the STRIPE_* settings that point Lily at it (``lily dev`` uses them when STRIPE_* are unset).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lily_host import DevContext, DevStandIn
from lily_host.fakes import LocalHTTPServer, Reply, Request
from lily_stripe import sandbox
from lily_stripe.sandbox import SANDBOX_API_KEY, SANDBOX_PORT, SANDBOX_PRICES, SANDBOX_WEBHOOK_SECRET
from lily_stripe.signature import signature_header

DEFAULT_API_KEY = SANDBOX_API_KEY
API_VERSION = "2026-10-28.endive"
_KEY_PART = re.compile(r"\[([^\]]*)\]")


class FakeStripeError(Exception):
    """A Stripe-shaped API error: becomes ``{"error": {...}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if code is not None:
            self.body["code"] = code
        if param is not None:
            self.body["param"] = param
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, decoded as Stripe would."""

    method: str
    path: str
    headers: Mapping[str, str]
    params: Mapping[str, Any]
    raw_body: bytes
    status: int

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    @property
    def api_key(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else None


@dataclass
class _Failure:
    method: str
    path_prefix: str
    error: FakeStripeError
    times: int


@dataclass
class _IdempotentResult:
    fingerprint: str
    status: int
    body: dict[str, Any]


def decode_form(raw: bytes) -> dict[str, Any]:
    """Stripe's form encoding → nested dicts and lists (``a[b][0][c]=v``)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True):
        head, _, rest = key.partition("[")
        parts = [head, *_KEY_PART.findall("[" + rest)] if rest else [head]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise FakeStripeError(400, f"Invalid parameter: {key}", code="parameter_invalid", param=key)
        node[parts[-1]] = value
    decoded: dict[str, Any] = _listify(root)
    return decoded


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _as_int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise FakeStripeError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param
        ) from error


class FakeStripe(LocalHTTPServer):
    """The fake Stripe API server. ``start()`` it, use ``url``, ``stop()`` it (or use ``with``).

    Binding, serving and stopping come from :class:`lily_host.fakes.LocalHTTPServer`.
    """

    methods = ("GET", "POST", "DELETE")
    server_version = "FakeStripe/1"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        prices: Iterable[str] | None = tuple(SANDBOX_PRICES.values()),
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], float] = time.time,
        legacy_period_fields: bool = False,
        webhook_url: str | None = None,
        webhook_secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(host=host, port=port, name="fake-stripe")
        self.api_key = api_key
        #: Known price ids; None accepts any ``price_...`` id.
        self.prices: set[str] | None = None if prices is None else set(prices)
        self.now = now
        #: Serve ``current_period_*`` on the subscription itself, as API versions before 2025-03-31 did.
        self.legacy_period_fields = legacy_period_fields
        self.webhook_url = webhook_url
        self.webhook_secrets = list(webhook_secrets)
        self.requests: list[RecordedRequest] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.checkout_sessions: dict[str, dict[str, Any]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self.delivered: list[tuple[dict[str, Any], int]] = []
        self._failures: list[_Failure] = []
        self._idempotency: dict[str, _IdempotentResult] = {}
        self._lock = threading.RLock()
        # Bound now, so ``url`` is known before ``start()``.
        self.bind()

    # --- lifecycle (start, stop, with: LocalHTTPServer) ------------------------------------------------

    @property
    def url(self) -> str:
        return self.base_url

    def sandbox_env(self, webhook_secret: str = SANDBOX_WEBHOOK_SECRET) -> dict[str, str]:
        """The STRIPE_* settings that point Lily at this fake."""
        return {**sandbox.sandbox_env(self.url, webhook_secret), "STRIPE_SECRET_KEY": self.api_key}

    # --- inspection and failure injection ------------------------------------------------------------

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        *,
        status: int,
        message: str = "An error occurred with our connection to Stripe.",
        type: str = "api_error",
        code: str | None = None,
        param: str | None = None,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with this error instead of serving them."""
        error = FakeStripeError(status, message, type=type, code=code, param=param, headers=headers)
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_prefix, error, times))

    def _take_failure(self, method: str, path: str) -> FakeStripeError | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == method and path.startswith(failure.path_prefix):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure.error
        return None

    # --- state the tests drive ------------------------------------------------------------------------

    def add_customer(self, email: str | None = None, customer_id: str | None = None) -> str:
        with self._lock:
            customer_id = customer_id or _new_id("cus")
            self.customers[customer_id] = {
                "id": customer_id,
                "object": "customer",
                "email": email,
                "created": int(self.now()),
                "livemode": False,
                "metadata": {},
            }
            return customer_id

    def create_subscription(
        self,
        customer: str,
        price: str,
        *,
        trial_days: int = 0,
        metadata: Mapping[str, str] | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """A subscription as Checkout would create it (``trialing`` with a trial, else ``active``)."""
        now = int(self.now())
        trial_end = now + trial_days * 86400 if trial_days else None
        period_end = trial_end or now + 30 * 86400
        subscription_id = _new_id("sub")
        with self._lock:
            self.subscriptions[subscription_id] = {
                "id": subscription_id,
                "object": "subscription",
                "customer": customer,
                "status": status or ("trialing" if trial_end else "active"),
                "metadata": dict(metadata or {}),
                "cancel_at_period_end": False,
                "cancel_at": None,
                "canceled_at": None,
                "ended_at": None,
                "created": now,
                "start_date": now,
                "trial_start": now if trial_end else None,
                "trial_end": trial_end,
                "livemode": False,
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": _new_id("si"),
                            "object": "subscription_item",
                            "price": self._price(price),
                            "quantity": 1,
                            "current_period_start": now,
                            "current_period_end": period_end,
                        }
                    ],
                },
            }
            return self.subscription_object(subscription_id)

    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """The customer finished Checkout: create customer and subscription; return the completed event."""
        with self._lock:
            session = self.checkout_sessions[session_id]
            if session["status"] != "open":
                raise ValueError(f"checkout session {session_id} is {session['status']}")
            params = session["_params"]
            customer = session["customer"] or self.add_customer(email=params.get("customer_email"))
            subscription_data = params.get("subscription_data") or {}
            trial_days = int(subscription_data.get("trial_period_days") or 0)
            subscription = self.create_subscription(
                customer,
                params["line_items"][0]["price"],
                trial_days=trial_days,
                metadata=subscription_data.get("metadata") or {},
            )
            session.update(
                status="complete",
                customer=customer,
                subscription=subscription["id"],
                payment_status="no_payment_required" if trial_days else "paid",
            )
            return self.event("checkout.session.completed", self._public(session))

    def update_subscription(self, subscription_id: str, **changes: Any) -> dict[str, Any]:
        """Change ``status``, ``cancel_at_period_end``, ``trial_end``, ``current_period_end`` or ``price``.

        Returns the ``customer.subscription.updated`` event (with ``previous_attributes``).
        """
        with self._lock:
            subscription = self.subscriptions[subscription_id]
            item = subscription["items"]["data"][0]
            previous: dict[str, Any] = {}
            for name, value in changes.items():
                if name == "price":
                    previous["items"] = json.loads(json.dumps(subscription["items"]))
                    item["price"] = self._price(value)
                elif name == "current_period_end":
                    previous["items"] = json.loads(json.dumps(subscription["items"]))
                    item["current_period_end"] = value
                elif name in ("status", "cancel_at_period_end", "trial_end", "cancel_at", "metadata"):
                    previous[name] = subscription[name]
                    subscription[name] = value
                else:
                    raise ValueError(f"the fake cannot change {name!r}")
            if changes.get("cancel_at_period_end") is True:
                subscription["cancel_at"] = item["current_period_end"]
            return self.event(
                "customer.subscription.updated", self.subscription_object(subscription_id), previous_attributes=previous
            )

    def delete_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Cancel immediately; returns the ``customer.subscription.deleted`` event."""
        with self._lock:
            subscription = self.subscriptions[subscription_id]
            now = int(self.now())
            subscription.update(status="canceled", canceled_at=now, ended_at=now)
            return self.event("customer.subscription.deleted", self.subscription_object(subscription_id))

    def subscription_object(self, subscription_id: str) -> dict[str, Any]:
        """The subscription as the API serves it (a deep copy)."""
        with self._lock:
            subscription: dict[str, Any] = json.loads(json.dumps(self.subscriptions[subscription_id]))
        if self.legacy_period_fields:
            for item in subscription["items"]["data"]:
                subscription["current_period_start"] = item.pop("current_period_start")
                subscription["current_period_end"] = item.pop("current_period_end")
        return subscription

    def event(
        self, event_type: str, obj: Mapping[str, Any], *, previous_attributes: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A Stripe event envelope around ``obj``."""
        data: dict[str, Any] = {"object": dict(obj)}
        if previous_attributes:
            data["previous_attributes"] = dict(previous_attributes)
        return {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self.now()),
            "type": event_type,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
        }

    def deliver(self, event: Mapping[str, Any]) -> int:
        """POST ``event`` to ``webhook_url``, signed with every webhook secret; returns the HTTP status."""
        if not self.webhook_url or not self.webhook_secrets:
            raise RuntimeError("set webhook_url and webhook_secrets to deliver events")
        body = json.dumps(event).encode()
        header = signature_header(body, self.webhook_secrets, int(time.time()))
        request = urllib.request.Request(
            self.webhook_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": header},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = error.code
        self.delivered.append((dict(event), status))
        return status

    # --- API ------------------------------------------------------------------------------------------

    def _price(self, price_id: str) -> dict[str, Any]:
        return {
            "id": price_id,
            "object": "price",
            "active": True,
            "currency": "usd",
            "recurring": {"interval": "month", "interval_count": 1},
            "type": "recurring",
        }

    def _check_price(self, price_id: Any, param: str) -> None:
        known = self.prices is None and isinstance(price_id, str) and price_id.startswith("price_")
        if not known and (self.prices is None or price_id not in self.prices):
            raise FakeStripeError(400, f"No such price: '{price_id}'", code="resource_missing", param=param)

    def _check_customer(self, customer_id: Any) -> None:
        if customer_id not in self.customers:
            raise FakeStripeError(400, f"No such customer: '{customer_id}'", code="resource_missing", param="customer")

    def _public(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in record.items() if not key.startswith("_")}

    def create_checkout_session(self, params: Mapping[str, Any]) -> dict[str, Any]:
        mode = params.get("mode")
        if mode is None:
            raise FakeStripeError(400, "Missing required param: mode.", code="parameter_missing", param="mode")
        if mode != "subscription":
            raise FakeStripeError(
                400, "The fake serves mode=subscription only.", code="parameter_invalid", param="mode"
            )
        line_items = params.get("line_items")
        if not isinstance(line_items, list) or not line_items:
            raise FakeStripeError(
                400, "Missing required param: line_items.", code="parameter_missing", param="line_items"
            )
        for index, item in enumerate(line_items):
            self._check_price(item.get("price") if isinstance(item, dict) else None, f"line_items[{index}][price]")
        for name in ("success_url", "cancel_url"):
            if name in params and not _is_url(params[name]):
                raise FakeStripeError(400, "Not a valid URL", code="url_invalid", param=name)
        if "success_url" not in params:
            raise FakeStripeError(
                400, "Missing required param: success_url.", code="parameter_missing", param="success_url"
            )
        if "customer" in params and "customer_email" in params:
            raise FakeStripeError(
                400, "You may only specify one of these parameters: customer, customer_email.", param="customer"
            )
        if "customer" in params:
            self._check_customer(params["customer"])
        subscription_data = params.get("subscription_data") or {}
        if "trial_period_days" in subscription_data:
            days = _as_int(subscription_data["trial_period_days"], "subscription_data[trial_period_days]")
            if not 1 <= days <= 730:
                raise FakeStripeError(
                    400,
                    "trial_period_days must be between 1 and 730.",
                    code="parameter_invalid_integer",
                    param="subscription_data[trial_period_days]",
                )
        now = int(self.now())
        session_id = _new_id("cs_test")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid",
            "url": f"{self.url}/checkout/{session_id}",
            "customer": params.get("customer"),
            "customer_email": params.get("customer_email"),
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata") or {},
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "subscription": None,
            "created": now,
            "expires_at": now + 24 * 3600,
            "livemode": False,
            "_params": dict(params),
        }
        self.checkout_sessions[session_id] = session
        return self._public(session)

    def create_portal_session(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if "customer" not in params:
            raise FakeStripeError(400, "Missing required param: customer.", code="parameter_missing", param="customer")
        self._check_customer(params["customer"])
        if "return_url" in params and not _is_url(params["return_url"]):
            raise FakeStripeError(400, "Not a valid URL", code="url_invalid", param="return_url")
        session_id = _new_id("bps")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "customer": params["customer"],
            "return_url": params.get("return_url"),
            "url": f"{self.url}/portal/{session_id}",
            "created": int(self.now()),
            "livemode": False,
        }
        self.portal_sessions[session_id] = session
        return dict(session)

    def _retrieve(self, collection: Mapping[str, dict[str, Any]], object_id: str, noun: str) -> dict[str, Any]:
        if object_id not in collection:
            raise FakeStripeError(404, f"No such {noun}: '{object_id}'", code="resource_missing", param="id")
        return self._public(collection[object_id])

    def api(self, method: str, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Serve one authenticated API call; raise FakeStripeError for Stripe-shaped errors."""
        segments = [part for part in path.split("/") if part]
        with self._lock:
            if method == "POST" and path == "/v1/checkout/sessions":
                return self.create_checkout_session(params)
            if method == "GET" and segments[:3] == ["v1", "checkout", "sessions"] and len(segments) == 4:
                return self._retrieve(self.checkout_sessions, segments[3], "checkout.session")
            if method == "POST" and path == "/v1/billing_portal/sessions":
                return self.create_portal_session(params)
            if method == "GET" and segments[:2] == ["v1", "subscriptions"] and len(segments) == 3:
                self._retrieve(self.subscriptions, segments[2], "subscription")
                return self.subscription_object(segments[2])
            if method == "GET" and segments[:2] == ["v1", "customers"] and len(segments) == 3:
                return self._retrieve(self.customers, segments[2], "customer")
            if method == "GET" and path == "/v1/balance":
                return {
                    "object": "balance",
                    "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
                    "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
                    "livemode": False,
                }
            if method == "GET" and path == "/v1/account":
                return {"id": "acct_lily_fake", "object": "account", "charges_enabled": True, "country": "US"}
        raise FakeStripeError(404, f"Unrecognized request URL ({method}: {path}).", param=None)

    def authenticate(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise FakeStripeError(
                401, "You did not provide an API key. Send it as Authorization: Bearer <key>.", code=None
            )
        if not secrets.compare_digest(token.encode(), self.api_key.encode()):
            raise FakeStripeError(401, f"Invalid API Key provided: {token[:8]}****{token[-4:]}", code=None)

    def handle_api(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Auth, failure injection, idempotency, then :meth:`api`. Records the request.

        Returns (status, JSON body, extra response headers).
        """
        params: dict[str, Any] = {}
        status, body, extra = 200, {}, {}
        try:
            params = decode_form(raw) if method == "POST" else decode_form(urlsplit(path).query.encode())
            self.authenticate(headers.get("authorization"))
            injected = self._take_failure(method, path)
            if injected is not None:
                raise injected
            key = headers.get("idempotency-key") if method == "POST" else None
            fingerprint = hashlib.sha256(method.encode() + path.encode() + raw).hexdigest()
            with self._lock:
                previous = self._idempotency.get(key) if key is not None else None
                if previous is not None and previous.fingerprint != fingerprint:
                    raise FakeStripeError(
                        400,
                        f"Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
                        type="idempotency_error",
                    )
                if previous is not None:
                    status, body, extra = previous.status, previous.body, {"Idempotent-Replayed": "true"}
                else:
                    body = self.api(method, urlsplit(path).path, params)
                    if key is not None:
                        self._idempotency[key] = _IdempotentResult(fingerprint, 200, body)
        except FakeStripeError as error:
            status, body, extra = error.status, {"error": error.body}, error.headers
        except UnicodeDecodeError:
            status, body = 400, {"error": {"type": "invalid_request_error", "message": "Body is not UTF-8."}}
        with self._lock:
            self.requests.append(RecordedRequest(method, path, dict(headers), params, raw, status))
        return status, body, extra

    def handle_request(self, request: Request) -> Reply:
        """The API under ``/v1/`` (JSON), else the sandbox pages (GET) and their buttons (POST)."""
        if request.target.startswith("/v1/"):
            status, body, extra = self.handle_api(request.method, request.target, request.headers, request.body)
            return _reply(status, json.dumps(body).encode(), "application/json", extra)
        try:
            if request.method == "GET":
                return _reply(200, self.sandbox_page(request.target).encode(), "text/html; charset=utf-8")
            segments = [part for part in request.target.split("?", 1)[0].split("/") if part]
            if len(segments) == 3 and segments[0] == "checkout" and segments[2] == "complete-event":
                # `lily simulate stripe.checkout`: complete Checkout, hand the event back undelivered
                # (the simulation signs and posts it itself, like any other simulation).
                with self._lock:
                    event = self.complete_checkout(segments[1])
                return _reply(200, json.dumps(event).encode(), "application/json")
            location, _message = self.sandbox_action(request.target)
            return _reply(303, b"", "text/plain", {"Location": location})
        except KeyError:
            return _reply(404, b"not found", "text/plain")

    # --- sandbox pages ---------------------------------------------------------------------------------

    def sandbox_action(self, path: str) -> tuple[str, str]:
        """Handle a sandbox button; returns (redirect URL, message)."""
        segments = [part for part in path.split("/") if part]
        with self._lock:
            if len(segments) == 3 and segments[0] == "checkout" and segments[2] == "complete":
                session = self.checkout_sessions[segments[1]]
                event = self.complete_checkout(segments[1])
                self._deliver_if_configured(event)
                return str(session["success_url"]), "checkout completed"
            if len(segments) == 3 and segments[0] == "portal" and segments[2] in ("cancel", "cancel-at-period-end"):
                session = self.portal_sessions[segments[1]]
                for subscription_id, subscription in self.subscriptions.items():
                    if subscription["customer"] == session["customer"] and subscription["status"] != "canceled":
                        if segments[2] == "cancel":
                            event = self.delete_subscription(subscription_id)
                        else:
                            event = self.update_subscription(subscription_id, cancel_at_period_end=True)
                        self._deliver_if_configured(event)
                return str(session["return_url"] or "/"), "subscription changed"
        raise KeyError(path)

    def _deliver_if_configured(self, event: Mapping[str, Any]) -> None:
        if self.webhook_url and self.webhook_secrets:
            self.deliver(event)

    def sandbox_page(self, path: str) -> str:
        segments = [part for part in path.split("/") if part]
        with self._lock:
            if len(segments) == 2 and segments[0] == "checkout" and segments[1] in self.checkout_sessions:
                session = self.checkout_sessions[segments[1]]
                price = html.escape(str(session["_params"]["line_items"][0]["price"]))
                tenant = html.escape(str(session["client_reference_id"]))
                return _page(
                    f"Fake Stripe Checkout for tenant {tenant}, price {price}",
                    [(f"/checkout/{session['id']}/complete", "Start subscription")],
                )
            if len(segments) == 2 and segments[0] == "portal" and segments[1] in self.portal_sessions:
                session = self.portal_sessions[segments[1]]
                return _page(
                    f"Fake Stripe customer portal for {html.escape(session['customer'])}",
                    [
                        (f"/portal/{session['id']}/cancel-at-period-end", "Cancel at period end"),
                        (f"/portal/{session['id']}/cancel", "Cancel now"),
                    ],
                )
        raise KeyError(path)


def _page(title: str, actions: list[tuple[str, str]]) -> str:
    buttons = "".join(
        f'<form method="post" action="{html.escape(action)}"><button>{html.escape(label)}</button></form>'
        for action, label in actions
    )
    return f"<!doctype html><title>{title}</title><h1>{title}</h1>{buttons}"


def _reply(status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, body, {"Content-Type": content_type, "Request-Id": _new_id("req"), **(headers or {})})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local fake Stripe API for trying Lily without Stripe.")
    parser.add_argument("--port", type=int, default=SANDBOX_PORT)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the STRIPE_SECRET_KEY Lily must send")
    parser.add_argument("--price", action="append", help="a known price id (repeat); default: the SANDBOX_PRICES")
    parser.add_argument("--webhook-url", help="where sandbox actions deliver events, e.g. .../webhooks/stripe")
    parser.add_argument(
        "--webhook-secret", action="append", default=[], help=f"secret to sign with (default {SANDBOX_WEBHOOK_SECRET})"
    )
    args = parser.parse_args(argv)
    fake = FakeStripe(
        api_key=args.api_key,
        prices=args.price or SANDBOX_PRICES.values(),
        port=args.port,
        webhook_url=args.webhook_url,
        webhook_secrets=args.webhook_secret or [SANDBOX_WEBHOOK_SECRET],
    )
    print(f"fake Stripe on {fake.url}; point Lily at it with:", flush=True)
    secret = args.webhook_secret[0] if args.webhook_secret else SANDBOX_WEBHOOK_SECRET
    for name, value in fake.sandbox_env(secret).items():
        print(f"export {name}={value}", flush=True)
    fake.start().serve_until_interrupted()


if __name__ == "__main__":
    main()


def dev_standin(context: DevContext) -> DevStandIn | None:
    """``lily dev`` without STRIPE_* settings: this fake, delivering its sandbox pages' events to Lily."""
    if context.environ.get("STRIPE_SECRET_KEY"):
        return None
    fake = FakeStripe(
        port=0,
        webhook_url=context.public_url.rstrip("/") + "/webhooks/stripe",
        webhook_secrets=[SANDBOX_WEBHOOK_SECRET],
    )
    fake.start()
    return DevStandIn(f"fake Stripe API at {fake.url}", fake.sandbox_env(), stop=fake.stop)
