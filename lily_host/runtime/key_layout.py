"""The key layout of Redis, and the one-time move of keys named before it (``lily migrate-keys``).

Since version 2 of the layout every key of one tenant's data carries the tenant's hash tag,
``lily:{t:<tenant>}:<family>...`` (the old ``lily:<family>:<tenant>...`` or
``lily:<family>:{<tenant>}...``), so that on a Redis Cluster each tenant's transactions and scripts
stay in one slot; and the integrations' health shares ``lily:{integrations}:``. A Redis that still
holds keys of the old names would look empty to this version: ``lily serve``, ``lily worker``
and the data commands refuse to start on it with one line naming ``lily migrate-keys``, which
renames them (idempotent: a second run finds nothing to do). ``lily:layout`` records that a Redis
was checked (or migrated), so the check walks the keyspace once per Redis, not on every start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lily_host.plugin_api.erasure import SCAN_COUNT
from lily_host.plugin_api.errors import ConfigurationError
from lily_host.plugin_api.key_slots import is_cluster_client, tenant_prefix
from lily_host.plugin_api.redis_typing import awaited
from lily_host.plugin_api.tenant import TENANT_ID

__all__ = [
    "LAYOUT_KEY",
    "LAYOUT_VERSION",
    "MIGRATE_COMMAND",
    "KeyMove",
    "MigrationReport",
    "migrate_keys",
    "new_name",
    "old_keys",
    "require_current_layout",
]

#: The string key that says which layout this Redis holds.
LAYOUT_KEY = "lily:layout"
LAYOUT_VERSION = "2"
MIGRATE_COMMAND = "lily migrate-keys"

#: Families whose old keys were ``lily:<family>:<tenant>`` or ``lily:<family>:<tenant>:<rest>``.
_FLAT = (
    "tenant",
    "tenant_keys",
    "tenant_secret",
    "tenant_index",
    "sms:message",
    "sms:messages",
    "sms:dedupe",
    "sms:provider",
    "sms:suppressed",
    "sms:keyword",
    "sms:cap",
    "job",
    "automations:missed_call",
    "bookings:calendar_lock",
    "gcal:shared",
    "gcal:auth_failed",
    "stripe:lock",
)
#: Families whose old keys were ``lily:<family>:{<tenant>}<rest>`` (already tagged, by the bare id).
_BRACED = ("conv", "reminders", "followups", "quotes", "quote", "booking", "s3")

_ID = TENANT_ID.pattern
_FLAT_RE = re.compile(
    "^lily:(?P<family>" + "|".join(re.escape(f) for f in _FLAT) + f"):(?P<tenant>{_ID})(?::(?P<rest>.*))?$", re.DOTALL
)
_BRACED_RE = re.compile(
    "^lily:(?P<family>" + "|".join(re.escape(f) for f in _BRACED) + r"):\{(?P<tenant>" + _ID + r")\}(?P<rest>.*)$",
    re.DOTALL,
)
#: A plugin's ``KeyNamespace.tenant_key`` before the tag: ``lily:<plugin>:<tenant>:<rest>``.
_PLUGIN_RE = re.compile(r"^lily:(?P<family>[a-z0-9_-]+):(?P<tenant>" + _ID + r"):(?P<rest>.*)$", re.DOTALL)
#: The host's own cross-tenant families: never a plugin's namespace, whatever the plugins are named.
_HOST_FAMILIES = frozenset(
    {"sms", "console", "trace", "webhooks", "health", "index", "apikey", "pii", "ratelimit", "authfail", "audit"}
)
_INTEGRATIONS_OLD = "lily:integrations"
_INTEGRATIONS_NEW = "lily:{integrations}:"


def new_name(key: str, *, plugins: Iterable[str] = (), tenants: Iterable[str] = ()) -> str | None:
    """The current name of a key written under the old layout, or None (not an old name).

    ``plugins`` and ``tenants``: a key ``lily:<plugin>:<tenant>:...`` of a plugin's namespace is
    recognised only for a plugin and a tenant that exist (other keys of that shape are not a
    tenant's: ``lily:gcal:link:<hash>``).
    """
    if key.startswith("lily:{"):
        return None  # tagged: the current layout
    if key == _INTEGRATIONS_OLD:
        return _INTEGRATIONS_NEW + "names"
    if key.startswith(_INTEGRATIONS_OLD + ":"):
        return _INTEGRATIONS_NEW + key[len(_INTEGRATIONS_OLD) + 1 :]
    match = _FLAT_RE.match(key)
    if match is not None:
        rest = match["rest"]
        return tenant_prefix(match["tenant"]) + match["family"] + ("" if rest is None else ":" + rest)
    match = _BRACED_RE.match(key)
    if match is not None:
        return tenant_prefix(match["tenant"]) + match["family"] + match["rest"]
    match = _PLUGIN_RE.match(key)
    if (
        match is not None
        and match["family"] not in _HOST_FAMILIES
        and match["family"] in set(plugins)
        and match["tenant"] in set(tenants)
    ):
        return tenant_prefix(match["tenant"]) + match["family"] + ":" + match["rest"]
    return None


@dataclass(frozen=True)
class KeyMove:
    old: str
    new: str


@dataclass
class MigrationReport:
    moved: list[KeyMove] = field(default_factory=list)
    #: Old keys left in place because a key of the new name exists already (both kept: see the message).
    conflicts: list[KeyMove] = field(default_factory=list)


async def _tenant_ids(redis: Any) -> set[str]:
    return {
        raw.decode() if isinstance(raw, bytes) else str(raw) for raw in await awaited(redis.smembers("lily:tenants"))
    }


async def old_keys(redis: Any, *, plugins: Iterable[str] = (), limit: int | None = None) -> list[KeyMove]:
    """The keys of this Redis still named by the old layout, with their new names (every primary
    of a cluster is walked); at most ``limit``."""
    names = set(plugins)
    tenants = await _tenant_ids(redis)
    found: list[KeyMove] = []
    async for raw in redis.scan_iter(match="lily:*", count=SCAN_COUNT):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        target = new_name(key, plugins=names, tenants=tenants)
        if target is not None:
            found.append(KeyMove(key, target))
            if limit is not None and len(found) >= limit:
                break
    return found


async def migrate_keys(redis: Any, *, plugins: Iterable[str] = ()) -> MigrationReport:
    """Rename every key of the old layout to its new name; idempotent.

    On one Redis each key is one ``RENAMENX`` (atomic, TTL kept). On a cluster old and new name
    may be in different slots: ``DUMP``, ``RESTORE`` with the remaining TTL (refused if the new
    name exists), then ``DEL``. A key whose new name exists already is left alone and reported.
    When nothing of the old layout is left, ``lily:layout`` is set.
    """
    report = MigrationReport()
    cluster = is_cluster_client(redis)
    for move in await old_keys(redis, plugins=plugins):
        if await _move(redis, move, cluster=cluster):
            report.moved.append(move)
        elif await awaited(redis.exists(move.old)):
            report.conflicts.append(move)
    if not report.conflicts:
        await awaited(redis.set(LAYOUT_KEY, LAYOUT_VERSION))
    return report


async def _move(redis: Any, move: KeyMove, *, cluster: bool) -> bool:
    if not cluster:
        try:
            return bool(await awaited(redis.renamenx(move.old, move.new)))
        except Exception as error:  # gone since the walk (another run moved it): nothing to do
            if "no such key" in str(error).lower():
                return False
            raise
    dumped = await redis.dump(move.old)
    if dumped is None or await awaited(redis.exists(move.new)):
        return False
    ttl = int(await redis.pttl(move.old))
    await redis.restore(move.new, max(ttl, 0), dumped)
    await awaited(redis.delete(move.old))
    return True


async def require_current_layout(redis: Any, *, plugins: Iterable[str] = ()) -> None:
    """Refuse (ConfigurationError, one line naming ``lily migrate-keys``) a Redis that holds keys of
    the old layout. Once a Redis is found clean it is marked (``lily:layout``) and not walked again."""
    marker = await awaited(redis.get(LAYOUT_KEY))
    if marker is not None:
        return
    found = await old_keys(redis, plugins=plugins, limit=1)
    if found:
        raise ConfigurationError(
            f"Redis holds keys named by Lily's previous key layout (such as {found[0].old!r}); stop every "
            f"Lily process of the previous version, run `{MIGRATE_COMMAND}` once, then start again "
            "(docs/operations.md, Redis Cluster)"
        )
    await awaited(redis.set(LAYOUT_KEY, LAYOUT_VERSION))
