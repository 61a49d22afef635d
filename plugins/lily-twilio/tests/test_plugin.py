"""Health, configuration, simulations and the fake's own extras."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from lily_host import IndexConflict, TenantError
from lily_host.testing import Harness
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import call_form, signed_headers

VOICE = "/webhooks/twilio/voice"


async def twilio_health(lily: Harness) -> dict[str, object]:
    report = (await (await lily.client.get("/health")).get_json())["plugins"]["twilio"]
    assert isinstance(report, dict)
    return report


async def test_health_is_ok_when_the_account_is_active(lily: Harness) -> None:
    report = await twilio_health(lily)

    assert report["state"] == "ok"


async def test_health_fails_on_rejected_credentials(lily_harness, fake_twilio: FakeTwilio) -> None:
    async with lily_harness(plugins=["twilio"], env={**fake_twilio.env(), "TWILIO_AUTH_TOKEN": "wrong"}) as lily:
        report = await twilio_health(lily)

    assert report["state"] == "failed"
    assert "TWILIO_AUTH_TOKEN" in str(report["message"])


async def test_health_fails_when_the_account_is_suspended(lily: Harness, fake_twilio: FakeTwilio) -> None:
    fake_twilio.account_status = "suspended"

    report = await twilio_health(lily)

    assert report["state"] == "failed"
    assert "suspended" in str(report["message"])


async def test_without_credentials_the_plugin_is_not_configured_and_texts_use_the_outbox(
    lily_harness, monkeypatch: pytest.MonkeyPatch, numbers, new_york
) -> None:
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    async with lily_harness(plugins=["twilio"]) as lily:
        lily.clock.set(new_york(12))
        report = await twilio_health(lily)
        webhook = await lily.client.post(
            VOICE, data="CallSid=CA1", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        await lily.create_tenant("acme", name="Acme", plugins={"twilio": {"business_numbers": [numbers.acme]}})
        await lily.host.events.emit(
            "call.missed",
            {"caller": numbers.caller, "business_number": numbers.acme, "call_sid": "CA1", "status": "no-answer"},
            tenant="acme",
        )
        await lily.run_due()
        await lily.advance(60)
        outbox = await lily.outbox("acme")

    assert report["state"] == "not_configured"
    assert webhook.status_code == 503
    assert "TWILIO_ACCOUNT_SID" in (await webhook.get_json())["message"]
    assert [entry["to"] for entry in outbox] == [numbers.caller]


async def test_invalid_tenant_numbers_are_refused(lily: Harness) -> None:
    with pytest.raises(TenantError, match=r"E\.164"):
        await lily.host.tenants.set_plugin_settings("acme", "twilio", {"business_numbers": ["555-1234"]})
    with pytest.raises(IndexConflict):
        await lily.host.tenants.set_plugin_settings("bravo", "twilio", {"business_numbers": ["+15551230000"]})


async def test_simulated_missed_call_is_signed_and_accepted(lily: Harness, fake_twilio: FakeTwilio) -> None:
    _owner, simulation = lily.host.registry.simulations["twilio.missed_call"]
    tenant = await lily.host.tenants.require("acme")
    path, headers, body = simulation.build(lily.host, tenant)

    response = await lily.client.post(path, data=body, headers=dict(headers))
    await lily.run_due()
    await lily.advance(60)

    assert response.status_code == 200
    assert len(fake_twilio.messages) == 1


async def test_shared_key_signatures_are_accepted(lily_harness, fake_twilio: FakeTwilio, numbers) -> None:
    env = {**fake_twilio.env(), "TWILIO_WEBHOOK_SHARED_KEY": "shared-key-secret"}
    async with lily_harness(plugins=["twilio"], env=env) as lily:
        await lily.create_tenant("acme", name="Acme", plugins={"twilio": {"business_numbers": [numbers.acme]}})
        form = call_form(caller=numbers.caller, to=numbers.acme)
        signature = RequestValidator("shared-key-secret").compute_signature(
            "https://lily.test" + VOICE, form, "HMAC_SHA256"
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
        }
        accepted = await lily.client.post(VOICE, data=urlencode(form), headers=headers)
        forged_signature = signed_headers("x", "https://lily.test" + VOICE, form)["X-Twilio-Signature"]
        forged = await lily.client.post(
            VOICE, data=urlencode(form), headers={**headers, "X-Twilio-Signature": forged_signature}
        )

    assert accepted.status_code == 200
    assert forged.status_code == 403


def test_fake_serves_media_files(fake_twilio: FakeTwilio) -> None:
    public = fake_twilio.add_media(b"GIF89a", "image/gif")
    private = fake_twilio.add_media(b"\x89PNG", "image/png", requires_auth=True)

    open_answer = httpx.get(public)
    refused = httpx.get(private)
    allowed = httpx.get(private, auth=(fake_twilio.account_sid, fake_twilio.auth_token))

    assert (open_answer.status_code, open_answer.headers["content-type"], open_answer.content) == (
        200,
        "image/gif",
        b"GIF89a",
    )
    assert refused.status_code == 401
    assert allowed.content == b"\x89PNG"


def test_fake_refuses_wrong_credentials_and_incomplete_messages(fake_twilio: FakeTwilio) -> None:
    url = f"{fake_twilio.base_url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"

    wrong = httpx.post(url, data={"To": "+15557654321", "From": "+15551230000", "Body": "hi"}, auth=("AC1", "x"))
    no_body = httpx.post(
        url, data={"To": "+15557654321", "From": "+15551230000"}, auth=(fake_twilio.account_sid, fake_twilio.auth_token)
    )

    assert (wrong.status_code, wrong.json()["code"]) == (401, 20003)
    assert (no_body.status_code, no_body.json()["code"]) == (400, 21602)
    assert fake_twilio.messages == []
