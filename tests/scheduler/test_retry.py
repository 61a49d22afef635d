"""Backoff delays (tenacity's strategies) and Retry-After parsing."""

from __future__ import annotations

import pytest

from lily_host.plugin_api.contract import RetryPolicy
from lily_host.queue.retry import backoff_bounds, backoff_delay, parse_retry_after


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(backoff_base=10.0, backoff_cap=900.0, jitter=0.0)
    assert [backoff_delay(policy, n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 320, 640, 900]


def test_backoff_jitter_adds_up_to_jitter_seconds() -> None:
    policy = RetryPolicy(backoff_base=2.0, jitter=0.5)
    delays = [backoff_delay(policy, 3) for _ in range(200)]
    assert backoff_bounds(policy, 3) == (8.0, 8.5)
    assert all(8.0 <= d <= 8.5 for d in delays) and len(set(delays)) > 1


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError):
        backoff_delay(RetryPolicy(), 0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=1445412480.0) == expected
