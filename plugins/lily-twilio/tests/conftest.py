"""Fixtures: a fake Twilio over real HTTP, a Lily host with lily-twilio pointed at it, and signed posts."""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from lily_host import EventSubscription, TaskContext, TaskHandler, hookimpl
from lily_host.testing import TEST_PUBLIC_URL, Harness, HarnessFactory
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import signed_headers

NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class Numbers:
    acme: str = "+15551230000"
    acme_contact: str = "+15551239999"
    bravo: str = "+15559870000"
    caller: str = "+15557654321"
    other_caller: str = "+15557650000"


EventLog = list[tuple[str, str | None, dict[str, Any]]]
Post = Callable[..., Awaitable[Any]]


def new_york_time(hour: int, minute: int = 0, day: int = 2) -> float:
    return dt.datetime(2025, 6, day, hour, minute, tzinfo=NEW_YORK).timestamp()


@pytest.fixture
def numbers() -> Numbers:
    return Numbers()


@pytest.fixture
def new_york() -> Callable[..., float]:
    """``new_york(hour, minute=0, day=2)``: a Unix time on a June 2025 day, New York time."""
    return new_york_time


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def event_log() -> EventLog:
    return []


@pytest.fixture
def recorder(event_log: EventLog) -> types.ModuleType:
    """A test plugin that records every call.missed, message.received and quote.accepted it is handed."""

    def record(event: str) -> Callable[[TaskContext, dict[str, Any]], Awaitable[None]]:
        async def run(ctx: TaskContext, payload: dict[str, Any]) -> None:
            event_log.append((event, ctx.tenant_id, payload))

        return run

    module = types.ModuleType("event_recorder")

    @hookimpl
    def register_tasks(register: Callable[[TaskHandler], None]) -> None:
        register(TaskHandler("test.record_missed", record("call.missed")))
        register(TaskHandler("test.record_message", record("message.received")))
        register(TaskHandler("test.record_quote_accepted", record("quote.accepted")))

    @hookimpl
    def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
        register(EventSubscription("call.missed", "test.record_missed"))
        register(EventSubscription("message.received", "test.record_message"))
        register(EventSubscription("quote.accepted", "test.record_quote_accepted"))

    module.register_tasks = register_tasks  # type: ignore[attr-defined]
    module.register_event_subscriptions = register_event_subscriptions  # type: ignore[attr-defined]
    return module


@pytest.fixture
async def lily(
    lily_harness: HarnessFactory, fake_twilio: FakeTwilio, recorder: types.ModuleType, numbers: Numbers
) -> AsyncIterator[Harness]:
    """Lily with lily-twilio against the fake; tenants acme and bravo; the clock at noon in New York."""
    async with lily_harness(plugins=["twilio"], env=fake_twilio.env(), extra_modules={"recorder": recorder}) as harness:
        harness.clock.set(new_york_time(12))
        await harness.create_tenant(
            "acme",
            name="Acme Washing",
            contact_phone=numbers.acme_contact,
            review_link="https://g.page/r/acme",
            plugins={"twilio": {"business_numbers": [numbers.acme]}},
        )
        await harness.create_tenant(
            "bravo", name="Bravo Windows", plugins={"twilio": {"business_numbers": [numbers.bravo]}}
        )
        yield harness


@pytest.fixture
def post_twilio(lily: Harness, fake_twilio: FakeTwilio) -> Post:
    """POST a form to a Twilio webhook, signed as Twilio signs it; ``token=``/``signature=`` forge it."""

    async def post(path: str, params: dict[str, str], *, signature: str | None = None, token: str | None = None) -> Any:
        headers = signed_headers(token or fake_twilio.auth_token, TEST_PUBLIC_URL + path, params)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return await lily.client.post(path, data=urlencode(params), headers=headers)

    return post
