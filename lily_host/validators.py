"""Validation helpers shared by the host's and the plugins' settings models."""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


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
