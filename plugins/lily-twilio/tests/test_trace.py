"""One missed call traced from Twilio's webhook to the text that went out, across a retry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from lily_host.testing import Harness, configure_logging
from lily_host.testing import lily_cli as main
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import call_form

VOICE = "/webhooks/twilio/voice"


def restore_logging() -> None:
    """Log to the real stderr again: capsys closes the stream the JSON lines went to."""
    with contextlib.redirect_stderr(sys.__stderr__):
        configure_logging("test", "WARNING")


async def test_trace_follows_a_missed_call_through_a_retry_to_the_sms(
    lily: Harness, fake_twilio: FakeTwilio, post_twilio: Any, numbers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("production", "INFO")
    capsys.readouterr()
    form = call_form(caller=numbers.caller, to=numbers.acme)
    assert (await post_twilio(VOICE, form)).status_code == 200
    await lily.run_due()  # automations.missed_call: queues the text with 10-45 s of jitter
    fake_twilio.fail_next(1, status=500)
    await lily.advance(46)  # sms.send, attempt 1: Twilio answers 500
    assert fake_twilio.messages == []
    await lily.advance(3600)  # attempt 2 after the back-off
    [sent] = fake_twilio.messages

    response = await lily.client.get(f"/api/trace/{form['CallSid']}", headers=lily.admin_headers)
    assert response.status_code == 200
    trace = await response.get_json()
    delivery = trace["delivery"]
    assert delivery["outcome"] == "accepted" and delivery["tenant"] == "acme" and delivery["integration"] == "twilio"
    assert delivery["status"] == 200 and delivery["provider_id"].startswith(form["CallSid"])
    by_type = {task["type"]: task for task in trace["tasks"]}
    # the webhook's tasks (the text-back, and the test recorder's) and the follow-up sms.send
    assert set(by_type) == {"automations.missed_call", "test.record_missed", "sms.send"}
    assert by_type["automations.missed_call"]["state"] == "done"
    sms_task = by_type["sms.send"]
    assert sms_task["state"] == "done" and sms_task["attempts"] == 2
    assert [run["outcome"] for run in sms_task["runs"]] == ["retry", "ok"]
    assert "500" in sms_task["runs"][0]["error"]
    assert all(task["delivery"] == trace["id"] for task in trace["tasks"])  # the follow-up inherited it
    [sms] = trace["effects"]
    assert sms["kind"] == "sms" and sms["provider_id"] == sent["sid"] and sms["status"] == "sent"
    assert sms["to"] == "+1******4321"

    # The same chain from the other ids: the SMS SID, the message id, the task id, the delivery id.
    for ident in (sent["sid"], sms["id"], sms_task["id"], trace["id"]):
        again = await (await lily.client.get(f"/api/trace/{ident}", headers=lily.admin_headers)).get_json()
        assert again["id"] == trace["id"], ident
    message = await lily.host.messaging.get("acme", sms["id"])
    assert message is not None and message.fields["delivery"] == trace["id"]

    # Every log line of those tasks carries the delivery id.
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    task_lines = [
        line for line in lines if line.get("task_id") in (sms_task["id"], by_type["automations.missed_call"]["id"])
    ]
    assert task_lines and all(line.get("delivery") == trace["id"] for line in task_lines)
    assert any(line["event"] == "task.retry" for line in task_lines)
    restore_logging()

    # lily trace and lily tasks show print the same.
    printed = await asyncio.to_thread(CliRunner().invoke, main, ["trace", form["CallSid"]])
    assert printed.exit_code == 0, printed.output
    assert trace["id"] in printed.output and sent["sid"] in printed.output and "run 1: retry" in printed.output
    shown = await asyncio.to_thread(CliRunner().invoke, main, ["tasks", "show", sms_task["id"]])
    assert shown.exit_code == 0 and "done" in shown.output and "run 2: ok" in shown.output
    missing = await asyncio.to_thread(CliRunner().invoke, main, ["trace", "CAnothing"])
    assert missing.exit_code == 1 and "nothing known of 'CAnothing'" in missing.output

    # Replaying the delivery from the CLI runs its handler again; the text-back stays one text.
    replayed = await asyncio.to_thread(CliRunner().invoke, main, ["webhooks", "replay", trace["id"]])
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.startswith(f"replayed {trace['id']} as acme.") and "accepted (200)" in replayed.output
    await lily.run_due()
    await lily.advance(3600)
    assert len(fake_twilio.messages) == 1
    after = await (await lily.client.get(f"/api/trace/{trace['id']}", headers=lily.admin_headers)).get_json()
    assert [replay["replay_of"] for replay in after["replays"]] == [trace["id"]]
