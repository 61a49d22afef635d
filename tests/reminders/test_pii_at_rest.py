"""Customer PII at rest: after a full flow through the webhooks and the worker, raw Redis holds no
customer phone number, name or message body in plaintext (only sealed ``enc:v1:`` values and keyed hashes)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from lily_host.cli.main import main
from lily_host.sms.compliance import Compliance
from lily_host.tenants.customer_pii import Pii
from lily_host.tenants.secret_box import SecretBox
from lily_host.testing import TEST_PUBLIC_URL, Harness
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import call_form, signed_headers

from .conftest import BUSINESS, CUSTOMER

CUSTOMER_REPLY = "Driveway is 40ft, my gate code is 4417"
BUSINESS_REPLY = "Thanks! We can come by Tuesday morning"


async def raw_redis(lily: Harness) -> list[str]:
    """Every key and every value in Redis, decoded as text."""
    redis = lily.host.redis
    found: list[str] = []
    async for raw_key in redis.scan_iter(count=1000):
        key = raw_key.decode()
        found.append(key)
        kind = (await redis.type(key)).decode()
        values: list[Any]
        if kind == "string":
            values = [await redis.get(key)]
        elif kind == "hash":
            values = [item for pair in (await redis.hgetall(key)).items() for item in pair]
        elif kind == "list":
            values = await redis.lrange(key, 0, -1)
        elif kind == "set":
            values = list(await redis.smembers(key))
        elif kind == "zset":
            values = await redis.zrange(key, 0, -1)
        else:
            values = []
        found.extend(value.decode(errors="replace") for value in values if value is not None)
    return found


async def test_no_plaintext_customer_data_in_redis_after_a_full_flow(
    lily: Harness, book, text_in, fake_twilio: FakeTwilio
) -> None:
    headers = await lily.tenant_headers()
    await lily.host.tenants.update("acme", review_link="https://g.page/r/acme", review_follow_up_days=2)
    # A missed call, the text-back, the customer's reply and the business's answer.
    params = call_form(caller=CUSTOMER, to=BUSINESS)
    voice = signed_headers(fake_twilio.auth_token, TEST_PUBLIC_URL + "/webhooks/twilio/voice", params)
    await lily.client.post("/webhooks/twilio/voice", data=urlencode(params), headers=voice)
    await lily.run_due()
    await lily.advance(60)
    await text_in(CUSTOMER_REPLY)
    [conversation] = (await (await lily.client.get("/api/conversations", headers=headers)).get_json())["conversations"]
    await lily.client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"body": BUSINESS_REPLY}, headers=headers
    )
    await lily.run_due()
    # A quote accepted by reply.
    await lily.client.post(
        "/api/quotes/Q1/send", json={"amount": 180, "description": "driveway", "to": CUSTOMER}, headers=headers
    )
    await lily.run_due()
    await text_in("YES")
    # A booking, its reminder, confirmed by reply.
    await book(uid="b1", start=datetime(2030, 6, 5, 15, 0, tzinfo=UTC), customer_name="Jane Doe")
    await lily.advance(24 * 3600)
    await text_in("C")
    # A finished job and its review request.
    job = {"customer_name": "Jane Doe", "customer_phone": CUSTOMER, "service": "driveway wash"}
    await lily.client.post("/api/jobs/J1/complete", json=job, headers=headers)
    await lily.run_due()
    await lily.advance(25 * 3600)
    # And at last a revocation in plain words.
    await text_in("please stop texting me")

    bodies = [message["body"] for message in fake_twilio.messages]
    assert any("Sorry we missed your call" in body for body in bodies)
    assert any(body == BUSINESS_REPLY for body in bodies)
    assert any("Reminder:" in body for body in bodies)
    assert any("review helps" in body for body in bodies)
    assert await lily.host.messaging.compliance.is_suppressed("acme", CUSTOMER)

    dump = await raw_redis(lily)
    # The dump does read values: the business's own quote description is there, in plain text.
    assert any(item == "driveway" for item in dump)
    digits = CUSTOMER.lstrip("+")
    for text in (digits, digits[1:], "Jane Doe", CUSTOMER_REPLY, "gate code", BUSINESS_REPLY, "Sorry we missed"):
        leaks = [item[:120] for item in dump if text in item]
        assert leaks == [], f"{text!r} stored in plaintext: {leaks}"
    assert any(item.startswith("enc:v1:") for item in dump)

    # The business still reads everything through the API.
    detail = await (await lily.client.get(f"/api/conversations/{conversation['id']}", headers=headers)).get_json()
    assert detail["conversation"]["number"] == CUSTOMER
    assert CUSTOMER_REPLY in [message["body"] for message in detail["messages"]]
    assert (await lily.host.messaging.compliance.suppressed("acme")).keys() == {CUSTOMER}


async def test_rotating_the_key_reseals_customer_data_and_keeps_the_lookups(
    lily: Harness, text_in, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await lily.tenant_headers()
    await text_in(CUSTOMER_REPLY)
    await book(lily)
    await text_in("stop texting me")
    [conversation] = (await (await lily.client.get("/api/conversations", headers=headers)).get_json())["conversations"]
    old_key = os.environ["LILY_SECRET_KEY"]
    new_key = SecretBox.generate_key()

    monkeypatch.setenv("LILY_SECRET_KEY", f"{new_key},{old_key}")
    result = await asyncio.to_thread(CliRunner().invoke, main, ["tenants", "rotate-secrets"])
    assert result.exit_code == 0, result.output

    only_new = Pii(lily.host.redis, SecretBox([new_key]))
    sealed = [item for item in await raw_redis(lily) if item.startswith("enc:v1:")]
    assert sealed and all(only_new.open(item) is not None for item in sealed)
    # The keyed hashes did not change: the conversation is found under the same id, the opt-out still holds.
    assert await only_new.digest(CUSTOMER) == conversation["id"]
    assert await Compliance(lily.host.redis, pii=only_new).is_suppressed("acme", CUSTOMER)


async def book(lily: Harness) -> None:
    from lily_calcom.fake import booking_delivery, signed

    from .conftest import CALCOM_SECRET

    raw, signed_headers_ = signed(booking_delivery(uid="r1", customer_phone=CUSTOMER), CALCOM_SECRET)
    await lily.client.post("/webhooks/calcom", data=raw, headers=signed_headers_)
    await lily.run_due()
