"""call.missed → one text-back to the caller, after the jitter, within the rules."""

from __future__ import annotations

from typing import Any

from lily_host.testing import Harness, HarnessFactory

CALLER = "+15557654321"
BUSINESS = "+15551230000"


def missed(call_sid: str = "CA1", caller: str = CALLER) -> dict[str, Any]:
    return {"caller": caller, "business_number": BUSINESS, "call_sid": call_sid, "status": "no-answer"}


async def test_text_back_goes_after_the_default_jitter_of_10_to_45_seconds(lily: Harness) -> None:
    await lily.host.events.emit("call.missed", missed(), tenant="acme")
    await lily.run_due()

    [task] = await lily.host.queue.list_tasks("due")
    assert 10 <= task.due - lily.clock.now() <= 45
    await lily.advance(45)
    [sent] = await lily.outbox()
    assert sent["to"] == CALLER
    assert "Sorry we missed your call" in sent["body"]


async def test_tenant_jitter_overrides_the_host_setting(lily_harness: HarnessFactory) -> None:
    async with lily_harness(env={"LILY_JITTER_SECONDS": "100-200"}) as lily:
        await lily.create_tenant(
            "acme", name="Acme", jitter_seconds="2-3", quiet_hours_start="00:00", quiet_hours_end="00:00"
        )
        await lily.create_tenant("bravo", name="Bravo", quiet_hours_start="00:00", quiet_hours_end="00:00")
        await lily.host.events.emit("call.missed", missed(), tenant="acme")
        await lily.host.events.emit("call.missed", missed(), tenant="bravo")
        await lily.run_due()

        due = {task.tenant: task.due - lily.clock.now() for task in await lily.host.queue.list_tasks("due")}

    assert 2 <= due["acme"] <= 3
    assert 100 <= due["bravo"] <= 200


async def test_one_text_back_per_caller_per_tenant_per_day(lily: Harness) -> None:
    await lily.host.events.emit("call.missed", missed("CA1"), tenant="acme")
    await lily.host.events.emit("call.missed", missed("CA2"), tenant="acme")
    await lily.host.events.emit("call.missed", missed("CA3"), tenant="bravo")
    await lily.run_due()
    await lily.advance(60)
    assert sorted(m["tenant"] for m in await lily.outbox()) == ["acme", "bravo"]

    await lily.advance(86400)
    await lily.host.events.emit("call.missed", missed("CA4"), tenant="acme")
    await lily.run_due()
    await lily.advance(60)

    assert sorted(m["tenant"] for m in await lily.outbox()) == ["acme", "acme", "bravo"]


async def test_redelivered_event_for_the_same_call_sends_one_text(lily: Harness) -> None:
    await lily.host.events.emit("call.missed", missed("CA1"), tenant="acme")
    await lily.host.events.emit("call.missed", missed("CA1"), tenant="acme")
    await lily.run_due()
    await lily.advance(60)

    assert len(await lily.outbox()) == 1


async def test_no_text_back_to_the_tenants_own_numbers(lily: Harness) -> None:
    await lily.host.events.emit("call.missed", missed("CA1", caller="+15551239999"), tenant="acme")
    await lily.host.events.emit("call.missed", missed("CA2", caller=BUSINESS), tenant="acme")
    await lily.run_due()
    await lily.advance(60)

    assert await lily.outbox() == []


async def test_no_text_back_to_a_suppressed_caller(lily: Harness) -> None:
    await lily.host.messaging.compliance.suppress("acme", CALLER, reason="keyword:STOP", at=0)

    await lily.host.events.emit("call.missed", missed(), tenant="acme")
    await lily.run_due()

    assert (await lily.host.queue.stats()).due == 0


async def test_paused_or_canceled_tenant_gets_no_text_back(lily: Harness) -> None:
    await lily.host.tenants.update("acme", subscription_status="canceled")
    await lily.host.tenants.update("bravo", subscription_status="paused")

    await lily.host.events.emit("call.missed", missed(), tenant="acme")
    await lily.host.events.emit("call.missed", missed(), tenant="bravo")
    await lily.run_due()

    assert (await lily.host.queue.stats()).due == 0


async def test_uncallable_caller_is_ignored(lily: Harness) -> None:
    await lily.host.events.emit("call.missed", missed(caller="Anonymous"), tenant="acme")
    await lily.run_due()

    assert (await lily.host.queue.stats()).due == 0
