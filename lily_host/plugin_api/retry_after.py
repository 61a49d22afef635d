"""Reading a provider's ``Retry-After`` header (HTTP 429 and 503 answers)."""

from __future__ import annotations

import email.utils
import math
from typing import Any


def parse_retry_after(value: Any, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None.

    A date in the past means "now" (0.0); a missing or malformed header means None so the caller
    falls back to its normal backoff.
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)
