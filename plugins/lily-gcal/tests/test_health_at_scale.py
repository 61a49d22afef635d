"""/health at 10,000 connected tenants against the fake Google: a bounded slice of probes per call,
each tenant's entry cached, the answer inside the health budget, nothing about tenants for anonymous."""

from __future__ import annotations

from typing import Any

from lily_gcal.fake import FakeGoogle
from lily_gcal.tokens import TOKENS_SECRET
from lily_host import Tenant
from lily_host.testing import Harness

TENANTS = 10_000


async def add_connected_tenants(lily: Harness, count: int) -> None:
    """``count`` tenants stored as Lily stores them, each with acme's (encrypted) Google tokens."""
    redis = lily.host.redis
    template = Tenant.model_validate_json(await redis.get("lily:{t:acme}:tenant"))
    tokens = await redis.hget("lily:{t:acme}:tenant_secret", TOKENS_SECRET)
    pipe = redis.pipeline(transaction=False)
    for index in range(count - 1):
        tenant_id = f"t{index:05d}"
        pipe.set(f"lily:{{t:{tenant_id}}}:tenant", template.model_copy(update={"id": tenant_id}).model_dump_json())
        pipe.sadd("lily:tenants", tenant_id)
        pipe.hset(f"lily:{{t:{tenant_id}}}:tenant_secret", TOKENS_SECRET, tokens)
    await pipe.execute()


async def test_health_at_10000_tenants_stays_within_budget(lily: Harness, google: FakeGoogle, connect: Any) -> None:
    await connect("acme")
    await lily.run_due()  # the calendar-sharing task: a due task without a worker would fail health
    await lily.host.redis.delete("lily:{t:bravo}:tenant")
    await lily.host.redis.srem("lily:tenants", "bravo")
    await add_connected_tenants(lily, TENANTS)
    google.clear_requests()
    batch = lily.host.settings.health_tenant_batch
    budget = lily.host.settings.health_timeout

    response = await lily.client.get("/health", headers=lily.admin_headers)
    assert response.status_code == 200
    report = await response.get_json()
    assert report["elapsed_seconds"] <= budget
    check = report["plugins"]["gcal"]["checks"]["calendars"]
    summary = check["details"]["_summary"]
    assert summary["tenants"] == TENANTS
    assert summary["with_entry"] == batch and summary["states"] == {"ok": batch}
    assert check["state"] == "ok"
    probes = [r for r in google.calendar_requests() if "/events" in r.path]
    assert len(probes) == batch  # one calendar read per tenant checked, and only for the slice

    # The next call checks the next slice; the first slice is served from the cache.
    google.clear_requests()
    report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
    assert report["plugins"]["gcal"]["checks"]["calendars"]["details"]["_summary"]["with_entry"] == 2 * batch
    assert len([r for r in google.calendar_requests() if "/events" in r.path]) == batch

    # A failing tenant among 10,000 is named in the detailed report, and never to anonymous callers.
    await lily.host.redis.hset(
        "lily:health:t:calendars:results", "t04242", '{"state": "auth_failed", "message": "reconnect", "checked_at": 0}'
    )
    detailed = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
    calendars = detailed["plugins"]["gcal"]["checks"]["calendars"]
    assert calendars["state"] == "degraded" and "t04242" in calendars["details"]
    google.clear_requests()
    anonymous = await lily.client.get("/health")
    text = await anonymous.get_data(as_text=True)
    assert await anonymous.get_json() == {"status": "degraded"} and "t04242" not in text
    assert google.requests == []  # anonymous /health called no provider
