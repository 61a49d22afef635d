"""Load shedding: a source's rejected requests are rate-limited, an overloaded queue or Redis makes
webhooks answer 503, and the tenant API is rate-limited per key. All through real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sample_echo_plugin

from lily_host.testing import Harness, HarnessFactory, hmac_sha256_hex
from lily_host.web.load_shedding import SHEDDER, SourceLimiter, client_source

SECRET = "echo-secret"
PHONE = "+15550001111"
FLOOD = "203.0.113.9"
PROVIDER = "198.51.100.7"


@pytest.fixture
async def lily(lily_harness: HarnessFactory) -> AsyncIterator[Harness]:
    env = {
        "ECHO_SECRET": SECRET,
        "LILY_BAD_REQUEST_BURST": "3",
        "LILY_BAD_REQUEST_RATE": "0.01",
        "LILY_BAD_REQUEST_HOLD": "0",
    }
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env=env) as harness:
        await harness.create_tenant("acme", plugins={"echo": {"numbers": [PHONE]}})
        yield harness


async def deliver(lily: Harness, delivery: str, *, source: str, secret: str = SECRET) -> Any:
    body = json.dumps({"id": delivery, "to": PHONE, "text": delivery}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Echo-Signature": hmac_sha256_hex(secret, body),
    }
    return await lily.client.post("/webhooks/echo/json", data=body, headers=headers, scope_base=peer(source))


def peer(address: str) -> dict[str, Any]:
    """The ASGI scope of a connection from ``address`` (the client Lily sees)."""
    return {"client": (address, 40000)}


async def test_a_source_of_bad_signatures_is_answered_429_and_others_are_not(lily: Harness) -> None:
    statuses = [(await deliver(lily, f"bad{i}", source=FLOOD, secret="forged")).status_code for i in range(3)]
    assert statuses == [403, 403, 403]
    limited = await deliver(lily, "bad3", source=FLOOD, secret="forged")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await limited.get_json())["error"] == "rate_limited"
    # A provider elsewhere is not affected; its delivery is accepted and scheduled.
    assert (await deliver(lily, "good", source=PROVIDER)).status_code == 200
    assert (await lily.host.queue.stats()).due == 1


async def test_unroutable_deliveries_spend_the_budget_too(lily: Harness) -> None:
    for i in range(3):
        body = json.dumps({"id": f"n{i}", "to": "+15559999999"}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Echo-Signature": hmac_sha256_hex(SECRET, body),
        }
        response = await lily.client.post("/webhooks/echo/json", data=body, headers=headers, scope_base=peer(FLOOD))
        assert response.status_code == 404
    assert (await deliver(lily, "after", source=FLOOD)).status_code == 429


async def test_accepted_deliveries_spend_nothing(lily: Harness) -> None:
    for i in range(10):
        assert (await deliver(lily, f"ok{i}", source=PROVIDER)).status_code == 200


async def test_a_ready_backlog_past_the_bound_sheds_webhooks_with_503(lily_harness: HarnessFactory) -> None:
    env = {"ECHO_SECRET": SECRET, "LILY_SHED_BACKLOG": "2", "LILY_SHED_RETRY_AFTER": "45"}
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env=env) as lily:
        await lily.create_tenant("acme", plugins={"echo": {"numbers": [PHONE]}})
        for i in range(3):
            await lily.host.queue.schedule("echo.record", {"text": str(i)}, tenant="acme")
        assert await lily.app.extensions[SHEDDER].sample() is not None
        shed = await deliver(lily, "d1", source=PROVIDER)
        assert shed.status_code == 503
        assert shed.headers["Retry-After"] == "45"
        assert (await shed.get_json())["error"] == "shed"
        assert (await lily.host.queue.stats()).due == 3  # nothing was stored for it
        await lily.run_due()
        assert await lily.app.extensions[SHEDDER].sample() is None
        assert (await deliver(lily, "d1", source=PROVIDER)).status_code == 200


async def test_a_slow_redis_sheds_webhooks(lily_harness: HarnessFactory) -> None:
    # A bound of one microsecond: no round trip is that fast, so the probe reports Redis as slow.
    env = {"ECHO_SECRET": SECRET, "LILY_SHED_REDIS_MS": "0.001"}
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env=env) as lily:
        await lily.create_tenant("acme", plugins={"echo": {"numbers": [PHONE]}})
        overload = await lily.app.extensions[SHEDDER].sample()
        assert overload is not None and "LILY_SHED_REDIS_MS" in overload.reason
        assert (await deliver(lily, "d1", source=PROVIDER)).status_code == 503


async def test_the_tenant_api_is_rate_limited_per_key(lily_harness: HarnessFactory) -> None:
    env = {"LILY_API_RATE_PER_MINUTE": "1", "LILY_API_BURST": "2"}
    async with lily_harness(env=env) as lily:
        await lily.create_tenant("acme")
        first, second = await lily.tenant_headers("acme"), await lily.tenant_headers("acme")
        assert [(await lily.client.get("/api/tenant", headers=first)).status_code for _ in range(2)] == [200, 200]
        limited = await lily.client.get("/api/tenant", headers=first)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert (await lily.client.get("/api/tenant", headers=second)).status_code == 200  # another key


def test_the_client_is_the_rightmost_address_no_trusted_proxy_added() -> None:
    def trusted(address: str) -> bool:
        return address in ("127.0.0.1", "10.0.0.2")

    assert client_source("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", trusted) == "1.2.3.4"
    assert client_source("1.2.3.4", "9.9.9.9", trusted) == "1.2.3.4"  # an untrusted peer cannot name one
    assert client_source("127.0.0.1", None, trusted) == "127.0.0.1"


def test_a_source_earns_its_tokens_back() -> None:
    now = [0.0]
    limiter = SourceLimiter(burst=2, rate=0.5, clock=lambda: now[0])
    limiter.charge("a")
    limiter.charge("a")
    assert limiter.retry_after("a") == 2
    now[0] = 2.0
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("b") is None


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_source(lily: Harness) -> None:
    async def via_proxy(delivery: str, client: str, secret: str) -> int:
        body = json.dumps({"id": delivery, "to": PHONE}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Echo-Signature": hmac_sha256_hex(secret, body),
            "X-Forwarded-For": client,
        }
        response = await lily.client.post(
            "/webhooks/echo/json", data=body, headers=headers, scope_base=peer("127.0.0.1")
        )
        return response.status_code

    assert [await via_proxy(f"b{i}", FLOOD, "forged") for i in range(4)] == [403, 403, 403, 429]
    assert await via_proxy("good", PROVIDER, SECRET) == 200
