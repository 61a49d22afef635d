"""Fixtures for reminders: Cal.com webhooks in, texts out through the Twilio fake, replies through Twilio's webhook."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from lily_calcom.fake import booking_delivery, signed
from lily_host import hookimpl
from lily_host.plugin_api.clock import ManualClock
from lily_host.plugin_api.contract import EventSubscription, TaskContext, TaskHandler
from lily_host.testing import TEST_PUBLIC_URL, Harness, HarnessFactory
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import message_form, signed_headers

#: Monday 3 June 2030, 11:00 in New York.
NOW = datetime(2030, 6, 3, 15, 0, tzinfo=UTC)
CALCOM_SECRET = "whsec-reminders-test"
BUSINESS = "+15551230000"
CUSTOMER = "+15551234567"

Confirmed = list[dict[str, Any]]


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def confirmed() -> Confirmed:
    return []


@pytest.fixture
async def lily(lily_harness: HarnessFactory, fake_twilio: FakeTwilio, confirmed: Confirmed) -> AsyncIterator[Harness]:
    recorder = types.ModuleType("confirmed_recorder")

    async def record(ctx: TaskContext, payload: dict[str, Any]) -> None:
        confirmed.append(payload)

    @hookimpl
    def register_tasks(register: Callable[[TaskHandler], None]) -> None:
        register(TaskHandler("test.record_confirmed", record))

    @hookimpl
    def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
        register(EventSubscription("booking.confirmed", "test.record_confirmed"))

    recorder.register_tasks = register_tasks  # type: ignore[attr-defined]
    recorder.register_event_subscriptions = register_event_subscriptions  # type: ignore[attr-defined]
    env = {**fake_twilio.env(), "CALCOM_WEBHOOK_SECRET": CALCOM_SECRET}
    async with lily_harness(
        plugins=["calcom", "twilio"],
        env=env,
        clock=ManualClock(NOW.timestamp()),
        extra_modules={"recorder": recorder},
    ) as harness:
        await harness.create_tenant(
            "acme",
            name="Acme Washing",
            timezone="America/New_York",
            contact_phone="+15551239999",
            plugins={
                "calcom": {"organizer_emails": ["owner@acme.test"], "booking_url": "https://cal.com/acme/estimate"},
                "twilio": {"business_numbers": [BUSINESS]},
            },
        )
        yield harness


@pytest.fixture
def book(lily: Harness) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Deliver a signed Cal.com webhook (``booking_delivery`` arguments) and run what is due."""

    async def deliver(trigger: str = "BOOKING_CREATED", **fields: Any) -> dict[str, Any]:
        fields.setdefault("customer_phone", CUSTOMER)
        fields.setdefault("created_at", datetime.fromtimestamp(lily.clock.now(), UTC))
        body = booking_delivery(trigger, **fields)
        raw, headers = signed(body, CALCOM_SECRET)
        response = await lily.client.post("/webhooks/calcom", data=raw, headers=headers)
        assert response.status_code in (200, 202), await response.get_data(as_text=True)
        await lily.run_due()
        return body

    return deliver


@pytest.fixture
def text_in(lily: Harness, fake_twilio: FakeTwilio) -> Callable[[str], Awaitable[None]]:
    """The customer texts ``body`` to the business (signed like Twilio), and what is due runs."""

    async def send(body: str) -> None:
        params = message_form(sender=CUSTOMER, to=BUSINESS, body=body)
        headers = signed_headers(fake_twilio.auth_token, TEST_PUBLIC_URL + "/webhooks/twilio/sms", params)
        response = await lily.client.post("/webhooks/twilio/sms", data=urlencode(params), headers=headers)
        assert response.status_code == 200
        await lily.run_due()

    return send
