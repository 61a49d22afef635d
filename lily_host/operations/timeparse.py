"""``--since`` values: a duration ago (``2h``, ``30m``, ``7d``), Unix seconds, or an ISO 8601 time."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_since(text: str, now: float | None = None) -> float:
    """Unix time of ``text``; ValueError with what is accepted otherwise."""
    now = time.time() if now is None else now
    match = _DURATION.match(text.lower())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: write a duration ago (30m, 2h, 7d), Unix seconds, or ISO 8601"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
