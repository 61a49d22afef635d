"""The one phone-number masker: logs, CLI listings and APIs show numbers the same way."""

from __future__ import annotations

import re

__all__ = ["is_masked", "mask_phone"]

_NON_DIGITS = re.compile(r"\D")


def is_masked(text: str) -> bool:
    """True for a number this module already masked (``+1******4567``): its stars stand for digits."""
    return "*" in text


def mask_phone(number: str | None) -> str:
    """``+15551234567`` → ``+1******4567``: enough to correlate, not enough to dial.

    Idempotent: a masked number stays as it is. Masking it again used to read its five remaining
    digits as a new number and print ``+10123`` beside ``+1******0123`` for the same caller.
    """
    if not number:
        return ""
    if is_masked(number):
        return number
    digits = _NON_DIGITS.sub("", number)
    if len(digits) <= 4:
        return "*" * len(digits)
    prefix = "+" if number.strip().startswith("+") else ""
    return f"{prefix}{digits[:1]}{'*' * (len(digits) - 5)}{digits[-4:]}"
