"""``lily simulate stripe.checkout``: a tenant buys a plan in the local fake Stripe's Checkout.

The simulation does what a tenant's browser and Stripe would: it creates a Checkout Session through
the SDK (as ``POST /api/billing/checkout`` does), completes it in the fake, and posts the signed
``checkout.session.completed`` to Lily, which then fetches the subscription and sets the plan. It is
offered only while the plugin talks to a local fake (``lily dev``): real Stripe completes Checkout
only with a customer in the browser.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from lily_host import Simulation, simulation_id
from lily_stripe.api import checkout_params
from lily_stripe.gateway import StripeGateway
from lily_stripe.settings import StripeSettings
from lily_stripe.signature import signature_header

if TYPE_CHECKING:
    from lily_host import LilyHost, Tenant

PLAN = "starter"
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def talks_to_local_fake(settings: StripeSettings) -> bool:
    return urlsplit(settings.api_base).hostname in _LOCAL_HOSTS


def checkout_simulation(settings: StripeSettings) -> Simulation:
    async def build(host: LilyHost, tenant: Tenant) -> tuple[str, Mapping[str, str], bytes]:
        done = host.public_url("/")
        params = checkout_params(settings, tenant, PLAN, done, done)
        session = await StripeGateway(settings).create_checkout_session(
            params, idempotency_key=simulation_id("lily-simulate-")
        )
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{settings.api_base}/checkout/{session['id']}/complete-event")
        if response.status_code != 200:
            raise ValueError(f"the fake Stripe did not complete Checkout: {response.status_code} {response.text}")
        event = response.json()
        event["id"] = simulation_id("evt_", 12)
        body = json.dumps(event).encode()
        header = signature_header(body, settings.webhook_secrets, int(time.time()))
        return "/webhooks/stripe", {"Content-Type": "application/json", "Stripe-Signature": header}, body

    return Simulation("stripe.checkout", f"the tenant buys the {PLAN} plan in Checkout → plan and trial set", build)
