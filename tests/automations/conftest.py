"""Fixtures for the built-in automations: a host with only the built-ins (texts go to the dev outbox)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from zoneinfo import ZoneInfo

import pytest

from lily_host.testing import Harness, HarnessFactory

NEW_YORK = ZoneInfo("America/New_York")


def new_york_time(hour: int, minute: int = 0, day: int = 2, month: int = 6) -> float:
    return dt.datetime(2025, month, day, hour, minute, tzinfo=NEW_YORK).timestamp()


@pytest.fixture
def new_york() -> Callable[..., float]:
    """``new_york(hour, minute=0, day=2, month=6)``: a Unix time in 2025, New York time."""
    return new_york_time


@pytest.fixture
async def lily(lily_harness: HarnessFactory) -> AsyncIterator[Harness]:
    """The host alone; tenants acme (New York) and bravo (Los Angeles); noon in New York."""
    async with lily_harness() as harness:
        harness.clock.set(new_york_time(12))
        await harness.create_tenant(
            "acme",
            name="Acme Washing",
            contact_phone="+15551239999",
            review_link="https://g.page/r/acme",
        )
        await harness.create_tenant(
            "bravo", name="Bravo Windows", timezone="America/Los_Angeles", review_link="https://g.page/r/bravo"
        )
        yield harness
