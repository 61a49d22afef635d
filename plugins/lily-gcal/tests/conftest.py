"""Fixtures for lily-gcal: a fake Google (OAuth + Calendar API) and a Lily app with only this plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lily_gcal.fake import FakeGoogle
from lily_gcal.tokens import StoredTokens, TokenStore
from lily_host.testing import Harness, HarnessFactory, ManualClock

#: The tests' "now" on Lily's clock (Google's tokens live in real time, as they do in production).
NOW = datetime(2030, 6, 3, 15, 0, tzinfo=UTC)

Connect = Callable[..., Awaitable[StoredTokens]]


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture
async def lily(lily_harness: HarnessFactory, google: FakeGoogle) -> AsyncIterator[Harness]:
    async with lily_harness(plugins=["gcal"], env=google.env(), clock=ManualClock(NOW.timestamp())) as harness:
        await harness.create_tenant(
            "acme",
            name="Acme Washing",
            timezone="America/New_York",
            plugins={"gcal": {"service_durations": {"Pressure Washing Estimate": 90}}},
        )
        await harness.create_tenant("bravo", name="Bravo Windows")
        yield harness


async def consent(url: str) -> dict[str, str]:
    """Play the user on the fake consent page: follow it to the redirect and return its query."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return {key: values[0] for key, values in parse_qs(urlsplit(answer.headers["location"]).query).items()}


@pytest.fixture
def connect(lily: Harness) -> Connect:
    """The whole OAuth dance for a tenant through Lily's routes; returns the tokens Lily stored."""

    async def run(tenant_id: str = "acme") -> StoredTokens:
        headers = await lily.tenant_headers(tenant_id)
        started = await lily.client.get("/auth/google/start", headers=headers)
        assert started.status_code == 200, await started.get_data()
        granted = await consent((await started.get_json())["authorization_url"])
        done = await lily.client.get("/auth/google/callback", query_string=granted)
        assert done.status_code == 200, await done.get_data()
        stored = await TokenStore(lily.host, lily.host.plugin_settings("gcal")).load(tenant_id)
        assert stored is not None
        return stored

    return run


@pytest.fixture
def consent_page() -> Callable[[str], Awaitable[dict[str, str]]]:
    return consent
