"""One logging processor redacts secrets and masks phone numbers on every line."""

from __future__ import annotations

import io
import sys

import pytest

from lily_host.observability.log import _redact, configure_logging, get_logger, mask_phone


def test_mask_phone_keeps_only_enough_to_correlate() -> None:
    assert mask_phone("+15551234567") == "+1******4567"
    assert mask_phone(None) == ""


def test_secrets_are_redacted_and_numbers_masked_but_timestamps_survive() -> None:
    line = _redact(
        None,
        "info",
        {
            "event": "sent",
            "timestamp": "2026-11-25T07:11:30.610Z",
            "auth_token": "abc",
            "Authorization": "Bearer x",
            "to": "15551234567",
            "note": "caller +1 (555) 123-4567 asked",
            "task_id": "1732518690123456",
        },
    )
    assert line["auth_token"] == "[redacted]" and line["Authorization"] == "[redacted]"
    assert line["to"] == "1******4567"
    assert "123-4567" not in line["note"] and "4567" in line["note"]
    assert line["timestamp"] == "2026-11-25T07:11:30.610Z"
    assert line["task_id"] == "1732518690123456"


def test_a_number_masked_at_the_call_site_is_not_masked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same caller reads the same on consecutive lines, whether or not the call site masked it."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)  # the log prints to the stderr of configure time
    try:
        configure_logging("development", "INFO")
        log = get_logger("lily.test")
        log.info("opt-out keyword", to=mask_phone("+15550100123"))  # masked by the caller, as sms_keywords does
        log.info("sms queued", to="+15550100123")  # masked by the processor
        log.info("note", detail=f"reply to {mask_phone('+15550100123')}")
    finally:
        monkeypatch.undo()
        configure_logging("test", "WARNING")  # back to the real stderr for the tests that follow
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert all("+1******0123" in line for line in lines), lines
    assert not any("+10123" in line for line in lines)
    assert mask_phone(mask_phone("+15550100123")) == mask_phone("+15550100123")
