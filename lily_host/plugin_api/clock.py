"""Time, in one place, so tests can move it.

The queue never trusts a worker's wall clock for due times when it can ask Redis
(`TIME` inside its scripts); only a :class:`ManualClock` overrides that, and only in tests.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Something that says what time it is, in Unix seconds."""

    manual: bool

    def now(self) -> float: ...


class SystemClock:
    """The real time. Queue scripts use Redis' own clock instead of this one."""

    manual = False

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to: for tests and simulations."""

    manual = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def set(self, when: float) -> None:
        self._now = when

    def advance(self, seconds: float) -> None:
        self._now += seconds
