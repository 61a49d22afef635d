"""/healthz, /health with each state, and /metrics in Prometheus text format."""

from __future__ import annotations

import json
import re

import pytest
import sample_echo_plugin

from lily_host.testing import HarnessFactory, hmac_sha256_hex


@pytest.mark.parametrize(
    ("echo_health", "overall", "status_code"),
    [("ok", "ok", 200), ("degraded", "degraded", 200), ("failed", "failed", 503), ("raise", "failed", 503)],
)
async def test_health_reports_each_plugin_and_an_overall_state(
    lily_harness: HarnessFactory, echo_health: str, overall: str, status_code: int
) -> None:
    env = {"ECHO_SECRET": "x", "ECHO_HEALTH": echo_health}
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env=env) as lily:
        response = await lily.client.get("/health", headers=lily.admin_headers)
        report = await response.get_json()
        assert response.status_code == status_code
        assert report["status"] == overall
        assert report["plugins"]["lily.core"]["checks"]["redis"]["state"] == "ok"
        echo = report["plugins"]["echo"]
        assert echo["state"] == ("failed" if echo_health == "raise" else echo_health)
        if echo_health == "raise":
            assert "provider unreachable" in echo["message"]


async def test_health_says_not_configured_without_failing(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}) as lily:
        response = await lily.client.get("/health", headers=lily.admin_headers)
        report = await response.get_json()
        assert response.status_code == 200
        assert report["status"] == "degraded"
        assert report["plugins"]["echo"] == {"state": "not_configured", "message": "set ECHO_SECRET", "checks": {}}


async def test_healthz_only_says_alive(lily_harness: HarnessFactory) -> None:
    async with lily_harness() as lily:
        response = await lily.client.get("/healthz")
        assert response.status_code == 200 and (await response.get_json()) == {"status": "alive"}


async def test_metrics_count_webhooks_by_outcome_and_show_queue_depth(lily_harness: HarnessFactory) -> None:
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env={"ECHO_SECRET": "s"}) as lily:
        await lily.create_tenant("acme", plugins={"echo": {"numbers": ["+15550001111"]}})
        body = json.dumps({"id": "m1", "to": "+15550001111"}).encode()
        good = {"Content-Type": "application/json", "X-Echo-Signature": hmac_sha256_hex("s", body)}
        await lily.client.post("/webhooks/echo/json", data=body, headers=good)
        await lily.client.post("/webhooks/echo/json", data=body, headers=good)
        await lily.client.post("/webhooks/echo/json", data=body, headers={**good, "X-Echo-Signature": "0" * 64})
        response = await lily.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = (await response.get_data()).decode()
        for outcome in ("accepted", "duplicate", "bad_signature"):
            assert f'lily_webhooks_total{{integration="echo",outcome="{outcome}"}}' in text
        assert re.search(r'lily_tasks_due\{[^}]*type="echo.record"[^}]*\} 1\.0', text)
        assert "lily_webhook_duration_seconds_bucket" in text
