"""Backoff for failing tasks, computed with tenacity's wait strategies.

The queue does not sleep between attempts the way ``tenacity.retry`` does: a failed task goes back
into the due set at ``now + delay``. This module only turns a :class:`~lily_host.plugin_api.contract.RetryPolicy`
and an attempt number into that delay, so the schedule is the one tenacity users know
(``wait_exponential(multiplier=base, max=cap) + wait_random(0, jitter)``).

``parse_retry_after`` (re-exported here) reads ``Retry-After`` headers for ``RetryLater(seconds=...)``.
"""

from __future__ import annotations

import tenacity
from tenacity.wait import wait_base

from lily_host.plugin_api.contract import RetryPolicy
from lily_host.plugin_api.retry_after import parse_retry_after

__all__ = ["backoff_bounds", "backoff_delay", "backoff_wait", "parse_retry_after"]


def backoff_wait(policy: RetryPolicy) -> wait_base:
    """The tenacity wait strategy of ``policy``: capped exponential plus uniform jitter."""
    exponential = tenacity.wait_exponential(multiplier=policy.backoff_base, max=policy.backoff_cap)
    if policy.jitter <= 0:
        return exponential
    return exponential + tenacity.wait_random(0, policy.jitter)


def _state(attempt: int) -> tenacity.RetryCallState:
    # Wait strategies only read ``attempt_number`` (and timing fields we do not use), so a bare
    # call state is enough; no function is ever called through tenacity here.
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return state


def backoff_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after attempt ``attempt`` (1-based) failed, before the next one."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    return float(backoff_wait(policy)(_state(attempt)))


def backoff_bounds(policy: RetryPolicy, attempt: int) -> tuple[float, float]:
    """The smallest and largest delay :func:`backoff_delay` can return for ``attempt``."""
    low = float(tenacity.wait_exponential(multiplier=policy.backoff_base, max=policy.backoff_cap)(_state(attempt)))
    return low, low + max(0.0, policy.jitter)
