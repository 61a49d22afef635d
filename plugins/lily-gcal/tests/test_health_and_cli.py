"""Per-tenant health, the connect command, the sharing task, and the plugin without settings."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from click.testing import CliRunner

from lily_gcal.fake import FakeGoogle
from lily_gcal.links import link_key
from lily_host.testing import TEST_SECRET_KEY, Harness, HarnessFactory, RedisServer


async def gcal_health(lily: Harness) -> dict[str, Any]:
    response = await lily.client.get("/health", headers=lily.admin_headers)
    report: dict[str, Any] = (await response.get_json())["plugins"]["gcal"]
    return report


async def test_health_ok_before_anyone_connects(lily: Harness) -> None:
    report = await gcal_health(lily)
    assert report["state"] == "ok"
    assert report["checks"]["calendars"]["message"] == "no tenant has connected Google Calendar yet"


async def test_health_per_tenant(lily: Harness, google: FakeGoogle, connect: Any) -> None:
    await connect("acme")
    await lily.host.tenants.set_plugin_settings("bravo", "gcal", {"calendar_id": "primary"})
    report = await gcal_health(lily)
    details = report["checks"]["calendars"]["details"]
    assert report["state"] == "ok"
    checked_at = lily.clock.now()  # each entry says when it was probed (entries are cached)
    assert details["acme"] == {
        "state": "ok",
        "message": "calendar reachable",
        "calendar_id": "primary",
        "checked_at": checked_at,
    }
    assert details["bravo"]["state"] == "not_connected"
    assert "lily gcal connect bravo" in details["bravo"]["message"]


async def test_revoked_tenant_is_auth_failed_with_a_reconnect_link(
    lily: Harness, google: FakeGoogle, connect: Any
) -> None:
    await connect("acme")
    google.revoke_all()
    response = await lily.client.get("/health", headers=lily.admin_headers)
    report = (await response.get_json())["plugins"]["gcal"]
    entry = report["checks"]["calendars"]["details"]["acme"]
    assert report["state"] == "auth_failed"
    assert entry["state"] == "auth_failed"
    assert "invalid_grant" in entry["message"]
    assert "lily gcal connect acme" in entry["message"]
    assert entry["reconnect"] == "https://lily.test/auth/google/start"
    # /health is public: it must not hand out anything that can connect a Google account.
    assert "link=" not in (await response.get_data(as_text=True))
    restart = await lily.client.get("/auth/google/start", headers=await lily.tenant_headers("acme"))
    assert restart.status_code == 200


async def test_one_failing_tenant_degrades_and_reconnecting_heals(
    lily: Harness, google: FakeGoogle, connect: Any
) -> None:
    await connect("acme")
    await connect("bravo")
    provider = lily.host.capability("calendar")
    await provider.tokens.mark_auth_failed("bravo", "invalid_grant: Token has been expired or revoked.")
    report = await gcal_health(lily)
    assert report["state"] == "degraded"
    assert "reconnect needed: bravo" in report["message"]
    await connect("bravo")
    # Each tenant's probe is cached for LILY_HEALTH_TENANT_INTERVAL (300 s, ± 25 %).
    assert (await gcal_health(lily))["state"] == "degraded"
    lily.clock.advance(400)
    assert (await gcal_health(lily))["state"] == "ok"


async def test_sharing_task_after_connecting(lily: Harness, google: FakeGoogle, connect: Any) -> None:
    await lily.host.tenants.set_plugin_settings(
        "acme", "gcal", {"share_with": ["crew@acme.test"], "share_role": "reader"}
    )
    await connect("acme")
    await lily.run_due()
    assert google.acl() == {
        "user:crew@acme.test": {
            "kind": "calendar#aclRule",
            "etag": google.acl()["user:crew@acme.test"]["etag"],
            "id": "user:crew@acme.test",
            "scope": {"type": "user", "value": "crew@acme.test"},
            "role": "reader",
        }
    }


async def test_without_client_settings_the_plugin_is_not_configured(
    lily_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    async with lily_harness(plugins=["gcal"]) as lily:
        report = await gcal_health(lily)
        assert report["state"] == "not_configured"
        assert not lily.host.has_capability("calendar")
        response = await lily.client.get("/auth/google/start")
        assert response.status_code == 503
        assert "GOOGLE_CLIENT_ID" in (await response.get_json())["message"]


def test_connect_command_prints_a_one_time_link(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, google: FakeGoogle
) -> None:
    from lily_host.testing import lily_cli as main

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    for name, value in {
        **google.env(),
        "REDIS_URL": redis_server.url,
        "LILY_SECRET_KEY": TEST_SECRET_KEY,
        "LILY_ENV": "test",
        "LILY_PUBLIC_URL": "https://lily.example",
    }.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    assert runner.invoke(main, ["tenants", "add", "acme", "--name", "Acme"], catch_exceptions=False).exit_code == 0
    result = runner.invoke(main, ["gcal", "connect", "acme"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    link = result.output.strip().splitlines()[-1]
    assert link.startswith("https://lily.example/auth/google/start?link=")
    token = link.split("link=")[1]
    assert client.get(link_key(token)) == b"acme"
    assert not client.keys(f"*{token}*")  # the key name holds a hash of the token, never the token
    unknown = runner.invoke(main, ["gcal", "connect", "nobody"])
    assert unknown.exit_code == 1 and "no tenant 'nobody'" in unknown.output
    client.close()


async def test_a_deleted_tenant_leaves_no_calendar_markers(lily: Harness, google: FakeGoogle, connect: Any) -> None:
    await connect("acme")
    await connect("bravo")
    await lily.run_due()  # calendar sharing: lily:{t:<tenant>}:gcal:shared
    google.revoke_all()
    await lily.client.get("/health", headers=lily.admin_headers)  # lily:{t:<tenant>}:gcal:auth_failed

    async def markers(tenant: str) -> list[str]:
        keys = (f"lily:{{t:{tenant}}}:gcal:shared", f"lily:{{t:{tenant}}}:gcal:auth_failed")
        return [key.replace(tenant, "<t>") for key in keys if await lily.host.redis.exists(key)]

    assert await markers("acme") == await markers("bravo") != []
    assert await lily.host.delete_tenant("acme")
    await lily.run_due()
    assert await markers("acme") == []
    assert await markers("bravo") != []
