"""`lily simulate lily.reminder_flow` / `lily.quote_flow`: the requests they build, the texts in the outbox."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from lily_host.testing import TEST_PUBLIC_URL, Harness, HarnessFactory

NOON_NEW_YORK = dt.datetime(2030, 6, 3, 12, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()


async def simulate(lily: Harness, name: str) -> int:
    tenant = await lily.host.tenants.require("demo")
    _owner, simulation = lily.host.registry.simulations[name]
    path, headers, body = simulation.build(lily.host, tenant)
    response = await lily.client.post(path, headers=dict(headers), data=body)
    await lily.run_due()
    return response.status_code


async def test_the_reminder_flow_puts_a_confirmation_then_a_reminder_in_the_outbox(
    lily_harness: HarnessFactory,
) -> None:
    async with lily_harness() as lily:
        lily.clock.set(NOON_NEW_YORK)
        await lily.create_tenant("demo", name="Demo Pressure Washing")

        assert await simulate(lily, "lily.reminder_flow") == 202
        [confirmation] = await lily.outbox("demo")
        assert "is confirmed for" in confirmation["body"]
        await lily.advance(61)
        reminder = (await lily.outbox("demo"))[-1]
        assert reminder["body"].startswith("Reminder: your Pressure Washing Estimate with Demo Pressure Washing")
        assert reminder["to"] == "+15555550123"


async def test_the_quote_flow_texts_a_quote_with_its_link(lily_harness: HarnessFactory) -> None:
    async with lily_harness() as lily:
        lily.clock.set(NOON_NEW_YORK)
        await lily.create_tenant("demo", name="Demo Pressure Washing")

        assert await simulate(lily, "lily.quote_flow") == 202
        [quote] = await lily.outbox("demo")
        assert "driveway wash (sample): $240" in quote["body"]
        match = re.search(re.escape(TEST_PUBLIC_URL) + r"(/q/[A-Za-z0-9_-]+)", quote["body"])
        assert match is not None
        page = await lily.client.get(match.group(1))
        assert page.status_code == 200 and "$240" in await page.get_data(as_text=True)


async def test_flow_simulations_need_the_admin_token_and_are_absent_in_production(
    lily_harness: HarnessFactory,
) -> None:
    async with lily_harness() as lily:
        await lily.create_tenant("demo")
        assert (await lily.client.post("/dev/simulate/quote/demo")).status_code == 401
    async with lily_harness(env={"LILY_ENV": "production"}) as lily:
        await lily.create_tenant("demo")
        response = await lily.client.post("/dev/simulate/quote/demo", headers=lily.admin_headers)
        assert response.status_code == 404
