"""The one webhook path: limits, signatures, tenants, idempotency, atomic commit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sample_echo_plugin

from lily_host.testing import Harness, HarnessFactory, hmac_sha256_hex

SECRET = "echo-secret"


@pytest.fixture
async def lily(lily_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env={"ECHO_SECRET": SECRET}) as harness:
        await harness.create_tenant("acme", plugins={"echo": {"numbers": ["+1 (555) 000-1111"]}})
        await harness.create_tenant("bravo", plugins={"echo": {"numbers": ["+15550002222"]}})
        yield harness


def signed(payload: Any, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"Content-Type": "application/json", "X-Echo-Signature": hmac_sha256_hex(secret, body)}


async def post(lily: Harness, body: bytes, headers: dict[str, str], path: str = "/webhooks/echo/json") -> Any:
    return await lily.client.post(path, data=body, headers=headers)


async def tasks_due(lily: Harness) -> int:
    stats = await lily.host.queue.stats()
    return int(stats.due)


async def test_valid_delivery_emits_an_event_that_runs_as_a_task(lily: Harness) -> None:
    body, headers = signed({"id": "d1", "to": "+15550001111", "text": "hello"})
    response = await post(lily, body, headers)
    assert response.status_code == 200
    assert await tasks_due(lily) == 1
    assert await lily.run_due() == 1
    assert await lily.host.redis.lrange("echo:seen", 0, -1) == [b"acme:hello"]


async def test_duplicate_delivery_answers_2xx_and_schedules_nothing(lily: Harness) -> None:
    body, headers = signed({"id": "d1", "to": "+15550001111", "text": "hello"})
    assert (await post(lily, body, headers)).status_code == 200
    assert (await post(lily, body, headers)).status_code == 200
    assert await tasks_due(lily) == 1


async def test_bad_signature_is_403_and_stores_nothing(lily: Harness) -> None:
    body, headers = signed({"id": "d1", "to": "+15550001111"}, secret="wrong")
    response = await post(lily, body, headers)
    assert response.status_code == 403
    assert (await response.get_json())["error"] == "bad_signature"
    assert await tasks_due(lily) == 0
    # the delivery id was not burnt: the genuine delivery still goes through
    body, headers = signed({"id": "d1", "to": "+15550001111"})
    assert (await post(lily, body, headers)).status_code == 200
    assert await tasks_due(lily) == 1


async def test_missing_signature_is_401(lily: Harness) -> None:
    body = json.dumps({"id": "d1", "to": "+15550001111"}).encode()
    response = await post(lily, body, {"Content-Type": "application/json"})
    assert response.status_code == 401
    assert await tasks_due(lily) == 0


async def test_tampered_body_is_refused(lily: Harness) -> None:
    body, headers = signed({"id": "d1", "to": "+15550001111", "text": "a"})
    response = await post(lily, body.replace(b'"a"', b'"b"'), headers)
    assert response.status_code == 403


async def test_unknown_tenant_is_404_and_stores_nothing(lily: Harness) -> None:
    body, headers = signed({"id": "d1", "to": "+19999999999"})
    response = await post(lily, body, headers)
    assert response.status_code == 404
    assert (await response.get_json())["error"] == "unknown_tenant"
    assert await tasks_due(lily) == 0


async def test_tenant_is_resolved_by_normalised_number(lily: Harness) -> None:
    body, headers = signed({"id": "d2", "to": "+15550002222", "text": "b"})
    assert (await post(lily, body, headers)).status_code == 200
    await lily.run_due()
    assert await lily.host.redis.lrange("echo:seen", 0, -1) == [b"bravo:b"]


async def test_malformed_json_is_400(lily: Harness) -> None:
    body = b'{"id": "d1", "to": '
    headers = {"Content-Type": "application/json", "X-Echo-Signature": hmac_sha256_hex(SECRET, body)}
    response = await post(lily, body, headers)
    assert response.status_code == 400
    assert "JSON" in (await response.get_json())["message"]


async def test_json_missing_required_field_is_400(lily: Harness) -> None:
    body, headers = signed({"id": "d1"})
    response = await post(lily, body, headers)
    assert response.status_code == 400


async def test_malformed_form_body_is_400(lily: Harness) -> None:
    body = b"\xff\xfe=\xff"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Echo-Signature": hmac_sha256_hex(SECRET, body)}
    response = await post(lily, body, headers, path="/webhooks/echo/form")
    assert response.status_code == 400


async def test_form_webhook_accepts_url_encoded_bodies(lily: Harness) -> None:
    body = b"id=f1&to=%2B15550001111&text=hi"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Echo-Signature": hmac_sha256_hex(SECRET, body)}
    assert (await post(lily, body, headers, path="/webhooks/echo/form")).status_code == 200
    assert await tasks_due(lily) == 1


async def test_wrong_content_type_is_415(lily: Harness) -> None:
    body, headers = signed({"id": "d1", "to": "+15550001111"})
    headers["Content-Type"] = "text/plain"
    response = await post(lily, body, headers)
    assert response.status_code == 415
    assert await tasks_due(lily) == 0


async def test_oversized_body_is_413(lily: Harness) -> None:
    body, headers = signed({"id": "d1", "to": "+15550001111", "text": "x" * (1024 * 1024 + 10)})
    response = await post(lily, body, headers)
    assert response.status_code == 413
    assert await tasks_due(lily) == 0


async def test_handler_failure_is_500_and_the_retry_still_counts(lily: Harness) -> None:
    body, headers = signed({"id": "d9", "to": "+15550001111", "explode": True})
    response = await post(lily, body, headers)
    assert response.status_code == 500
    assert await tasks_due(lily) == 0
    # the delivery id is not burnt by the failure, so the provider's retry is not taken for a duplicate
    assert await lily.host.redis.keys("*seen:echo:d9*") == []


async def test_webhook_of_unconfigured_plugin_is_503_naming_the_missing_setting(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}) as lily:
        body, headers = signed({"id": "d1", "to": "+15550001111"})
        response = await post(lily, body, headers)
        assert response.status_code == 503
        data = await response.get_json()
        assert data["missing"] == ["ECHO_SECRET"]
        routes = await lily.client.get("/plugins/echo/whoami")
        assert routes.status_code == 503
        assert (await lily.client.get("/healthz")).status_code == 200


async def test_production_refuses_plain_http_unless_a_trusted_proxy_says_https(lily_harness: HarnessFactory) -> None:
    env = {
        "ECHO_SECRET": SECRET,
        "LILY_ENV": "production",
        "LILY_TRUSTED_PROXIES": "127.0.0.1",
        "LILY_ADMIN_TOKEN": "production-admin-token-0123456789abcdef",
    }
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env=env) as lily:
        await lily.create_tenant("acme", plugins={"echo": {"numbers": ["+15550001111"]}})
        body, headers = signed({"id": "p1", "to": "+15550001111"})
        plain = await post(lily, body, headers)
        assert plain.status_code == 403
        trusted = {"client": ("127.0.0.1", 40000)}
        untrusted = {"client": ("203.0.113.9", 40000)}
        forwarded = {**headers, "X-Forwarded-Proto": "https"}
        spoofed = await lily.client.post("/webhooks/echo/json", data=body, headers=forwarded, scope_base=untrusted)
        assert spoofed.status_code == 403
        proxied = await lily.client.post("/webhooks/echo/json", data=body, headers=forwarded, scope_base=trusted)
        assert proxied.status_code == 200


async def test_an_endpoint_can_set_a_smaller_body_limit(lily: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sample_echo_plugin.EchoFormWebhook, "max_body_bytes", 2048)
    body = b"id=f1&to=%2B15550001111&text=" + b"x" * 4096
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Echo-Signature": hmac_sha256_hex(SECRET, body)}
    response = await post(lily, body, headers, path="/webhooks/echo/form")
    assert response.status_code == 413
    assert await tasks_due(lily) == 0
