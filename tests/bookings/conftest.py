"""Fixtures for the booking automation: Cal.com in, SMS to the dev outbox, Google Calendar on a fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from lily_gcal.fake import FakeGoogle
from lily_gcal.tokens import StoredTokens, TokenStore
from lily_host.dev.embedded_redis import RedisServer
from lily_host.plugin_api.clock import ManualClock
from lily_host.testing import Harness, HarnessFactory, flush, on_cluster

#: Lily's "now" in these tests: Monday 3 June 2030, 11:00 in New York (outside quiet hours).
NOW = datetime(2030, 6, 3, 15, 0, tzinfo=UTC)
CALCOM_SECRET = "whsec-bookings-test"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client of the test Redis (a cluster client under LILY_TEST_REDIS=cluster), emptied."""
    flush(redis_server)
    client: aioredis.Redis = (
        RedisCluster.from_url(redis_server.url) if on_cluster() else aioredis.Redis.from_url(redis_server.url)
    )
    yield client
    await client.aclose()


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as fake:
        yield fake


async def connect_google(lily: Harness, google: FakeGoogle, tenant: str = "acme") -> None:
    """Store tokens as if the tenant had done the consent (lily-gcal's own tests cover the dance)."""
    issued = google.issue_tokens()
    tokens = StoredTokens(
        token=issued["access_token"],
        refresh_token=issued["refresh_token"],
        expiry=(datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None),
        scopes=tuple(issued["scope"].split()),
        connected_at=lily.clock.now(),
    )
    await TokenStore(lily.host, lily.host.plugin_settings("gcal")).save(tenant, tokens)


@pytest.fixture
async def lily(lily_harness: HarnessFactory, google: FakeGoogle) -> AsyncIterator[Harness]:
    env = {**google.env(), "CALCOM_WEBHOOK_SECRET": CALCOM_SECRET}
    async with lily_harness(plugins=["calcom", "gcal"], env=env, clock=ManualClock(NOW.timestamp())) as harness:
        await harness.create_tenant(
            "acme",
            name="Acme Washing",
            timezone="America/New_York",
            plugins={
                "calcom": {"organizer_emails": ["owner@acme.test"], "booking_url": "https://cal.com/acme/estimate"},
                "gcal": {"service_durations": {"Pressure Washing Estimate": 90}},
            },
        )
        yield harness


@pytest.fixture
def connect(lily: Harness, google: FakeGoogle) -> Callable[..., Awaitable[None]]:
    async def run(tenant: str = "acme") -> None:
        await connect_google(lily, google, tenant)

    return run


@pytest.fixture
async def connected(lily: Harness, google: FakeGoogle) -> Harness:
    await connect_google(lily, google)
    return lily
