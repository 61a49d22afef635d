"""The admin API: who may call it, what it does, and that tenants never see each other."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sample_echo_plugin

from lily_host.testing import Harness, HarnessFactory


@pytest.fixture
async def lily(lily_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env={"ECHO_SECRET": "x"}) as harness:
        yield harness


async def test_admin_routes_need_the_admin_token(lily: Harness) -> None:
    assert (await lily.client.get("/api/tenants")).status_code == 401
    wrong = await lily.client.get("/api/tenants", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert (await lily.client.get("/api/tenants", headers=lily.admin_headers)).status_code == 200


async def test_a_tenant_key_does_not_open_admin_routes(lily: Harness) -> None:
    await lily.create_tenant("acme")
    headers = await lily.tenant_headers("acme")
    assert (await lily.client.get("/api/tenants", headers=headers)).status_code == 403
    assert (await lily.client.get("/api/tenants/acme", headers=headers)).status_code == 403
    assert (await lily.client.delete("/api/tenants/acme", headers=headers)).status_code == 403
    assert await lily.host.tenants.get("acme") is not None


async def test_create_read_update_list_delete(lily: Harness) -> None:
    created = await lily.client.post(
        "/api/tenants",
        json={"id": "acme", "name": "Acme Wash", "timezone": "America/Chicago"},
        headers=lily.admin_headers,
    )
    assert created.status_code == 201
    assert (await created.get_json())["quiet_hours_start"] == "21:00"
    duplicate = await lily.client.post("/api/tenants", json={"id": "acme", "name": "x"}, headers=lily.admin_headers)
    assert duplicate.status_code == 409
    updated = await lily.client.patch(
        "/api/tenants/acme",
        json={"review_delay_seconds": 3600, "plugins": {"echo": {"numbers": ["+15550001111"]}}},
        headers=lily.admin_headers,
    )
    assert updated.status_code == 200
    assert (await updated.get_json())["review_delay_seconds"] == 3600
    listing = await (await lily.client.get("/api/tenants", headers=lily.admin_headers)).get_json()
    assert [tenant["id"] for tenant in listing["tenants"]] == ["acme"]
    assert (await lily.client.delete("/api/tenants/acme", headers=lily.admin_headers)).status_code == 204
    assert (await lily.client.get("/api/tenants/acme", headers=lily.admin_headers)).status_code == 404
    assert await lily.host.tenants.resolve("phone", "+15550001111") is None


async def test_invalid_tenant_input_is_400_with_the_reason(lily: Harness) -> None:
    bad_zone = await lily.client.post(
        "/api/tenants", json={"id": "acme", "name": "A", "timezone": "Mars/Olympus"}, headers=lily.admin_headers
    )
    assert bad_zone.status_code == 400
    assert "timezone" in (await bad_zone.get_json())["message"]
    bad_id = await lily.client.post("/api/tenants", json={"id": "Not A Slug", "name": "A"}, headers=lily.admin_headers)
    assert bad_id.status_code == 400
    not_json = await lily.client.post(
        "/api/tenants", data=b"id=acme", headers={**lily.admin_headers, "Content-Type": "text/plain"}
    )
    assert not_json.status_code == 415
    unknown = await lily.client.post(
        "/api/tenants", json={"id": "acme", "name": "A", "colour": "red"}, headers=lily.admin_headers
    )
    assert unknown.status_code == 400


async def test_a_lookup_value_belongs_to_one_tenant_only(lily: Harness) -> None:
    await lily.create_tenant("acme", plugins={"echo": {"numbers": ["+15550001111"]}})
    await lily.create_tenant("bravo")
    clash = await lily.client.patch(
        "/api/tenants/bravo", json={"plugins": {"echo": {"numbers": ["+15550001111"]}}}, headers=lily.admin_headers
    )
    assert clash.status_code == 409
    resolved = await lily.host.tenants.resolve("phone", "+15550001111")
    assert resolved is not None and resolved.id == "acme"


async def test_api_keys_are_shown_once_stored_hashed_and_revocable(lily: Harness) -> None:
    await lily.create_tenant("acme")
    minted = await lily.client.post("/api/tenants/acme/keys", json={"label": "crm"}, headers=lily.admin_headers)
    assert minted.status_code == 201
    data = await minted.get_json()
    key = data["key"]
    raw_values = [await lily.host.redis.get(name) for name in await lily.host.redis.keys("lily:apikey:*")]
    assert all(key.encode() not in (value or b"") for value in raw_values)
    assert all(key not in name.decode() for name in await lily.host.redis.keys("*"))
    headers = {"Authorization": f"Bearer {key}"}
    assert (await lily.client.get("/api/tenant", headers=headers)).status_code == 200
    listing = await (await lily.client.get("/api/tenants/acme/keys", headers=lily.admin_headers)).get_json()
    assert [item["label"] for item in listing["keys"]] == ["crm"]
    revoked = await lily.client.delete(f"/api/tenants/acme/keys/{data['key_id']}", headers=lily.admin_headers)
    assert revoked.status_code == 204
    assert (await lily.client.get("/api/tenant", headers=headers)).status_code == 403


async def test_tenant_keys_see_only_their_own_tenant(lily: Harness) -> None:
    await lily.create_tenant("acme")
    await lily.create_tenant("bravo")
    acme = await lily.tenant_headers("acme")
    bravo = await lily.tenant_headers("bravo")
    assert (await (await lily.client.get("/api/tenant", headers=acme)).get_json())["id"] == "acme"
    assert (await (await lily.client.get("/api/tenant", headers=bravo)).get_json())["id"] == "bravo"
    assert (await (await lily.client.get("/plugins/echo/whoami", headers=bravo)).get_json()) == {"tenant": "bravo"}
    assert (await lily.client.get("/api/tenants/acme", headers=bravo)).status_code == 403
    assert (await lily.client.patch("/api/tenants/acme", json={"name": "x"}, headers=bravo)).status_code == 403
    assert (await lily.host.tenants.require("acme")).name == "Acme"


async def test_plugins_endpoint_lists_state_hooks_tasks_and_routes(lily: Harness) -> None:
    response = await lily.client.get("/api/plugins", headers=lily.admin_headers)
    plugins = {item["name"]: item for item in (await response.get_json())["plugins"]}
    echo = plugins["echo"]
    assert echo["state"] == "loaded"
    assert "register_webhooks" in echo["hooks"]
    assert echo["tasks"] == ["echo.record"]
    assert "POST /webhooks/echo/json" in echo["routes"]
    assert "GET /plugins/echo/whoami" in echo["routes"]
    assert plugins["lily.core"]["builtin"] is True
