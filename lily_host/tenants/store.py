"""Tenant records: the businesses Lily works for, their settings (secrets encrypted) and lookup indexes.

Storage (all in Redis):

- ``lily:{t:<id>}:tenant``         the tenant record, one JSON string; secret fields hold ``enc:v1:...``
- ``lily:{t:<id>}:tenant_index``  set of the lookup values claimed with ``claim_index``
- ``lily:{t:<id>}:deleted``        a deletion not yet handed over (a tombstone, see ``delete``)
- ``lily:tenants``                 set of tenant ids (cross-tenant)
- ``lily:index:<kind>``            hash value → tenant id (phone numbers, Stripe customers, ...; cross-tenant)

A tenant's keys share the hash tag ``{t:<id>}`` (one Redis Cluster slot); the cross-tenant ones
are written in steps of their own, claimed before the record and released after it.

API keys live in :mod:`lily_host.tenants.api_keys` and named secrets in
:mod:`lily_host.tenants.tenant_secrets`; ``TenantStore`` composes both so that plugins see one
``TenantDirectory``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import BaseModel, SecretStr, ValidationError
from redis.exceptions import WatchError

from lily_host.plugin_api.clock import Clock, SystemClock
from lily_host.plugin_api.key_registry import open_registry
from lily_host.plugin_api.key_slots import TENANT_TAG_PREFIX, is_cluster_client, mget_any, node_client, tenant_key
from lily_host.plugin_api.redis_typing import awaited
from lily_host.plugin_api.tenant import (
    IndexConflict,
    Tenant,
    TenantError,
    is_stored_secret,
    normalize_index_value,
)
from lily_host.plugin_api.validators import normalize_e164
from lily_host.tenants.api_keys import ApiKeys, api_keys_key
from lily_host.tenants.secret_box import SecretBox
from lily_host.tenants.tenant_secrets import TenantSecrets, secrets_key


def _secret_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if _annotation_has_secret(info.annotation)}


def _annotation_has_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_annotation_has_secret(arg) for arg in getattr(annotation, "__args__", ()))


def index_fields(model: type[BaseModel]) -> dict[str, str]:
    """Field name → index kind, from ``json_schema_extra={"lily_index": kind}``."""
    result: dict[str, str] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("lily_index"), str):
            result[name] = str(extra["lily_index"])
    return result


def _index_entries(model: type[BaseModel], values: Mapping[str, Any]) -> set[tuple[str, str]]:
    entries: set[tuple[str, str]] = set()
    for field_name, kind in index_fields(model).items():
        raw = values.get(field_name)
        items: Iterable[Any] = raw if isinstance(raw, list | tuple | set) else ([] if raw is None else [raw])
        for item in items:
            text = normalize_index_value(kind, str(item))
            if text:
                entries.add((kind, text))
    return entries


# One round trip for webhook tenant lookups: index hash → tenant record.
_RESOLVE_LUA = """
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
return redis.call('GET', ARGV[2] .. id .. ARGV[3])
"""

# Drop an index entry only if it still names the tenant.
_RELEASE_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

#: Set of every tenant id (cross-tenant: written in a step of its own).
TENANTS = "lily:tenants"
#: What follows a tenant's tag in the key of its record.
RECORD_SUFFIX = "}:tenant"


class TenantStore:
    """All reads and writes of tenants go through here."""

    def __init__(
        self,
        redis: aioredis.Redis,
        secret_box: SecretBox,
        models: Mapping[str, type[BaseModel]] | None = None,
        clock: Clock | None = None,
        resolve_cache_seconds: float = 0.0,
    ) -> None:
        self.redis = redis
        self.clock: Clock = clock or SystemClock()
        # Webhook tenant lookups are the hot path: a short per-process cache saves a round trip per
        # request. Local writes clear it at once; another process's change is seen within the TTL.
        self.resolve_cache_seconds = resolve_cache_seconds
        self._resolved: dict[tuple[str, str], tuple[float, Tenant]] = {}
        self.secret_box = secret_box
        self.models: dict[str, type[BaseModel]] = dict(models or {})
        self._resolve = redis.register_script(_RESOLVE_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._cluster = is_cluster_client(redis)
        self.secrets = TenantSecrets(redis, secret_box)
        self.api_keys = ApiKeys(redis, self.clock)

    # --- records --------------------------------------------------------------------------------

    async def create(self, tenant_id: str, name: str, **fields: Any) -> Tenant:
        """Create a tenant with its fields and plugin settings, all at once or not at all.

        Everything is validated (plugin settings and their lookup values included) before one
        transaction writes the record and its index entries: a refused request leaves no trace.
        """
        plugins = _plugin_values(fields.pop("plugins", None))
        now = self.clock.now()
        try:
            base = Tenant(id=tenant_id, name=name, **{"created_at": now, "updated_at": now, **_checked_input(fields)})
        except ValidationError as error:
            raise TenantError(_validation_message(error)) from error

        def build(current: Tenant | None) -> _Change:
            if current is not None:
                raise TenantError(f"tenant {tenant_id!r} already exists")
            return self._with_plugins(base, plugins)

        tenant = await self._commit(base.id, build, create=True)
        # From now on every key of this tenant is recorded in its key registry: its erasure reads the
        # registry instead of walking the keyspace. (A crash before this line leaves a tenant that is
        # erased the slow way, by a walk, not one whose data is missed.)
        opening = self.redis.pipeline(transaction=False)
        open_registry(opening, tenant.id)
        await opening.execute()
        return tenant

    async def get(self, tenant_id: str) -> Tenant | None:
        raw = await awaited(self.redis.get(_key(tenant_id)))
        return None if raw is None else Tenant.model_validate_json(raw)

    async def require(self, tenant_id: str) -> Tenant:
        tenant = await self.get(tenant_id)
        if tenant is None:
            raise TenantError(f"no tenant {tenant_id!r}")
        return tenant

    async def all(self) -> list[Tenant]:
        ids = sorted(await awaited(self.redis.smembers(TENANTS)))
        if not ids:
            return []
        raws = await mget_any(self.redis, [_key(_text(i)) for i in ids])
        return [Tenant.model_validate_json(raw) for raw in raws if raw is not None]

    async def get_many(self, ids: list[str]) -> list[Tenant]:
        """The tenants of ``ids`` that exist, in one round trip."""
        if not ids:
            return []
        raws = await mget_any(self.redis, [_key(i) for i in ids])
        return [Tenant.model_validate_json(raw) for raw in raws if raw is not None]

    async def update(self, tenant_id: str, **fields: Any) -> Tenant:
        """Change top-level fields (not ``id``, not ``plugins``: use set_plugin_settings)."""
        for forbidden in ("id", "plugins", "created_at"):
            if forbidden in fields:
                raise TenantError(f"{forbidden!r} cannot be changed this way")
        return await self.change(tenant_id, fields)

    async def change(self, tenant_id: str, fields: Mapping[str, Any] | None = None, plugins: Any = None) -> Tenant:
        """Change top-level ``fields`` and ``plugins`` (plugin → settings to merge), all or nothing."""
        fields = dict(fields or {})
        for forbidden in ("id", "plugins", "created_at"):
            if forbidden in fields:
                raise TenantError(f"{forbidden!r} cannot be changed this way")
        checked = _checked_input(fields)
        plugin_values = _plugin_values(plugins)

        def build(current: Tenant | None) -> _Change:
            if current is None:
                raise TenantError(f"no tenant {tenant_id!r}")
            data = current.model_dump()
            now = self.clock.now()
            if "subscription_status" in checked and checked["subscription_status"] != current.subscription_status:
                data["status_since"] = now
            data.update(checked)
            data["updated_at"] = now
            try:
                tenant = Tenant.model_validate(data)
            except ValidationError as error:
                raise TenantError(_validation_message(error)) from error
            return self._with_plugins(tenant, plugin_values, current.plugins)

        return await self._commit(tenant_id, build, create=False)

    def _with_plugins(
        self,
        tenant: Tenant,
        plugins: Mapping[str, Mapping[str, Any]],
        stored_before: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> _Change:
        """``tenant`` with each plugin's settings merged and validated; the index entries to claim and drop."""
        stored_before = stored_before or {}
        merged_plugins = dict(tenant.plugins)
        claims: set[tuple[str, str]] = set()
        drops: set[tuple[str, str]] = set()
        for plugin, values in plugins.items():
            model = self.models.get(plugin)
            if model is None:
                raise TenantError(f"plugin {plugin!r} has no tenant settings (is it installed and loaded?)")
            current_stored = merged_plugins.get(plugin, {})
            merged = {**self._decrypt_values(model, current_stored), **dict(values)}
            try:
                validated = model.model_validate(merged)
            except ValidationError as error:
                raise TenantError(f"{plugin}: {_validation_message(error)}") from error
            stored = self._encrypt_values(model, validated)
            old_entries = _index_entries(model, stored_before.get(plugin, {}))
            new_entries = _index_entries(model, stored)
            claims |= new_entries - old_entries
            drops |= old_entries - new_entries
            merged_plugins[plugin] = stored
        if plugins:
            tenant = tenant.model_copy(update={"plugins": merged_plugins, "updated_at": self.clock.now()})
        return _Change(tenant, claims, drops - claims)

    async def _commit(self, tenant_id: str, build: Callable[[Tenant | None], _Change], *, create: bool) -> Tenant:
        """Read, build and write one tenant; its lookup entries claimed before and given up after.

        ``build`` validates and may raise TenantError: then nothing at all was written. The record
        is written in one transaction of the tenant's slot (WATCH, MULTI); the cross-tenant index
        entries it claims are each claimed first, in a step of their own (HSETNX: a value another
        tenant owns is refused with IndexConflict), and released again if the record is not
        written; the entries it gives up are released after it. An entry claimed a moment before
        its record names a tenant that does not hold it yet: lookups find the old record (or none).
        """
        key = _key(tenant_id)
        client = await node_client(self.redis, key)
        async with client.pipeline(transaction=True) as pipe:
            while True:
                claimed: list[tuple[str, str]] = []
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    change = build(None if raw is None else Tenant.model_validate_json(raw))
                    for kind, value in sorted(change.claims):
                        if await self._claim_entry(kind, value, tenant_id):
                            claimed.append((kind, value))
                    if create:
                        await awaited(self.redis.sadd(TENANTS, tenant_id))
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    pipe.set(key, change.tenant.model_dump_json())
                    await pipe.execute()
                except WatchError:
                    await self._release_entries(claimed, tenant_id)
                    continue
                except BaseException:
                    await self._release_entries(claimed, tenant_id)
                    raise
                for kind, value in sorted(change.drops):
                    await self._release_entry(kind, value, tenant_id)
                self.forget_cached()
                return change.tenant

    async def _claim_entry(self, kind: str, value: str, tenant_id: str) -> bool:
        """Make ``value`` of ``kind`` name ``tenant_id``; True if this call set it (False: it did
        already). IndexConflict if another tenant owns it. One key, one step."""
        if await awaited(self.redis.hsetnx(_index(kind), value, tenant_id)):
            return True
        owner = await awaited(self.redis.hget(_index(kind), value))
        if owner is None:  # released in between: try once more
            if await awaited(self.redis.hsetnx(_index(kind), value, tenant_id)):
                return True
            owner = await awaited(self.redis.hget(_index(kind), value))
        if owner is not None and _text(owner) != tenant_id:
            raise IndexConflict(f"{kind} {value!r} already belongs to tenant {_text(owner)!r}")
        return False

    async def _release_entry(self, kind: str, value: str, tenant_id: str) -> None:
        """Drop ``value`` of ``kind`` from its index if ``tenant_id`` owns it (atomic: one script, one key)."""
        await self._release(keys=[_index(kind)], args=[value, tenant_id])

    async def _release_entries(self, entries: Iterable[tuple[str, str]], tenant_id: str) -> None:
        for kind, value in entries:
            await self._release_entry(kind, value, tenant_id)

    async def delete(self, tenant_id: str, *, handoff: Callable[[Tenant], Awaitable[None]] | None = None) -> bool:
        """Delete a tenant, its API keys, secrets and lookup entries.

        In the tenant's slot, one transaction removes the record, keys, secrets and index list and
        leaves a tombstone (``lily:{t:<id>}:deleted``: the record as it was). Then, each in a step
        of its own: ``handoff(tenant)`` (the host schedules the data purge, idempotently), the
        tombstone goes, and the cross-tenant entries (API key hashes, lookup values, ``lily:tenants``)
        are released. From the transaction on, nobody sees the tenant; a process that dies before
        the end leaves the tombstone, and :meth:`finish_deletions` completes the rest.
        """
        key = _key(tenant_id)
        client = await node_client(self.redis, key)
        async with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key, _api_keys(tenant_id), _index_list(tenant_id))
                    raw = await pipe.get(key)
                    if raw is None:
                        return False
                    key_hashes = [_text(h) for h in await awaited(pipe.hvals(_api_keys(tenant_id)))]
                    direct = [_text(m) for m in await awaited(pipe.smembers(_index_list(tenant_id)))]
                    tombstone = json.dumps({"tenant": raw.decode(), "api_keys": key_hashes, "index": direct})
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(tombstone_key(tenant_id), tombstone)
                    pipe.delete(key, _api_keys(tenant_id), secrets_key(tenant_id), _index_list(tenant_id))
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        self.forget_cached()
        await self._finish_deletion(tenant_id, handoff)
        return True

    async def finish_deletions(self, handoff: Callable[[Tenant], Awaitable[None]] | None = None) -> list[str]:
        """Complete the deletions a process left half done (a tombstone in the tenant's slot): the
        ids in ``lily:tenants`` without a record. Idempotent; returns the ids completed."""
        ids = sorted(_text(i) for i in await awaited(self.redis.smembers(TENANTS)))
        if not ids:
            return []
        records = await mget_any(self.redis, [_key(i) for i in ids])
        missing = [i for i, raw in zip(ids, records, strict=True) if raw is None]
        return [tenant_id for tenant_id in missing if await self._finish_deletion(tenant_id, handoff)]

    async def _finish_deletion(self, tenant_id: str, handoff: Callable[[Tenant], Awaitable[None]] | None) -> bool:
        """Hand over and release what the tombstone of ``tenant_id`` records; False without one.

        An id in ``lily:tenants`` with neither record nor tombstone (a create that died before its
        record) is left alone: listings skip it, and the create may still be under way.
        """
        raw = await awaited(self.redis.get(tombstone_key(tenant_id)))
        if raw is None:
            return False
        stone = json.loads(raw)
        tenant = Tenant.model_validate_json(stone["tenant"])
        if handoff is not None:
            await handoff(tenant)
        await awaited(self.redis.delete(tombstone_key(tenant_id)))
        for key_hash in stone["api_keys"]:
            await awaited(self.redis.delete(f"lily:apikey:{key_hash}"))
        if await awaited(self.redis.get(_key(tenant_id))) is None:
            # Not created again meanwhile (a new tenant of this id owns its lookups and the id's place).
            for plugin, values in tenant.plugins.items():
                model = self.models.get(plugin)
                if model is not None:
                    await self._release_entries(_index_entries(model, values), tenant_id)
            for member in stone["index"]:
                kind, _, value = member.partition("\x00")
                await self._release_entry(kind, value, tenant_id)
            await awaited(self.redis.srem(TENANTS, tenant_id))
        self.forget_cached()
        return True

    def plain_settings(self, tenant: Tenant) -> dict[str, dict[str, Any]]:
        """Each plugin's tenant settings without the secret ones (what may travel in an event)."""
        return {
            plugin: {key: value for key, value in values.items() if not is_stored_secret(value)}
            for plugin, values in tenant.plugins.items()
        }

    # --- per-plugin settings ------------------------------------------------------------------------

    async def set_plugin_settings(self, tenant_id: str, plugin: str, values: Mapping[str, Any]) -> Tenant:
        """Validate ``values`` (merged over the current ones) with the plugin's tenant model and store them.

        Secret fields are encrypted; indexed fields claim their lookup values, refusing values that
        belong to another tenant (and then storing nothing).
        """
        return await self.change(tenant_id, plugins={plugin: values})

    def view_for(self, tenant: Tenant, plugin: str) -> Tenant:
        """The tenant as ``plugin`` sees it: carrying its own decrypted settings (``plugin_settings``).

        Made once per record and plugin: a record from the resolve cache serves every request of
        its second with the same view.
        """
        view = tenant._views.get(plugin)
        if view is None:
            view = tenant._views[plugin] = tenant.for_plugin(self.plugin_settings(tenant, plugin))
        return view

    def plugin_settings(self, tenant: Tenant, plugin: str) -> BaseModel | None:
        """The tenant's settings for ``plugin``, validated and decrypted; None if the plugin has no model.

        A tenant that never set anything gets the model's defaults (or None if the model has
        required fields).
        """
        model = self.models.get(plugin)
        if model is None:
            return None
        try:
            return model.model_validate(self._decrypt_values(model, tenant.plugins.get(plugin, {})))
        except ValidationError:
            return None

    def _encrypt_values(self, model: type[BaseModel], validated: BaseModel) -> dict[str, Any]:
        data: dict[str, Any] = validated.model_dump(mode="json")
        for name in _secret_fields(model):
            value = getattr(validated, name)
            if isinstance(value, SecretStr):
                data[name] = self.secret_box.encrypt(value.get_secret_value())
        return data

    def _decrypt_values(self, model: type[BaseModel], stored: Mapping[str, Any]) -> dict[str, Any]:
        data = dict(stored)
        for name in _secret_fields(model):
            value = data.get(name)
            if isinstance(value, str) and SecretBox.is_encrypted(value):
                data[name] = self.secret_box.decrypt(value)
        return data

    # --- lookup indexes -------------------------------------------------------------------------------

    async def claim_index(self, kind: str, value: str, tenant_id: str, *, _direct: bool = True) -> None:
        """Make ``value`` of ``kind`` resolve to ``tenant_id``; IndexConflict if another tenant has it."""
        value = normalize_index_value(kind, value)
        claimed = await self._claim_entry(kind, value, tenant_id)
        if _direct:
            try:
                await awaited(self.redis.sadd(_index_list(tenant_id), f"{kind}\x00{value}"))
            except BaseException:
                if claimed:
                    await self._release_entry(kind, value, tenant_id)
                raise
        self.forget_cached()

    async def release_index(self, kind: str, value: str, tenant_id: str) -> None:
        value = normalize_index_value(kind, value)
        await awaited(self.redis.srem(_index_list(tenant_id), f"{kind}\x00{value}"))
        await self._release_entry(kind, value, tenant_id)
        self.forget_cached()

    async def resolve(self, kind: str, value: str) -> Tenant | None:
        """The one tenant that owns ``value`` of ``kind``, or None. At most one Redis round trip."""
        normalized = normalize_index_value(kind, value)
        cache_key = (kind, normalized)
        if self.resolve_cache_seconds > 0:
            cached = self._resolved.get(cache_key)
            if cached is not None:
                if cached[0] > time.monotonic():
                    return cached[1]
                # Expired: this request refreshes it; the requests arriving meanwhile keep using the
                # old value for that one round trip instead of all refreshing at once (a stall).
                self._resolved[cache_key] = (time.monotonic() + self.resolve_cache_seconds, cached[1])
        if self._cluster:
            # The index and the record are in different slots: two steps (the cache keeps most off Redis).
            owner = await awaited(self.redis.hget(_index(kind), normalized))
            raw = None if owner is None else await awaited(self.redis.get(_key(_text(owner))))
        else:
            raw = await self._resolve(keys=[_index(kind)], args=[normalized, TENANT_TAG_PREFIX, RECORD_SUFFIX])
        if raw is None:
            self._resolved.pop(cache_key, None)
            return None  # never cached: a tenant created a moment ago must resolve at once
        tenant = Tenant.model_validate_json(raw)
        if self.resolve_cache_seconds > 0:
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            self._resolved[cache_key] = (time.monotonic() + self.resolve_cache_seconds, tenant)
        return tenant

    def forget_cached(self) -> None:
        """Drop cached lookups (called on every local write)."""
        self._resolved.clear()

    # --- secrets (OAuth tokens, ...) -------------------------------------------------------------------

    # --- secrets and API keys (lily_host.tenants.tenant_secrets, lily_host.tenants.api_keys) --------------

    async def put_secret(self, tenant_id: str, name: str, value: str) -> None:
        await self.secrets.put(tenant_id, name, value)

    async def get_secret(self, tenant_id: str, name: str) -> str | None:
        return await self.secrets.get(tenant_id, name)

    async def delete_secret(self, tenant_id: str, name: str) -> None:
        await self.secrets.delete(tenant_id, name)

    async def rotate_secrets(self) -> int:
        """Re-encrypt every stored secret with the newest key; returns how many were rewritten."""
        count = 0
        for tenant in await self.all():
            plugins: dict[str, dict[str, Any]] = {}
            for plugin, values in tenant.plugins.items():
                rotated = {}
                for key, value in values.items():
                    if is_stored_secret(value):
                        rotated[key] = self.secret_box.rotate(value)
                        count += 1
                    else:
                        rotated[key] = value
                plugins[plugin] = rotated
            await awaited(
                self.redis.set(_key(tenant.id), tenant.model_copy(update={"plugins": plugins}).model_dump_json())
            )
            count += await self.secrets.rotate(tenant.id)
        return count

    async def mint_key(self, tenant_id: str, label: str = "") -> tuple[str, str]:
        """Create an API key for the tenant. Returns (key_id, secret); the secret is shown only now."""
        await self.require(tenant_id)
        return await self.api_keys.mint(tenant_id, label)

    async def list_keys(self, tenant_id: str) -> list[dict[str, Any]]:
        return await self.api_keys.listing(tenant_id)

    async def revoke_key(self, tenant_id: str, key_id: str) -> bool:
        return await self.api_keys.revoke(tenant_id, key_id)

    async def key_record(self, secret: str) -> dict[str, Any] | None:
        """The stored record (tenant, key_id, label, created) of an API key, or None."""
        return await self.api_keys.record(secret)

    async def authenticate(self, secret: str) -> Tenant | None:
        """The tenant an API key belongs to, or None for an unknown or revoked key."""
        record = await self.api_keys.record(secret)
        return None if record is None else await self.get(str(record["tenant"]))


@dataclass(frozen=True)
class _Change:
    """A tenant as it will be stored, and the lookup entries it claims and gives up."""

    tenant: Tenant
    claims: set[tuple[str, str]]
    drops: set[tuple[str, str]]


def _plugin_values(plugins: Any) -> dict[str, Mapping[str, Any]]:
    """``plugins`` as plugin name → settings; TenantError naming what is not an object."""
    if plugins is None:
        return {}
    if not isinstance(plugins, Mapping):
        raise TenantError("'plugins' must be an object of plugin name → settings object")
    for plugin, values in plugins.items():
        if not isinstance(values, Mapping):
            raise TenantError(f"plugins.{plugin} must be an object of settings, not {type(values).__name__}")
    return {str(plugin): values for plugin, values in plugins.items()}


def _checked_input(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields as given by an operator, with what is texted to customers checked and normalised.

    Checked here, on input, and not in the model, so that a record stored before these checks
    still loads (and is fixed by setting the field again).
    """
    checked = dict(fields)
    link = checked.get("review_link")
    if link is not None:
        if not isinstance(link, str):
            raise TenantError("review_link must be an http(s) URL such as https://g.page/r/your-business/review")
        link = link.strip()
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in link):
            raise TenantError(
                f"review_link {link!r} is not an http(s) URL (e.g. https://g.page/r/your-business/review)"
            )
        checked["review_link"] = link
    phone = checked.get("contact_phone")
    if phone is not None:
        if not isinstance(phone, str):
            raise TenantError("contact_phone must be a phone number written like +15551234567")
        try:
            checked["contact_phone"] = normalize_e164(phone)
        except ValueError as error:
            raise TenantError(f"contact_phone: {error}") from error
    return checked


def _key(tenant_id: str) -> str:
    return tenant_key(tenant_id, "tenant")


def record_key(tenant_id: str) -> str:
    """``lily:{t:<id>}:tenant``: the tenant's record."""
    return _key(tenant_id)


def tombstone_key(tenant_id: str) -> str:
    """``lily:{t:<id>}:deleted``: a deletion not yet handed over (see :meth:`TenantStore.delete`)."""
    return tenant_key(tenant_id, "deleted")


def _index(kind: str) -> str:
    return f"lily:index:{kind}"


def _index_list(tenant_id: str) -> str:
    """The index entries a tenant claimed directly (``claim_index``), ``kind\\x00value``."""
    return tenant_key(tenant_id, "tenant_index")


def _api_keys(tenant_id: str) -> str:
    return api_keys_key(tenant_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "value"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
