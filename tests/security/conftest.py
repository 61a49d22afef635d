"""Security tests: a Lily with every plugin configured against its provider's fake, in both environments."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from world import (  # noqa: E402
    CHATWOOT_ACCOUNT,
    CHATWOOT_TOKEN,
    CHATWOOT_WEBHOOK_SECRET,
    OTHER_NUMBER,
    TENANT_NUMBER,
    World,
    provider_fakes,
)

from lily_host.testing import Harness, HarnessFactory  # noqa: E402

ALL_PLUGINS = ["twilio", "stripe", "calcom", "gcal", "s3", "chatwoot"]


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    with provider_fakes() as fakes:
        yield fakes


@pytest.fixture
def lily_in(lily_harness: HarnessFactory, world: World) -> Any:
    """``async with lily_in("production") as lily:`` — every plugin loaded, tenants ``acme`` and ``bob``."""

    @asynccontextmanager
    async def make(environment: str = "development", **extra_env: str) -> AsyncIterator[Harness]:
        env = {**world.env(environment), **extra_env}
        async with lily_harness(plugins=ALL_PLUGINS, env=env) as lily:
            await seed(lily)
            yield lily

    return make


async def seed(lily: Harness) -> None:
    await lily.create_tenant(
        "acme",
        plugins={
            "twilio": {"business_numbers": [TENANT_NUMBER]},
            "calcom": {"organizer_emails": ["owner@acme.test"], "webhook_secret": "acme-own-calcom-secret"},
            "chatwoot": {
                "account_id": CHATWOOT_ACCOUNT,
                "api_access_token": CHATWOOT_TOKEN,
                "webhook_secret": CHATWOOT_WEBHOOK_SECRET,
                "rules": [{"keyword": "price", "reply": "We'll send a quote today."}],
            },
        },
    )
    await lily.create_tenant("bob", plugins={"twilio": {"business_numbers": [OTHER_NUMBER]}})


@pytest.fixture
async def lily(lily_in: Any) -> AsyncIterator[Harness]:
    async with lily_in("development") as harness:
        yield harness
