"""How every ``lily`` listing prints: aligned tables, local times, masked numbers, or ``--json``.

One module so that ``tasks``, ``tenants``, ``sms``, ``jobs``, ``outbox``, ``plugins`` and the
plugins' own listings look alike, with the log's masker. It imports click only, so ``lily --help``
stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import click

from lily_host.plugin_api.masking import mask_phone

__all__ = [
    "Column",
    "echo_fields",
    "echo_json",
    "echo_table",
    "json_option",
    "local_time",
    "masked",
    "print_listing",
    "timestamp",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The help of every listing's ``--json`` flag, so they read the same.
JSON_HELP = "Print machine-readable JSON (raw values: Unix timestamps, full records) instead of a table."


def json_option(function: F) -> F:
    """``--json`` (parameter ``as_json``) for a listing command."""
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)(function)


def timestamp(value: Any) -> float | None:
    """A Unix timestamp from a number, the text Redis stores (``"1764460000.5"``) or an ISO 8601 time
    with its offset (what the APIs answer); None if absent or not a time."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def local_time(value: Any, *, seconds: bool = False) -> str:
    """A Unix timestamp as this machine's local time with its zone (``2026-11-29 18:46 EST``); ``-`` if none.

    Operators read times where they sit; ``--json`` keeps the raw timestamps for scripts.
    """
    ts = timestamp(value)
    if ts is None:
        return "-"
    moment = datetime.fromtimestamp(ts).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def masked(number: Any) -> str:
    """A phone number as every listing shows it (``+1******4567``); ``-`` if none. Idempotent."""
    if not number:
        return "-"
    if not any(character.isdigit() for character in str(number)):
        return str(number)  # not a number at all (the outbox's "outbox" sender)
    return mask_phone(str(number))


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (a command's ``--json`` output)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@dataclass(frozen=True)
class Column:
    """One column of a table: its title, how to get the cell from a row, and whether to right-align it."""

    title: str
    cell: Callable[[Any], Any]
    right: bool = False
    #: The longest a cell may be before it is cut with "…" (free text such as message bodies).
    width: int | None = None


def _text(column: Column, row: Any) -> str:
    value = column.cell(row)
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())  # one line per row, whatever the stored text holds
    if column.width is not None and len(text) > column.width:
        text = text[: column.width - 1] + "…"
    return text


def echo_table(rows: Iterable[Any], columns: Sequence[Column]) -> None:
    """Print rows under a header, each column as wide as its widest cell."""
    cells = [[_text(column, row) for column in columns] for row in rows]
    widths = [max([len(column.title)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if column.right else value.ljust(width)
            for value, width, column in zip(values, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    click.echo(line([column.title for column in columns]))
    for values in cells:
        click.echo(line(values))


def print_listing(
    data: Sequence[Any],
    columns: Sequence[Column],
    *,
    as_json: bool,
    empty: str,
    json_data: Any = None,
) -> None:
    """The shape of every listing: JSON (``json_data`` or the rows) with ``--json``, else a table or ``empty``."""
    if as_json:
        echo_json(list(data) if json_data is None else json_data)
    elif not data:
        click.echo(empty)
    else:
        echo_table(data, columns)


def echo_fields(pairs: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> None:
    """Print ``name: value`` lines, names aligned (one record, e.g. ``jobs show``)."""
    items = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
    width = max((len(name) for name, _ in items), default=0)
    for name, value in items:
        click.echo(f"{name + ':':<{width + 1}} {'-' if value is None or value == '' else value}")
