"""Reading what strangers send: JSON bodies and numbers in query strings and headers.

Every parse here either returns a value the rest of Lily can use as is, or raises
:class:`UntrustedInput` (a ``ValueError``) with a message fit for a 400 answer. Three things got
past the standard library and became 500s:

- JSON nested a thousand levels deep makes ``json.loads`` raise ``RecursionError`` (not a
  ``ValueError``); a little less deep, it parses but breaks whatever walks it next. Depth is capped.
- ``"\\ud800"`` is valid JSON but gives a ``str`` that cannot be encoded as UTF-8, so the first
  Redis write, signature or HTTP call that encodes it fails. Lone surrogates are refused.
- ``"²".isdigit()`` is true and ``int("²")`` fails; ``int("٣")`` is 3. Numbers are ASCII digits only.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "UntrustedInput", "ascii_int", "check_text", "loads_json"]

#: Deeper than any provider's payload or any admin request; far from the interpreter's recursion limit.
MAX_JSON_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")
_DIGITS = re.compile(r"[0-9]{1,18}")


class UntrustedInput(ValueError):
    """Input that cannot be used; the message says why, in words fit for the sender."""


def _refuse_constant(name: str) -> Any:
    raise UntrustedInput(f"{name} is not a JSON number")


def loads_json(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of ``data`` (UTF-8); UntrustedInput when malformed, too deep, or not clean text."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UntrustedInput(f"the body is not UTF-8 (byte {error.start})") from error
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise UntrustedInput(f"JSON nested deeper than {max_depth} levels") from error
    except UntrustedInput:
        raise
    except ValueError as error:  # JSONDecodeError, and ints past Python's digit limit
        raise UntrustedInput(f"the body is not valid JSON: {error}") from error
    _check_value(value, max_depth)
    return value


def _check_value(value: Any, max_depth: int) -> None:
    """Depth and text checks, iteratively (a recursive walk is what deep input is made to break)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise UntrustedInput(f"JSON nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def check_text(text: str) -> str:
    """``text`` if it can be encoded as UTF-8; UntrustedInput for a lone surrogate (``\\ud800``)."""
    if _SURROGATE.search(text):
        raise UntrustedInput("text holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not a character")
    return text


def ascii_int(text: str | None, *, name: str) -> int | None:
    """``text`` as a non-negative int if it is 1-18 ASCII digits, None if absent; UntrustedInput otherwise."""
    if text is None:
        return None
    if not _DIGITS.fullmatch(text):
        raise UntrustedInput(f"{name} must be a whole number written with the digits 0-9")
    return int(text)
