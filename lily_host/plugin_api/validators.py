"""Validation helpers shared by the host's and the plugins' settings models."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

#: "+", a non-zero country digit, 7 to 14 more digits: canonical E.164 as providers send it.
_CANONICAL_E164 = re.compile(r"\+[1-9]\d{7,14}")


def split_comma_list(value: object) -> object:
    """``"a, b"`` → ``["a", "b"]`` (an environment variable or a CLI value); numbers become text.

    Anything else is returned as is, for pydantic to validate.
    """
    if isinstance(value, str):
        return [part for part in (piece.strip() for piece in value.split(",")) if part]
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, list | tuple):
        return [str(item) if isinstance(item, int) else item for item in value]
    return value


def unique_emails(values: Iterable[str], *, example: str) -> list[str]:
    """Lower-cased, de-duplicated email addresses; ValueError naming the first one that is not."""
    emails: list[str] = []
    for item in values:
        email = item.strip().lower()
        if "@" not in email or email.startswith("@") or email.endswith("@"):
            raise ValueError(f"{item!r} is not an email address ({example})")
        if email not in emails:
            emails.append(email)
    return emails


def check_timezone(value: str) -> str:
    """``value`` if it names an IANA timezone; ValueError with an example otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown IANA timezone {value!r} (e.g. America/Chicago)") from error
    return value


@functools.lru_cache(maxsize=4096)  # pure, and the same numbers arrive again and again
def normalize_e164(number: str) -> str:
    """``number`` in E.164 (``+15551234567``); ValueError with a hint when it is not a phone number."""
    text = number.strip()
    if _CANONICAL_E164.fullmatch(text):
        return text  # what providers send: already canonical, no need for a full parse
    if not text.startswith("+"):
        raise ValueError(f"{number!r} is not an E.164 phone number: write it like +15551234567")
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"{number!r} is not a phone number: {error}") from error
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError(f"{number!r} has the wrong number of digits for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
