"""lily-chatwoot's tests: the real app on a real redis-server, the provider faked on loopback.

They pass before and after ``pip install -e .``: ``extra_modules=`` loads the plugin by hand, and
when its entry point is installed too the host sees the same module and loads it once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from lily_host import Simulation
from lily_host.testing import Harness, HarnessFactory
from lily_chatwoot import plugin
from lily_chatwoot.fake import FakeChatwoot, signed_event

ACCOUNT = "acct_1"
API_KEY = "test-api-key"
SECRET = "test-webhook-secret"
PATH = "/webhooks/chatwoot"


@pytest.fixture
def fake() -> Iterator[FakeChatwoot]:
    with FakeChatwoot({ACCOUNT: API_KEY}) as server:
        yield server


@pytest.fixture
async def lily(lily_harness: HarnessFactory, fake: FakeChatwoot) -> AsyncIterator[Harness]:
    env = {"CHATWOOT_API_BASE": fake.base_url}
    async with lily_harness(extra_modules={"chatwoot": plugin}, env=env) as harness:
        settings = {"account_id": ACCOUNT, "api_key": API_KEY, "webhook_secret": SECRET}
        await harness.create_tenant("acme", plugins={"chatwoot": settings})
        yield harness


async def deliver(lily: Harness, event_id: str = "evt_1", *, secret: str = SECRET, account: str = ACCOUNT) -> int:
    body, headers = signed_event(secret, account=account, event_id=event_id)
    response = await lily.client.post(PATH, data=body, headers=headers)
    return response.status_code


async def test_an_event_delivered_twice_posts_one_note(lily: Harness, fake: FakeChatwoot) -> None:
    assert await deliver(lily) == 200
    assert await deliver(lily) == 200  # the provider retried: deduplicated by event id
    assert await lily.run_due() == 1
    assert [note.account for note in fake.notes] == [ACCOUNT]


async def test_a_task_run_again_posts_no_second_note(lily: Harness, fake: FakeChatwoot) -> None:
    for _ in range(2):  # the same work twice, as at-least-once delivery may run it
        await lily.host.schedule("chatwoot.post_note", {"event_id": "evt_9", "type": "x"}, tenant="acme")
    assert await lily.run_due() == 2
    assert len(fake.notes) == 1


async def test_wrong_or_missing_signature_changes_nothing(lily: Harness, fake: FakeChatwoot) -> None:
    assert await deliver(lily, secret="not-the-secret") == 403
    body, _headers = signed_event(SECRET, account=ACCOUNT)
    response = await lily.client.post(PATH, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert await lily.run_due() == 0
    assert fake.notes == []


async def test_an_unknown_account_is_404_naming_the_fix(lily: Harness) -> None:
    body, headers = signed_event(SECRET, account="acct_nobody")
    response = await lily.client.post(PATH, data=body, headers=headers)
    assert response.status_code == 404
    assert "account_id=acct_nobody" in (await response.get_json())["message"]


async def test_a_malformed_body_is_400(lily: Harness) -> None:
    response = await lily.client.post(PATH, data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


async def test_429_waits_for_retry_after_then_posts(lily: Harness, fake: FakeChatwoot) -> None:
    fake.fail_next(429, {"Retry-After": "120"})
    await deliver(lily)
    await lily.run_due()
    assert fake.notes == []
    await lily.advance(100)
    assert fake.notes == []
    await lily.advance(30)
    assert len(fake.notes) == 1


async def test_5xx_is_retried_and_posts_once(lily: Harness, fake: FakeChatwoot) -> None:
    fake.fail_next(503)
    await deliver(lily)
    await lily.run_due()
    assert fake.notes == []
    await lily.advance(3600)
    assert len(fake.notes) == 1


async def test_other_4xx_is_not_retried(lily: Harness, fake: FakeChatwoot) -> None:
    fake.fail_next(422)
    await deliver(lily)
    await lily.run_due()
    await lily.advance(24 * 3600)
    posts = [request for request in fake.requests if request.method == "POST"]
    assert len(posts) == 1
    assert fake.notes == []


async def test_health_checks_each_tenants_key(lily: Harness) -> None:
    report = await (await lily.client.get("/health")).get_json()
    assert report["plugins"]["chatwoot"]["state"] == "ok"
    await lily.host.tenants.set_plugin_settings("acme", "chatwoot", {"api_key": "revoked"})
    report = await (await lily.client.get("/health")).get_json()
    assert report["plugins"]["chatwoot"]["state"] == "auth_failed"


async def test_a_deleted_tenant_is_erased(lily: Harness) -> None:
    await deliver(lily)
    await lily.run_due()
    assert await lily.host.redis.keys("lily:chatwoot:acme:*")
    response = await lily.client.delete("/api/tenants/acme", headers=lily.admin_headers)
    assert response.status_code == 204
    await lily.run_due()
    assert await lily.host.redis.keys("lily:chatwoot:acme:*") == []


async def test_the_simulation_is_accepted(lily: Harness, fake: FakeChatwoot) -> None:
    simulations: list[Simulation] = []
    plugin.register_simulations(register=simulations.append)
    tenant = await lily.host.tenants.require("acme")
    path, headers, body = simulations[0].build(lily.host, tenant)
    assert (await lily.client.post(path, data=body, headers=dict(headers))).status_code == 200
    assert await lily.run_due() == 1
    assert len(fake.notes) == 1
