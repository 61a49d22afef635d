"""Jobs API → job.completed → one review request after the tenant's delay, none after a cancel."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from lily_host.dev.embedded_redis import RedisServer
from lily_host.observability.log import mask_phone
from lily_host.testing import HARNESS_ENV, Harness, redis_env

CUSTOMER = "+15557654321"
DAY = 86400


def job(**overrides: Any) -> dict[str, Any]:
    return {"customer_name": "Dana Smith", "customer_phone": CUSTOMER, "service": "window cleaning", **overrides}


async def complete(lily: Harness, job_id: str = "J-1", tenant: str = "acme", **overrides: Any) -> Any:
    headers = await lily.tenant_headers(tenant)
    return await lily.client.post(f"/api/jobs/{job_id}/complete", json=job(**overrides), headers=headers)


async def test_review_request_goes_out_after_the_review_delay(lily: Harness) -> None:
    response = await complete(lily)
    await lily.run_due()

    assert response.status_code == 202
    assert (await response.get_json())["status"] == "completed"
    await lily.advance(DAY - 1)
    assert await lily.outbox() == []
    await lily.advance(1)
    [sent] = await lily.outbox()
    assert sent["to"] == CUSTOMER
    assert sent["body"].startswith("Hi Dana! 🌟 How did we do with your window cleaning?")
    assert "https://g.page/r/acme" in sent["body"]


async def test_the_delay_is_the_tenants(lily: Harness) -> None:
    await lily.host.tenants.update("acme", review_delay_seconds=3600)

    await complete(lily)
    await lily.run_due()
    await lily.advance(3600)

    assert len(await lily.outbox()) == 1


async def test_completing_a_job_twice_sends_one_request(lily: Harness) -> None:
    first = await complete(lily)
    second = await complete(lily)
    await lily.run_due()
    third = await complete(lily)
    await lily.advance(DAY)
    await lily.advance(DAY)
    fourth = await complete(lily)
    await lily.advance(DAY)

    assert [first.status_code, second.status_code, third.status_code, fourth.status_code] == [202, 200, 200, 200]
    assert (await second.get_json())["duplicate"] is True
    assert len(await lily.outbox()) == 1


async def test_cancelled_job_sends_no_request(lily: Harness) -> None:
    await complete(lily)
    await lily.run_due()
    headers = await lily.tenant_headers()

    response = await lily.client.post("/api/jobs/J-1/cancel", headers=headers)
    await lily.advance(2 * DAY)

    assert response.status_code == 200
    body = await response.get_json()
    assert (body["status"], body["review_request"]["state"]) == ("cancelled", "cancelled")
    assert await lily.outbox() == []
    assert (await lily.host.queue.stats()).due == 0


async def test_cancel_before_the_subscriber_ran_still_sends_nothing(lily: Harness) -> None:
    await complete(lily)
    await lily.client.post("/api/jobs/J-1/cancel", headers=await lily.tenant_headers())
    await lily.run_due()
    await lily.advance(2 * DAY)

    assert await lily.outbox() == []


async def test_a_job_completed_again_after_a_cancel_gets_one_request(lily: Harness) -> None:
    await complete(lily)
    await lily.run_due()
    await lily.client.post("/api/jobs/J-1/cancel", headers=await lily.tenant_headers())
    await lily.advance(3600)
    again = await complete(lily)
    await lily.run_due()
    await lily.advance(DAY)

    assert again.status_code == 202
    assert len(await lily.outbox()) == 1


async def test_every_customer_gets_the_same_link(lily: Harness) -> None:
    await complete(lily, "J-1", customer_name="Ann", customer_phone="+15557650001")
    await complete(lily, "J-2", customer_name="Bob", customer_phone="+15557650002")
    await lily.run_due()
    await lily.advance(DAY)

    assert {m["body"].split("review helps a small business a lot: ")[1].split(" ")[0] for m in await lily.outbox()} == {
        "https://g.page/r/acme"
    }


async def test_review_due_at_night_goes_out_at_nine(lily: Harness, new_york) -> None:
    lily.clock.set(new_york(22))
    await complete(lily)
    await lily.run_due()
    await lily.advance(DAY)
    assert await lily.outbox() == []

    lily.clock.set(new_york(9, 0, day=4))
    await lily.run_due()

    assert len(await lily.outbox()) == 1


async def test_tenant_without_review_link_gets_no_request(lily: Harness) -> None:
    await lily.host.tenants.update("acme", review_link=None)
    await complete(lily)
    await lily.run_due()
    await lily.advance(DAY)

    shown = await lily.client.get("/api/jobs/J-1", headers=await lily.tenant_headers())
    assert await lily.outbox() == []
    assert (await shown.get_json())["review_request"]["state"] == "skipped_no_review_link"


async def test_paused_tenant_review_waits_until_it_is_active_again(lily: Harness) -> None:
    await complete(lily)
    await lily.run_due()
    await lily.host.tenants.update("acme", subscription_status="paused")
    await lily.advance(DAY)
    assert await lily.outbox() == []

    await lily.host.tenants.update("acme", subscription_status="active")
    await lily.advance(3600)

    assert len(await lily.outbox()) == 1


async def test_job_completed_events_from_other_plugins_also_get_a_request(lily: Harness) -> None:
    await lily.host.events.emit("job.completed", {"job_id": "crm-77", **job()}, tenant="acme")
    await lily.host.events.emit("job.completed", {"job_id": "crm-77", **job()}, tenant="acme")
    await lily.run_due()
    await lily.advance(DAY)

    assert len(await lily.outbox()) == 1


async def test_job_cancelled_events_from_other_plugins_cancel_the_request(lily: Harness) -> None:
    await complete(lily)
    await lily.run_due()
    await lily.host.events.emit("job.cancelled", {"job_id": "J-1"}, tenant="acme")
    await lily.run_due()
    await lily.advance(DAY)

    assert await lily.outbox() == []


async def test_jobs_are_per_tenant(lily: Harness) -> None:
    await complete(lily, tenant="acme")
    await complete(lily, tenant="bravo")
    cancel_other = await lily.client.post("/api/jobs/J-1/cancel", headers=await lily.tenant_headers("bravo"))
    await lily.run_due()
    await lily.advance(DAY)

    assert cancel_other.status_code == 200
    assert [m["tenant"] for m in await lily.outbox()] == ["acme"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (job(customer_phone="555-1234"), "E.164"),
        (job(customer_phone="+1555"), "customer_phone"),
        ({"customer_phone": CUSTOMER}, "customer_name"),
        (job(customer_name="   "), "customer_name"),
        ({"customer_name": "Dana"}, "customer_phone"),
    ],
)
async def test_invalid_completions_are_400_and_change_nothing(
    lily: Harness, body: dict[str, Any], message: str
) -> None:
    response = await lily.client.post("/api/jobs/J-1/complete", json=body, headers=await lily.tenant_headers())

    assert response.status_code == 400
    assert message in (await response.get_json())["message"]
    assert (await lily.host.queue.stats()).due == 0


async def test_requests_without_a_key_json_or_valid_id_are_refused(lily: Harness) -> None:
    headers = await lily.tenant_headers()

    no_key = await lily.client.post("/api/jobs/J-1/complete", json=job())
    bad_key = await lily.client.post("/api/jobs/J-1/complete", json=job(), headers={"Authorization": "Bearer nope"})
    not_json = await lily.client.post("/api/jobs/J-1/complete", data="name=Dana", headers=headers)
    not_object = await lily.client.post("/api/jobs/J-1/complete", json=["Dana"], headers=headers)
    bad_id = await lily.client.post("/api/jobs/%20J/complete", json=job(), headers=headers)
    unknown = await lily.client.post("/api/jobs/J-404/cancel", headers=headers)

    assert [r.status_code for r in (no_key, bad_key, not_json, not_object, bad_id, unknown)] == [
        401,
        403,
        415,
        400,
        400,
        404,
    ]
    assert (await lily.host.queue.stats()).due == 0


def test_cli_completes_shows_and_cancels_jobs(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**HARNESS_ENV, **redis_env(redis_server), "LILY_PLUGINS": ""}.items():
        monkeypatch.setenv(name, value)
    from lily_host.cli.main import main

    runner = CliRunner()
    runner.invoke(main, ["tenants", "delete", "clitenant", "--yes"])
    created = runner.invoke(main, ["tenants", "add", "clitenant", "--name", "CLI Co", "--review-link", "https://x"])
    done = runner.invoke(
        main, ["jobs", "complete", "clitenant", "J-9", "--name", "Dana", "--phone", CUSTOMER, "--service", "gutters"]
    )
    again = runner.invoke(
        main, ["jobs", "complete", "clitenant", "J-9", "--name", "Dana", "--phone", CUSTOMER, "--json"]
    )
    bad_phone = runner.invoke(main, ["jobs", "complete", "clitenant", "J-10", "--name", "Dana", "--phone", "12"])
    shown = runner.invoke(main, ["jobs", "show", "clitenant", "J-9", "--json"])
    cancelled = runner.invoke(main, ["jobs", "cancel", "clitenant", "J-9", "--json"])
    missing = runner.invoke(main, ["jobs", "cancel", "clitenant", "J-404"])

    assert created.exit_code == 0, created.output
    assert done.exit_code == 0, done.output
    assert done.output.startswith("job J-9 of clitenant completed\n"), done.output
    assert f"phone:          {mask_phone(CUSTOMER)}" in done.output and CUSTOMER not in done.output
    assert '"duplicate": true' in again.output
    assert bad_phone.exit_code != 0 and "E.164" in bad_phone.output
    assert '"service": "gutters"' in shown.output
    assert '"status": "cancelled"' in cancelled.output
    assert missing.exit_code != 0 and "no job" in missing.output
