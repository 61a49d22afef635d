"""The fake Stripe API itself: Stripe's wire format, and the sandbox flow a user clicks through."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe

from lily_stripe.fake import FakeStripe, decode_form
from lily_stripe.sandbox import SANDBOX_PRICES
from lily_stripe.signature import verify


def client(fake: FakeStripe, key: str | None = None) -> stripe.StripeClient:
    return stripe.StripeClient(key or fake.api_key, base_addresses={"api": fake.url}, max_network_retries=0)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as running:
        yield running


def test_nested_form_parameters_decode_like_stripe_reads_them() -> None:
    raw = b"mode=subscription&line_items[0][price]=p1&line_items[0][quantity]=1&line_items[1][price]=p2&a[b][c]=d"
    assert decode_form(raw) == {
        "mode": "subscription",
        "line_items": [{"price": "p1", "quantity": "1"}, {"price": "p2"}],
        "a": {"b": {"c": "d"}},
    }


def test_an_idempotency_key_replays_the_first_answer_and_refuses_other_parameters(fake: FakeStripe) -> None:
    params: Any = {
        "mode": "subscription",
        "line_items": [{"price": SANDBOX_PRICES["pro"], "quantity": 1}],
        "success_url": "https://app.test/ok",
    }
    sdk = client(fake)
    first = sdk.v1.checkout.sessions.create(params=params, options={"idempotency_key": "k1"})
    again = sdk.v1.checkout.sessions.create(params=params, options={"idempotency_key": "k1"})
    assert first.id == again.id
    other: Any = {**params, "cancel_url": "https://x.test"}
    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.checkout.sessions.create(params=other, options={"idempotency_key": "k1"})
    assert len(fake.checkout_sessions) == 1


def test_a_wrong_key_is_401_in_stripes_error_shape(fake: FakeStripe) -> None:
    response = httpx.get(f"{fake.url}/v1/balance", headers={"Authorization": "Bearer sk_test_wrong"})
    assert response.status_code == 401
    assert set(response.json()["error"]) >= {"type", "message"}
    with pytest.raises(stripe.AuthenticationError):
        client(fake, "sk_test_wrong").v1.balance.retrieve()


def test_unknown_objects_are_404_resource_missing(fake: FakeStripe) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client(fake).v1.subscriptions.retrieve("sub_missing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


def test_injected_failures_answer_the_next_matching_requests_only(fake: FakeStripe) -> None:
    fake.fail_next("GET", "/v1/account", status=503, times=2)
    sdk = client(fake)
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            sdk.v1.accounts.retrieve_current()
    assert sdk.v1.accounts.retrieve_current().id == "acct_lily_fake"
    assert [r.status for r in fake.requests_to("GET", "/v1/account")] == [503, 503, 200]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_the_sandbox_checkout_page_completes_and_delivers_a_signed_event() -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    webhook_url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/stripe"
    try:
        with FakeStripe(webhook_url=webhook_url, webhook_secrets=["whsec_sandbox"]) as fake:
            session = client(fake).v1.checkout.sessions.create(
                params={
                    "mode": "subscription",
                    "line_items": [{"price": SANDBOX_PRICES["starter"], "quantity": 1}],
                    "client_reference_id": "acme",
                    "subscription_data": {"trial_period_days": 14},
                    "success_url": "https://app.test/ok",
                }
            )
            assert session.url is not None
            page = httpx.get(session.url)
            assert "Start subscription" in page.text
            done = httpx.post(f"{session.url}/complete")
            assert (done.status_code, done.headers["location"]) == (303, "https://app.test/ok")
    finally:
        receiver.shutdown()
        receiver.server_close()

    [(headers, body)] = _Receiver.received
    event = json.loads(body)
    assert event["type"] == "checkout.session.completed"
    assert event["data"]["object"]["client_reference_id"] == "acme"
    verify(body, headers["stripe-signature"], ["whsec_sandbox"], now=time.time())  # raises if not signed right
