"""Fixtures for lily-calcom: a fake Cal.com API and a Lily app with only this plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lily_calcom.fake import FakeCalcom, signed
from lily_host.testing import Harness, HarnessFactory, ManualClock

PLATFORM_SECRET = "whsec-platform-calcom"
BRAVO_SECRET = "whsec-bravo-own"

#: The tests' "now": a Monday, 11:00 in New York (outside quiet hours); bookings are days later.
NOW = datetime(2030, 6, 3, 15, 0, tzinfo=UTC)
SLOT = NOW + timedelta(days=2)

Deliver = Callable[..., Awaitable[Any]]


@pytest.fixture
def fake_calcom() -> Iterator[FakeCalcom]:
    with FakeCalcom() as fake:
        yield fake


@pytest.fixture
async def lily(lily_harness: HarnessFactory, fake_calcom: FakeCalcom) -> AsyncIterator[Harness]:
    env = fake_calcom.env(webhook_secret=PLATFORM_SECRET)
    async with lily_harness(plugins=["calcom"], env=env, clock=ManualClock(NOW.timestamp())) as harness:
        await harness.create_tenant(
            "acme",
            name="Acme Washing",
            timezone="America/New_York",
            plugins={
                "calcom": {
                    "organizer_emails": ["Owner@Acme.test"],
                    "event_type_ids": ["7"],
                    "booking_url": "https://cal.com/acme/estimate",
                }
            },
        )
        await harness.create_tenant(
            "bravo",
            name="Bravo Windows",
            plugins={"calcom": {"organizer_emails": ["bravo@bravo.test"], "webhook_secret": BRAVO_SECRET}},
        )
        yield harness


@pytest.fixture
def deliver(lily: Harness) -> Deliver:
    """POST a delivery signed with ``secret`` (platform secret by default; None → no-secret-provided)."""

    async def post(
        body: Mapping[str, Any] | bytes,
        *,
        secret: str | None = PLATFORM_SECRET,
        path: str = "/webhooks/calcom",
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        raw, signed_headers = signed(body, secret)
        return await lily.client.post(path, data=raw, headers={**signed_headers, **(headers or {})})

    return post
