"""host.messaging: every text passes suppression → quiet hours → frequency cap → channel."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from lily_host.dev.embedded_redis import RedisServer
from lily_host.observability.log import mask_phone
from lily_host.plugin_api.errors import PermanentError
from lily_host.testing import HARNESS_ENV, TEST_ADMIN_TOKEN, Harness, HarnessFactory, redis_env

CUSTOMER = "+15557654321"


async def record(lily: Harness, tenant: str = "acme") -> dict[str, str]:
    [message] = await lily.host.messaging.recent(tenant)
    return dict(message.fields)


async def test_queued_text_is_rendered_recorded_and_sent_through_the_channel(lily: Harness) -> None:
    task_id = await lily.host.messaging.queue_sms("acme", CUSTOMER, template="missed_call", delay=30)

    assert task_id is not None
    await lily.advance(29)
    assert await lily.outbox() == []
    await lily.advance(1)

    [sent] = await lily.outbox()
    assert (sent["tenant"], sent["to"]) == ("acme", CUSTOMER)
    assert sent["body"].startswith("Acme Washing: Sorry we missed your call! 📞")
    fields = await record(lily)
    assert fields["status"] == "delivered"
    assert fields["provider_id"] == sent["provider_id"]
    assert (fields["encoding"], fields["segments"]) == ("UCS-2", "2")


async def test_suppressed_recipient_gets_nothing_queued_or_sent(lily: Harness) -> None:
    messaging = lily.host.messaging
    await messaging.compliance.suppress("acme", CUSTOMER, reason="keyword:STOP", at=0)

    assert await messaging.queue_sms("acme", CUSTOMER, template="missed_call") is None
    assert await messaging.queue_sms("bravo", CUSTOMER, template="missed_call") is not None
    await lily.run_due()

    assert [m["tenant"] for m in await lily.outbox()] == ["bravo"]


async def test_suppression_is_checked_again_at_send_time(lily: Harness) -> None:
    messaging = lily.host.messaging
    await messaging.queue_sms("acme", CUSTOMER, template="missed_call", delay=60)
    await messaging.compliance.suppress("acme", CUSTOMER, reason="keyword:STOP", at=0)

    await lily.advance(60)

    assert await lily.outbox() == []
    assert (await record(lily))["status"] == "suppressed"


async def test_text_due_at_night_waits_for_nine_without_spending_an_attempt(lily: Harness, new_york) -> None:
    lily.clock.set(new_york(21, 30))
    await lily.host.messaging.queue_sms("acme", CUSTOMER, template="missed_call")

    await lily.run_due()
    [task] = await lily.host.queue.list_tasks("due")
    assert task.due == new_york(9, 0, day=3)
    assert task.attempt == 1
    assert (await record(lily))["deferred_reason"] == "quiet_hours"
    # The outbox lists it as held, with when it goes and why (`lily dev` at night shows the same).
    shown = await lily.client.get("/dev/outbox", headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"})
    outbox = await shown.get_json()
    assert outbox["messages"] == []
    [held] = outbox["held"]
    assert (held["status"], held["reason"], held["until"]) == ("held", "quiet hours", new_york(9, 0, day=3))
    assert held["to"] == CUSTOMER and held["body"].startswith("Acme Washing: Sorry we missed your call!")

    lily.clock.set(new_york(9, 0, day=3))
    await lily.run_due()
    assert len(await lily.outbox()) == 1
    shown = await lily.client.get("/dev/outbox", headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"})
    assert (await shown.get_json())["held"] == []


async def test_quiet_hours_are_each_tenants_own(lily: Harness, new_york) -> None:
    # 22:30 in New York is 19:30 in Los Angeles.
    lily.clock.set(new_york(22, 30))
    await lily.host.messaging.queue_sms("acme", CUSTOMER, template="missed_call")
    await lily.host.messaging.queue_sms("bravo", CUSTOMER, template="missed_call")

    await lily.run_due()

    assert [m["tenant"] for m in await lily.outbox()] == ["bravo"]


async def test_confirmations_skip_suppression_and_quiet_hours(lily: Harness, new_york) -> None:
    lily.clock.set(new_york(23, 0))
    await lily.host.messaging.compliance.suppress("acme", CUSTOMER, reason="keyword:STOP", at=0)

    await lily.host.messaging.queue_sms("acme", CUSTOMER, template="opt_out_confirmation", kind="confirmation")
    await lily.run_due()

    [sent] = await lily.outbox()
    assert "unsubscribed" in sent["body"]


async def test_frequency_cap_defers_the_extra_text_to_the_next_free_slot(
    lily_harness: HarnessFactory, new_york
) -> None:
    async with lily_harness(env={"LILY_SMS_DAILY_CAP": "2"}) as lily:
        lily.clock.set(new_york(12))
        await lily.create_tenant("acme", name="Acme")
        for _ in range(3):
            await lily.host.messaging.queue_sms("acme", CUSTOMER, template="missed_call")
            await lily.run_due()
            await lily.advance(60)

        assert len(await lily.outbox()) == 2
        [task] = await lily.host.queue.list_tasks("due")
        # The first text went at 12:00; its slot frees 24 h later.
        assert task.due == new_york(12) + 86400
        assert task.attempt == 1
        lily.clock.set(new_york(12) + 86400)
        await lily.run_due()
        assert len(await lily.outbox()) == 3


async def test_dedupe_key_queues_one_message(lily: Harness) -> None:
    messaging = lily.host.messaging

    first = await messaging.queue_sms("acme", CUSTOMER, template="missed_call", delay=30, dedupe_key="call-1")
    second = await messaging.queue_sms("acme", CUSTOMER, template="missed_call", delay=30, dedupe_key="call-1")
    other_tenant = await messaging.queue_sms("bravo", CUSTOMER, template="missed_call", dedupe_key="call-1")
    await lily.advance(30)
    after_send = await messaging.queue_sms("acme", CUSTOMER, template="missed_call", dedupe_key="call-1")

    assert first is not None and second is None and other_tenant is not None and after_send is None
    assert len(await lily.outbox("acme")) == 1
    assert len(await messaging.recent("acme")) == 1


async def test_bad_numbers_and_templates_are_permanent_errors(lily: Harness) -> None:
    with pytest.raises(PermanentError, match=r"E\.164"):
        await lily.host.messaging.queue_sms("acme", "555-1234", template="missed_call")
    with pytest.raises(PermanentError, match="no template"):
        await lily.host.messaging.queue_sms("acme", CUSTOMER, template="no_such_template")
    assert await lily.host.messaging.recent("acme") == []


async def test_status_callbacks_move_a_message_forward_only(lily: Harness) -> None:
    messaging = lily.host.messaging
    await messaging.queue_sms("acme", CUSTOMER, template="missed_call")
    await lily.run_due()
    provider_id = (await record(lily))["provider_id"]

    assert await messaging.record_status("acme", provider_id, "failed", "30003")
    assert await messaging.record_status("acme", provider_id, "sent")
    assert not await messaging.record_status("bravo", provider_id, "delivered")

    fields = await record(lily)
    assert (fields["status"], fields["error_code"]) == ("failed", "30003")


async def test_opted_out_status_suppresses_the_recipient(lily: Harness) -> None:
    messaging = lily.host.messaging
    await messaging.queue_sms("acme", CUSTOMER, template="missed_call")
    await lily.run_due()
    provider_id = (await record(lily))["provider_id"]

    await messaging.record_status("acme", provider_id, "undelivered", "21610", recipient_opted_out=True)

    assert await messaging.compliance.is_suppressed("acme", CUSTOMER)
    assert not await messaging.compliance.is_suppressed("bravo", CUSTOMER)


async def test_recipient_timezone_when_known_decides_quiet_hours(lily: Harness, new_york) -> None:
    # 21:30 in New York is 18:30 in Los Angeles, where this customer lives.
    lily.clock.set(new_york(21, 30))
    await lily.host.messaging.queue_sms(
        "acme", CUSTOMER, template="missed_call", recipient_timezone="America/Los_Angeles"
    )
    with pytest.raises(PermanentError, match="timezone"):
        await lily.host.messaging.queue_sms("acme", CUSTOMER, template="missed_call", recipient_timezone="Mars/Base")

    await lily.run_due()

    assert len(await lily.outbox()) == 1


def test_cli_manages_the_suppression_list(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**HARNESS_ENV, **redis_env(redis_server), "LILY_PLUGINS": ""}.items():
        monkeypatch.setenv(name, value)
    from lily_host.cli.main import main

    runner = CliRunner()
    runner.invoke(main, ["tenants", "delete", "smscli", "--yes"])
    runner.invoke(main, ["tenants", "add", "smscli", "--name", "SMS CLI"])

    added = runner.invoke(main, ["sms", "suppress", "smscli", CUSTOMER])
    listed = runner.invoke(main, ["sms", "suppressed", "smscli"])
    listed_json = runner.invoke(main, ["sms", "suppressed", "smscli", "--json"])
    removed = runner.invoke(main, ["sms", "unsuppress", "smscli", CUSTOMER])
    again = runner.invoke(main, ["sms", "unsuppress", "smscli", CUSTOMER])
    bad = runner.invoke(main, ["sms", "suppress", "smscli", "12345"])
    messages = runner.invoke(main, ["sms", "messages", "smscli"])
    unknown = runner.invoke(main, ["sms", "suppressed", "nobody"])

    assert added.exit_code == 0 and "suppressed for smscli" in added.output
    header, row = listed.output.splitlines()
    assert header.split() == ["number", "reason", "since"]
    assert row.split()[:2] == [mask_phone(CUSTOMER), "manual"] and CUSTOMER not in listed.output
    assert [(e["number"], e["reason"]) for e in json.loads(listed_json.output)] == [(CUSTOMER, "manual")]
    assert "removed from" in removed.output and "was not on" in again.output
    assert bad.exit_code != 0 and "E.164" in bad.output
    assert messages.exit_code == 0 and messages.output.strip() == "no texts for smscli yet"
    assert unknown.exit_code != 0 and "no tenant" in unknown.output


async def test_cli_listings_show_local_times_and_masked_numbers(
    lily: Harness, monkeypatch: pytest.MonkeyPatch, new_york: Callable[..., float]
) -> None:
    """`sms messages` and `outbox` print tables (local time, masked numbers); --json gives typed records."""
    import asyncio
    import time

    from lily_host.cli.main import main

    await lily.host.messaging.queue_sms("acme", CUSTOMER, template="missed_call")
    await lily.run_due()
    monkeypatch.setenv("TZ", "America/Chicago")
    time.tzset()
    try:
        runner = CliRunner()
        # The CLI runs its own event loop: in a thread, beside the test's.
        table = await asyncio.to_thread(runner.invoke, main, ["sms", "messages", "acme"])
        as_json = await asyncio.to_thread(runner.invoke, main, ["sms", "messages", "acme", "--json"])
        outbox = await asyncio.to_thread(runner.invoke, main, ["outbox", "--tenant", "acme"])
        outbox_json = await asyncio.to_thread(runner.invoke, main, ["outbox", "--tenant", "acme", "--json"])
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()

    header, row = table.output.splitlines()
    assert header.split()[:5] == ["time", "to", "status", "kind", "template"]
    # Noon in New York is 11:00 in Chicago, where this "machine" is.
    assert row.startswith("2025-06-02 11:00 CDT  " + mask_phone(CUSTOMER) + "  delivered  transactional  missed_call")
    assert CUSTOMER not in table.output
    [record_json] = json.loads(as_json.output)
    assert record_json["created_at"] == new_york(12) and record_json["segments"] == 2
    assert record_json["to"] == mask_phone(CUSTOMER)

    outbox_header, outbox_row = outbox.output.splitlines()
    assert outbox_header.split() == ["time", "tenant", "to", "from", "body"]
    assert mask_phone(CUSTOMER) in outbox_row and CUSTOMER not in outbox.output
    assert mask_phone("+15551239999") in outbox_row and "Sorry we missed your call" in outbox_row
    [sent] = json.loads(outbox_json.output)
    assert sent["to"] == CUSTOMER and sent["tenant"] == "acme"


async def test_cli_outbox_lists_held_texts_with_when_they_go(
    lily: Harness, monkeypatch: pytest.MonkeyPatch, new_york: Callable[..., float]
) -> None:
    """At night `lily outbox` shows the text under held: when it goes (local time) and why."""
    import asyncio
    import time

    from lily_host.cli.main import main

    lily.clock.set(new_york(23, 15))
    await lily.host.messaging.queue_sms("acme", CUSTOMER, template="missed_call")
    await lily.run_due()
    monkeypatch.setenv("TZ", "America/Chicago")
    time.tzset()
    try:
        runner = CliRunner()
        table = await asyncio.to_thread(runner.invoke, main, ["outbox"])
        as_json = await asyncio.to_thread(runner.invoke, main, ["outbox", "--tenant", "acme", "--json"])
        other = await asyncio.to_thread(runner.invoke, main, ["outbox", "--tenant", "bravo", "--json"])
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()

    lines = table.output.splitlines()
    assert lines[0] == "nothing sent yet" and lines[2].startswith("held (Lily sends them when the rule allows")
    assert lines[3].split()[:6] == ["goes", "at", "why", "tenant", "to", "body"]
    # 09:00 in New York is 08:00 in Chicago.
    assert lines[4].startswith("2025-06-03 08:00 CDT  quiet hours  acme    " + mask_phone(CUSTOMER))
    assert "Sorry we missed your call" in lines[4] and CUSTOMER not in table.output
    [held] = json.loads(as_json.output)
    assert (held["status"], held["until"], held["to"]) == ("held", new_york(9, 0, day=3), CUSTOMER)
    assert json.loads(other.output) == []
