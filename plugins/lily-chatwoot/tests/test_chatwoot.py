"""lily-chatwoot through the real app on a real redis-server, against the local fake Chatwoot."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from lily_chatwoot import plugin, signature
from lily_chatwoot.fake import FakeChatwoot, message_created, signed
from lily_host import Simulation
from lily_host.testing import Harness, HarnessFactory

ACCOUNT = "7"
TOKEN = "test-access-token"
SECRET = "test-webhook-secret"
PATH = "/webhooks/chatwoot"
RULES = [
    {"keyword": "price", "reply": "We'll send a quote today."},
    {"keyword": "opening hours", "reply": "Mon-Sat, 8 to 6."},
    {"keyword": "quote", "reply": "never chosen when 'price' also matches"},
]


@pytest.fixture
def fake() -> Iterator[FakeChatwoot]:
    with FakeChatwoot({ACCOUNT: TOKEN}, webhook_secret=SECRET) as server:
        yield server


@pytest.fixture
async def lily(lily_harness: HarnessFactory, fake: FakeChatwoot) -> AsyncIterator[Harness]:
    async with lily_harness(extra_modules={"chatwoot": plugin}, env={"CHATWOOT_API_BASE": fake.base_url}) as harness:
        settings = {"account_id": ACCOUNT, "api_access_token": TOKEN, "webhook_secret": SECRET, "rules": RULES}
        await harness.create_tenant("acme", plugins={"chatwoot": settings})
        yield harness


async def deliver(lily: Harness, payload: dict[str, Any] | None = None, **options: Any) -> Any:
    body, headers = signed(payload or message_created(account=ACCOUNT), options.pop("secret", SECRET), **options)
    return await lily.client.post(PATH, data=body, headers=headers)


async def test_a_keyword_is_answered_10_to_45_seconds_later(lily: Harness, fake: FakeChatwoot) -> None:
    payload = message_created(account=ACCOUNT, conversation=12, message_id=501, content="What's the PRICE?")
    response = await deliver(lily, payload)
    assert response.status_code == 200
    assert (await response.get_json())["replied"] is True
    await lily.run_due()
    await lily.advance(9.9)
    assert fake.sent() == []
    await lily.advance(35.2)
    [reply] = fake.sent()
    assert (reply.account, reply.conversation, reply.content, reply.private) == (
        ACCOUNT,
        "12",
        RULES[0]["reply"],
        False,
    )
    posted = [request for request in fake.requests if request.method == "POST"]
    assert posted[0].path == f"/api/v1/accounts/{ACCOUNT}/conversations/12/messages"
    assert posted[0].headers["api_access_token"] == TOKEN
    assert posted[0].json() == {"content": RULES[0]["reply"], "message_type": "outgoing", "private": False}


async def test_a_message_delivered_twice_is_answered_once(lily: Harness, fake: FakeChatwoot) -> None:
    payload = message_created(account=ACCOUNT, message_id=502, content="price?")
    for _ in range(2):  # each send has its own X-Chatwoot-Delivery; the message is the same
        assert (await deliver(lily, payload)).status_code == 200
    await lily.advance(60)
    assert len(fake.sent()) == 1


async def test_a_reply_task_run_again_sends_nothing_more(lily: Harness, fake: FakeChatwoot) -> None:
    task = {"account": ACCOUNT, "conversation": "3", "message": "503", "reply": "hello"}
    for _ in range(2):  # at-least-once delivery may run the same work twice
        await lily.host.schedule("chatwoot.send_reply", task, tenant="acme")
    assert await lily.run_due() == 2
    assert len(fake.sent()) == 1


async def test_lily_never_answers_its_own_reply_or_agents_or_notes(lily: Harness, fake: FakeChatwoot) -> None:
    await deliver(lily, message_created(account=ACCOUNT, message_id=504, content="price"))
    await lily.advance(60)
    assert len(fake.sent()) == 1
    # Chatwoot fires message_created for Lily's own reply (outgoing, by the token's agent). The reply
    # ("We'll send a quote today.") holds the keyword 'quote': answering it would loop forever.
    echo_body, echo_headers = fake.deliveries[0]
    assert (await lily.client.post(PATH, data=echo_body, headers=echo_headers)).status_code == 200
    agent = {"id": 3, "name": "Agent", "type": "user"}
    for payload in (
        message_created(account=ACCOUNT, message_id=505, content="price", message_type="outgoing", sender=agent),
        message_created(account=ACCOUNT, message_id=506, content="price", private=True),
        message_created(account=ACCOUNT, message_id=507, content="price", message_type="activity"),
        {**message_created(account=ACCOUNT, message_id=508, content="price"), "event": "message_updated"},
        {"event": "conversation_created", "id": 12, "account": {"id": int(ACCOUNT), "name": "Acme"}},
    ):
        response = await deliver(lily, payload)
        assert response.status_code == 200
        assert (await response.get_json())["replied"] is False
    await lily.advance(3600)
    assert len(fake.sent()) == 1


async def test_rules_are_whole_word_case_insensitive_first_match_wins(lily: Harness, fake: FakeChatwoot) -> None:
    cases = {
        601: "Can I get a quote and a PRICE?",  # both 'price' and 'quote': the first rule wins
        602: "Your Opening   Hours, please",  # a phrase, any case, any spacing
        603: "prices? priceless!",  # not the whole word: no reply
    }
    for message_id, content in cases.items():
        await deliver(
            lily, message_created(account=ACCOUNT, conversation=message_id, message_id=message_id, content=content)
        )
    await lily.advance(60)
    replies = {message.conversation: message.content for message in fake.sent()}
    assert replies == {"601": RULES[0]["reply"], "602": RULES[1]["reply"]}


async def test_the_default_reply_is_off_until_set(lily: Harness, fake: FakeChatwoot) -> None:
    await deliver(lily, message_created(account=ACCOUNT, message_id=701, content="hello there"))
    await lily.advance(60)
    assert fake.sent() == []
    await lily.host.tenants.set_plugin_settings(
        "acme", "chatwoot", {"default_reply": "Thanks, we'll be right with you."}
    )
    await deliver(lily, message_created(account=ACCOUNT, message_id=702, content="hello there"))
    await lily.advance(60)
    assert [message.content for message in fake.sent()] == ["Thanks, we'll be right with you."]


async def test_deliveries_are_verified_with_the_tenants_secret(lily: Harness, fake: FakeChatwoot) -> None:
    assert (await deliver(lily, secret="someone-elses-secret")).status_code == 403
    assert (await deliver(lily, timestamp=time.time() - 3600)).status_code == 403  # a replay
    body, _headers = signed(message_created(account=ACCOUNT), SECRET)
    unsigned = {"Content-Type": "application/json"}
    assert (await lily.client.post(PATH, data=body, headers=unsigned)).status_code == 401
    await lily.advance(3600)
    assert fake.requests == []


@pytest.mark.parametrize("timestamp", ["nan", "1e999", "0x6553f100", "+1_700_000_000", "1" * 13])
async def test_a_signed_timestamp_must_be_a_unix_time_in_ascii_digits(lily: Harness, timestamp: str) -> None:
    body, headers = signed(message_created(account=ACCOUNT, content="price"), SECRET)
    headers[signature.TIMESTAMP] = timestamp
    headers[signature.SIGNATURE] = signature.sign(SECRET, timestamp, body)  # a right signature of a bad time
    response = await lily.client.post(PATH, data=body, headers=headers)
    assert response.status_code == 403
    assert "not a Unix time" in (await response.get_json())["message"]


async def test_an_unknown_account_is_answered_like_a_wrong_signature(lily: Harness) -> None:
    wrong = await deliver(lily, message_created(account=ACCOUNT, content="price"), secret="not-the-secret")
    unknown = await deliver(lily, message_created(account=999, content="price"))
    assert unknown.status_code == wrong.status_code == 403
    assert await unknown.get_json() == await wrong.get_json()  # nothing tells the caller the account is unknown


async def test_a_tenant_without_a_webhook_secret_cannot_be_verified(lily: Harness) -> None:
    await lily.create_tenant("solo", plugins={"chatwoot": {"account_id": "8", "api_access_token": TOKEN}})
    response = await deliver(lily, message_created(account=8, content="price"))
    assert response.status_code == 403
    assert (await response.get_json())["message"] == signature.NO_MATCH


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"event": "message_created"}'])
async def test_malformed_deliveries_are_400(lily: Harness, body: bytes) -> None:
    _body, headers = signed(body, SECRET)
    assert (await lily.client.post(PATH, data=body, headers=headers)).status_code == 400


async def test_429_waits_for_retry_after(lily: Harness, fake: FakeChatwoot) -> None:
    fake.fail_next(429, {"Retry-After": "120"})
    await deliver(lily, message_created(account=ACCOUNT, message_id=801, content="price"))
    await lily.advance(60)
    assert fake.sent() == []
    await lily.advance(100)  # 160 s after the message: the reply ran at <= 45 s, then waited 120 s
    assert fake.sent() == []
    await lily.advance(30)
    assert len(fake.sent()) == 1


async def test_5xx_is_retried_and_answers_once(lily: Harness, fake: FakeChatwoot) -> None:
    fake.fail_next(502, times=2)
    await deliver(lily, message_created(account=ACCOUNT, message_id=802, content="price"))
    for _ in range(4):  # the first run and its two backoffs
        await lily.advance(900)
    assert len(fake.sent()) == 1
    assert len([request for request in fake.requests if request.method == "POST"]) == 3


@pytest.mark.parametrize("status", [401, 404, 422])
async def test_other_4xx_go_to_the_dead_letters(lily: Harness, fake: FakeChatwoot, status: int) -> None:
    fake.fail_next(status)
    await deliver(lily, message_created(account=ACCOUNT, message_id=803, content="price"))
    await lily.advance(60)
    await lily.advance(24 * 3600)
    assert len([request for request in fake.requests if request.method == "POST"]) == 1
    assert fake.sent() == []


async def test_health_checks_each_tenants_token(lily: Harness) -> None:
    report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
    assert report["plugins"]["chatwoot"]["state"] == "ok"
    await lily.host.tenants.set_plugin_settings("acme", "chatwoot", {"api_access_token": "revoked"})
    # Each tenant's probe is cached for LILY_HEALTH_TENANT_INTERVAL (300 s, ± 25 %) and spread over time.
    report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
    assert report["plugins"]["chatwoot"]["state"] == "ok"
    lily.clock.advance(400)
    report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
    assert report["plugins"]["chatwoot"]["state"] == "auth_failed"
    assert "acme" in report["plugins"]["chatwoot"]["message"]


async def test_a_deleted_tenant_is_erased(lily: Harness) -> None:
    await deliver(lily, message_created(account=ACCOUNT, message_id=901, content="price"))
    await lily.advance(60)
    assert [k async for k in lily.host.redis.scan_iter(match="lily:{t:acme}:chatwoot:*")]
    assert (await lily.client.delete("/api/tenants/acme", headers=lily.admin_headers)).status_code == 204
    await lily.run_due()
    assert [k async for k in lily.host.redis.scan_iter(match="lily:{t:acme}:chatwoot:*")] == []
    # The account no longer resolves: its deliveries are refused, nothing is sent.
    assert (await deliver(lily, message_created(account=ACCOUNT, message_id=902))).status_code == 403


async def test_the_simulation_gets_a_reply(lily: Harness, fake: FakeChatwoot) -> None:
    simulations: list[Simulation] = []
    plugin.register_simulations(register=simulations.append)
    tenant = await lily.host.tenants.require("acme")
    path, headers, body = simulations[0].build(lily.host, tenant)
    response = await lily.client.post(path, data=body, headers=dict(headers))
    assert (await response.get_json())["replied"] is True
    await lily.advance(60)
    assert [message.content for message in fake.sent()] == [RULES[0]["reply"]]


async def test_bad_tenant_settings_are_one_clear_400(lily: Harness) -> None:
    for values, words in (
        ({"account_id": "acme-co"}, "account_id is the number"),
        ({"rules": [{"keyword": " ", "reply": "x"}]}, "keyword"),
        ({"rules": [{"keyword": "price"}]}, "reply"),
    ):
        response = await lily.client.patch(
            "/api/tenants/acme", json={"plugins": {"chatwoot": values}}, headers=lily.admin_headers
        )
        assert response.status_code == 400
        assert words in (await response.get_json())["message"]
    tenant = await lily.host.tenants.require("acme")
    assert lily.host.tenants.plugin_settings(tenant, "chatwoot").account_id == ACCOUNT  # type: ignore[union-attr]


async def test_chatwoot_unreachable_is_retried_and_answers_once(lily: Harness, fake: FakeChatwoot) -> None:
    port = fake.port
    await deliver(lily, message_created(account=ACCOUNT, message_id=1001, content="price"))
    fake.stop()  # connection refused: the reply surely was not sent, so the claim is released
    await lily.advance(60)
    assert [k async for k in lily.host.redis.scan_iter(match="lily:{t:acme}:chatwoot:replied:*")] == []
    with FakeChatwoot({ACCOUNT: TOKEN}, webhook_secret=SECRET, port=port) as back:
        for _ in range(3):
            await lily.advance(900)
        assert [message.content for message in back.sent()] == [RULES[0]["reply"]]


async def test_a_timeout_after_sending_is_not_retried(lily_harness: HarnessFactory, fake: FakeChatwoot) -> None:
    """Chatwoot created the message but the answer came too late: sending again would duplicate it."""
    env = {"CHATWOOT_API_BASE": fake.base_url, "CHATWOOT_REQUEST_TIMEOUT": "0.3"}
    async with lily_harness(extra_modules={"chatwoot": plugin}, env=env) as lily:
        settings = {"account_id": ACCOUNT, "api_access_token": TOKEN, "webhook_secret": SECRET, "rules": RULES}
        await lily.create_tenant("acme", plugins={"chatwoot": settings})
        fake.delay_next(1.0)
        await deliver(lily, message_created(account=ACCOUNT, message_id=1002, content="price"))
        await lily.advance(60)
        await lily.advance(24 * 3600)
        assert len(fake.sent()) == 1
        assert len([request for request in fake.requests if request.method == "POST"]) == 1
        assert [
            k async for k in lily.host.redis.scan_iter(match="lily:{t:acme}:chatwoot:replied:*")
        ]  # the claim is kept
