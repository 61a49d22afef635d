"""The template's day-one tests: a signed webhook schedules the task; bad input changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from lily_example import plugin
from lily_host.testing import Harness, HarnessFactory, hmac_sha256_hex

SECRET = "test-example-secret"


@pytest.fixture
async def lily(lily_harness: HarnessFactory) -> AsyncIterator[Harness]:
    # extra_modules loads the plugin even when it is not pip-installed; once installed,
    # lily_harness(plugins=["example"]) loads it through its entry point instead.
    async with lily_harness(extra_modules={"example": plugin}, env={"EXAMPLE_WEBHOOK_SECRET": SECRET}) as harness:
        await harness.create_tenant("acme", plugins={"example": {"account_ids": ["acct_1"]}})
        yield harness


def signed(payload: dict[str, str], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"Content-Type": "application/json", "X-Example-Signature": hmac_sha256_hex(secret, body)}


async def test_signed_webhook_runs_the_task_once(lily: Harness) -> None:
    body, headers = signed({"id": "evt_1", "account": "acct_1", "customer_phone": "+15551230000"})
    assert (await lily.client.post("/webhooks/example", data=body, headers=headers)).status_code == 200
    assert (await lily.client.post("/webhooks/example", data=body, headers=headers)).status_code == 200
    assert await lily.run_due() == 1
    assert await lily.host.redis.smembers("example:acme:customers") == {b"+15551230000"}


async def test_bad_signature_changes_nothing(lily: Harness) -> None:
    body, headers = signed({"id": "evt_1", "account": "acct_1", "customer_phone": "+1555"}, secret="wrong")
    assert (await lily.client.post("/webhooks/example", data=body, headers=headers)).status_code == 403
    assert await lily.run_due() == 0


async def test_unknown_account_is_404(lily: Harness) -> None:
    body, headers = signed({"id": "evt_2", "account": "acct_nobody", "customer_phone": "+1555"})
    assert (await lily.client.post("/webhooks/example", data=body, headers=headers)).status_code == 404


async def test_health_is_ok(lily: Harness) -> None:
    report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
    assert report["plugins"]["example"]["state"] == "ok"
