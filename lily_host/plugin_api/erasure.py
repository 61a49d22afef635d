"""Erasure helpers: every plugin that keeps a tenant's data erases it on ``tenant.deleted``."""

from __future__ import annotations

from typing import Any

from lily_host.plugin_api.contract import TaskContext
from lily_host.plugin_api.errors import PermanentError
from lily_host.plugin_api.host_api import KeyPatterns

__all__ = ["KeyPatterns", "deleted_tenant", "erase_keys", "glob_escape"]

#: Keys unlinked per round trip.
BATCH = 500


def glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis glob pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


async def erase_keys(redis: Any, patterns: KeyPatterns, tenant_id: str) -> int:
    """UNLINK every key matching ``patterns(glob-escaped tenant_id)``; returns how many were removed."""
    removed = 0
    for match in patterns(glob_escape(tenant_id)):
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=match, count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                removed += int(await redis.unlink(*batch))
                batch = []
        if batch:
            removed += int(await redis.unlink(*batch))
    return removed


async def deleted_tenant(ctx: TaskContext, payload: dict[str, Any]) -> str | None:
    """The id a ``tenant.deleted`` payload names, or None when a tenant of that id exists again
    (created since: what is stored under the id is the new tenant's). For every subscriber."""
    tenant_id = payload.get("tenant")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise PermanentError("tenant.deleted without a tenant id", code="invalid_event")
    if await ctx.host.tenants.get(tenant_id) is not None:
        ctx.log.warning("tenant exists again; nothing erased")
        return None
    return tenant_id
