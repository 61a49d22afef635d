"""Typing glue for redis.asyncio, whose stubs say a command returns ``Awaitable[T] | T``."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar, cast

T = TypeVar("T")


def awaited(result: Awaitable[T] | T) -> Awaitable[T]:
    """On a ``redis.asyncio`` client every command is awaitable; say so to the type checker (no runtime cost)."""
    return cast("Awaitable[T]", result)
