"""Erasure helpers: every plugin that keeps a tenant's data erases it on ``tenant.deleted``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from lily_host.plugin_api.contract import TaskContext
from lily_host.plugin_api.errors import PermanentError
from lily_host.plugin_api.host_api import KeyPatterns
from lily_host.plugin_api.key_registry import COMPLETE, ERASED_TTL, registry_key

__all__ = ["KeyPatterns", "deleted_tenant", "erase_keys", "erase_tracked", "glob_escape", "tracked_keys"]

#: Keys unlinked per round trip.
BATCH = 500
#: Keys SCAN examines per round trip (the whole keyspace is walked once: fewer, larger steps).
SCAN_COUNT = 5000


def glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis glob pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def glob_regex(pattern: str) -> re.Pattern[bytes]:
    """A Redis glob (``*``, ``?``, ``[...]``, ``\\x``) as a regular expression over whole keys."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                negate = body.startswith("^")
                body = body[1:] if negate else body
                out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out).encode(), re.DOTALL)


_GLOB = re.compile(r"(?<!\\)[*?\[]")


def _literal(pattern: str) -> str | None:
    """The one key a pattern without wildcards names (unescaped), or None."""
    if _GLOB.search(pattern.replace("\\\\", "")):
        return None
    return re.sub(r"\\(.)", r"\1", pattern)


async def erase_tracked(redis: Any, patterns: KeyPatterns, tenant_id: str) -> int:
    """UNLINK the tenant's keys that match ``patterns(glob-escaped tenant_id)``, found in its key
    registry (:mod:`lily_host.plugin_api.key_registry`) and, for a pattern without wildcards, by
    name; returns how many were removed. O(the tenant's keys), whatever the number of tenants.

    A tenant whose registry is not marked complete (created before the registry existed) gets, in
    addition, :func:`erase_keys`' walk of the keyspace, so nothing written before is left behind.
    """
    removed = 0
    registry = registry_key(tenant_id)
    complete = await redis.zscore(registry, COMPLETE) is not None
    exact: list[re.Pattern[bytes]] = []
    literal: list[str] = []
    wildcard: list[str] = []
    for match in patterns(glob_escape(tenant_id)):
        exact.append(glob_regex(match))
        name = _literal(match)
        if name is None:
            wildcard.append(match)
        else:
            literal.append(name)
    if literal:
        removed += int(await redis.unlink(*literal))
    batch: list[bytes] = []
    async for raw in _registry_members(redis, registry):
        if any(pattern.fullmatch(raw) for pattern in exact):
            batch.append(raw)
            if len(batch) >= BATCH:
                removed += await _unlink_tracked(redis, registry, batch)
                batch = []
    if batch:
        removed += await _unlink_tracked(redis, registry, batch)
    if not complete and wildcard:
        removed += await erase_keys(redis, lambda _escaped: wildcard, tenant_id)
    # Kept a while for the other subscribers of the erasure, then gone (see key_registry).
    await redis.expire(registry, ERASED_TTL)
    return removed


async def tracked_keys(redis: Any, patterns: KeyPatterns, tenant_id: str) -> AsyncIterator[bytes]:
    """The tenant's keys matching ``patterns(glob-escaped tenant_id)``: from its key registry (an
    entry may name a key that has just expired: reading it gives nothing), and from a walk of the
    keyspace when the registry is not complete. For reading what is about to be erased (a record
    that names a file to delete elsewhere)."""
    registry = registry_key(tenant_id)
    exact = [glob_regex(match) for match in patterns(glob_escape(tenant_id))]
    seen: set[bytes] = set()
    async for raw in _registry_members(redis, registry):
        if raw not in seen and any(pattern.fullmatch(raw) for pattern in exact):
            seen.add(raw)
            yield raw
    if await redis.zscore(registry, COMPLETE) is None:
        escaped = glob_escape(tenant_id)
        for match in patterns(escaped):
            async for key in redis.scan_iter(match=match, count=SCAN_COUNT):
                raw = key if isinstance(key, bytes) else str(key).encode()
                if raw not in seen:
                    seen.add(raw)
                    yield raw


async def _registry_members(redis: Any, registry: str) -> AsyncIterator[bytes]:
    async for member, _score in redis.zscan_iter(registry, count=BATCH):
        raw = member if isinstance(member, bytes) else str(member).encode()
        if raw != COMPLETE.encode():
            yield raw


async def _unlink_tracked(redis: Any, registry: str, batch: list[bytes]) -> int:
    # Unlinked first, then forgotten: a crash between leaves entries of keys that are gone (harmless).
    unlinked = int(await redis.unlink(*batch))
    await redis.zrem(registry, *batch)
    return unlinked


async def erase_keys(redis: Any, patterns: KeyPatterns, tenant_id: str) -> int:
    """UNLINK every key matching ``patterns(glob-escaped tenant_id)``; returns how many were removed.

    This walks the whole keyspace: its time grows with every tenant's keys. Plugins that record
    their keys with :func:`~lily_host.plugin_api.key_registry.track_keys` erase with
    :func:`erase_tracked` instead.

    Every pattern names the tenant, so one SCAN for keys that contain its id, filtered here against
    the exact patterns, finds them all: one walk of the keyspace however many patterns there are
    (a walk per pattern took ten times as long with the host's ten). A pattern that does not
    contain the id gets a walk of its own. On a Redis Cluster, ``scan_iter`` walks every primary.
    """
    escaped = glob_escape(tenant_id)
    shared: list[re.Pattern[bytes]] = []
    removed = 0
    for match in patterns(escaped):
        if escaped in match:
            shared.append(glob_regex(match))
        else:
            removed += await _unlink_matching(redis, match, [glob_regex(match)])
    if shared:
        removed += await _unlink_matching(redis, f"*{escaped}*", shared)
    return removed


async def _unlink_matching(redis: Any, match: str, exact: list[re.Pattern[bytes]]) -> int:
    removed = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=match, count=SCAN_COUNT):
        raw = key if isinstance(key, bytes) else str(key).encode()
        if not any(pattern.fullmatch(raw) for pattern in exact):
            continue
        batch.append(raw)
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
