"""Health against the fake Cal.com API, settings validation, simulations."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lily_calcom.fake import FakeCalcom
from lily_calcom.settings import CalcomTenantSettings
from lily_host import TenantError
from lily_host.testing import Harness, HarnessFactory


async def calcom_health(lily: Harness) -> dict[str, Any]:
    response = await lily.client.get("/health")
    report: dict[str, Any] = (await response.get_json())["plugins"]["calcom"]
    return report


async def test_health_ok_with_a_valid_key(lily: Harness, fake_calcom: FakeCalcom) -> None:
    report = await calcom_health(lily)
    assert report["state"] == "ok"
    assert report["checks"]["api_key"]["message"] == "API key accepted (owner@acme.test)"
    me = fake_calcom.requests[-1]
    assert (me.method, me.path, me.headers["authorization"]) == ("GET", "/v2/me", f"Bearer {fake_calcom.api_key}")


async def test_health_auth_failed_when_the_key_is_revoked(lily: Harness, fake_calcom: FakeCalcom) -> None:
    fake_calcom.revoke(fake_calcom.api_key)
    report = await calcom_health(lily)
    assert report["state"] == "auth_failed"
    assert "CALCOM_API_KEY" in report["message"]


async def test_health_degraded_when_cal_com_fails(lily: Harness, fake_calcom: FakeCalcom) -> None:
    fake_calcom.fail_next(status=503)
    assert (await calcom_health(lily))["state"] == "degraded"


async def test_health_not_configured_without_a_key(lily_harness: HarnessFactory, monkeypatch: Any) -> None:
    monkeypatch.delenv("CALCOM_API_KEY", raising=False)
    async with lily_harness(plugins=["calcom"], env={"CALCOM_WEBHOOK_SECRET": "s"}) as lily:
        report = await calcom_health(lily)
    assert report["state"] == "not_configured"


async def test_tenant_settings_claim_lookup_values(lily: Harness) -> None:
    with pytest.raises(TenantError, match="already belongs"):
        await lily.host.tenants.set_plugin_settings("bravo", "calcom", {"organizer_emails": ["owner@acme.test"]})
    tenant = await lily.host.tenants.require("bravo")
    assert tenant.plugins["calcom"]["webhook_secret"].startswith("enc:v1:")


def test_tenant_settings_validation() -> None:
    parsed = CalcomTenantSettings.model_validate({"organizer_emails": "A@x.com, b@y.com", "event_type_ids": [7, "8"]})
    assert (parsed.organizer_emails, parsed.event_type_ids) == (["a@x.com", "b@y.com"], ["7", "8"])
    for bad in ({"organizer_emails": ["nope"]}, {"event_type_ids": ["abc"]}, {"booking_url": "cal.com/x"}):
        with pytest.raises(ValidationError):
            CalcomTenantSettings.model_validate(bad)


async def test_simulation_is_signed_and_accepted(lily: Harness) -> None:
    _owner, simulation = lily.host.registry.simulations["calcom.booking_created"]
    tenant = await lily.host.tenants.require("bravo")
    path, headers, body = simulation.build(lily.host, tenant)
    response = await lily.client.post(path, data=body, headers=dict(headers))
    assert response.status_code == 200
