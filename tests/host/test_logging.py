"""One logging processor redacts secrets and masks phone numbers on every line."""

from __future__ import annotations

from lily_host.observability.log import _redact, mask_phone


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
