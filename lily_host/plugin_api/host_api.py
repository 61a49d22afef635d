"""The host as a plugin sees it: a narrow, typed interface, and nothing else.

Hooks, health checks, simulations, capability providers and route handlers receive an object that
implements :class:`LilyHost` (``ctx.host`` in a task or webhook, ``host`` in a health check, and
:func:`current_host` inside a plugin's routes). Everything on it is documented in docs/api.md and
versioned with ``PLUGIN_API_VERSION``; anything else on the object that happens to be there is
the host's private business and may change in any release.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import structlog
    from pydantic import BaseModel

    from lily_host.plugin_api.auth_throttle import FailureThrottle
    from lily_host.plugin_api.clock import Clock
    from lily_host.plugin_api.tenant import Tenant

#: ``"transactional"`` texts obey quiet hours and caps; ``"confirmation"`` answers a STOP/START/HELP.
MessageKind = Literal["transactional", "confirmation"]

#: Patterns of a tenant's keys, given its glob-escaped id (see :meth:`LilyHost.erase_keys`).
KeyPatterns = Callable[[str], Iterable[str]]


@dataclass(frozen=True)
class KeyNamespace:
    """A plugin's own Redis key space: every key it writes starts with ``lily:<plugin>:``.

    Keys that hold a tenant's data carry the tenant's hash tag instead
    (``ns.tenant_key(tenant_id, "marker")`` → ``lily:{t:<tenant>}:gcal:marker``): every key of one
    tenant, the host's and every plugin's, is in one Redis Cluster slot, so a plugin's
    transactions and scripts over one tenant's keys work on a cluster too; and
    ``ns.tenant_pattern`` finds them all for erasure.
    """

    plugin: str

    @property
    def prefix(self) -> str:
        return f"lily:{self.plugin}:"

    def key(self, *parts: str) -> str:
        """``lily:<plugin>:<part>:<part>...``"""
        return self.prefix + ":".join(parts)

    def tenant_key(self, tenant_id: str, *parts: str) -> str:
        """A key of one tenant's data: ``lily:{t:<tenant>}:<plugin>:<part>...`` (the tenant's slot)."""
        return self.tenant_prefix(tenant_id) + ":".join(parts)

    def tenant_prefix(self, tenant_id: str) -> str:
        """``lily:{t:<tenant>}:<plugin>:``: what every :meth:`tenant_key` of the tenant starts with."""
        return "lily:{t:" + tenant_id + "}:" + self.plugin + ":"

    def tenant_pattern(self, escaped_tenant_id: str) -> str:
        """The SCAN pattern of every key :meth:`tenant_key` makes for one (glob-escaped) tenant id."""
        return self.tenant_prefix(escaped_tenant_id) + "*"


@runtime_checkable
class PiiBox(Protocol):
    """Customer data at rest (``host.pii``): sealed with the host's key, found again by keyed hashes.

    Store a customer's number, name or message as ``seal(value)`` and read it with ``open``; key a
    record by a number with ``await digest(number)`` (a keyed hash: stable, not reversible without
    the host's key), never by the number itself.
    """

    def seal(self, value: str) -> str:
        """``value`` encrypted with the host's key (an ``enc:v1:...`` token)."""
        ...

    def open(self, stored: str) -> str:
        """The plaintext of a sealed value (a value stored before sealing existed passes through)."""
        ...

    async def digest(self, value: str) -> str:
        """The keyed hash of ``value`` (a normalised phone number), for keys and look-ups."""
        ...


@runtime_checkable
class TenantDirectory(Protocol):
    """The tenants, as plugins may read and change them (``host.tenants``)."""

    async def get(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None."""
        ...

    async def require(self, tenant_id: str) -> Tenant:
        """The tenant; raises ``TenantError`` if there is none."""
        ...

    async def all(self) -> list[Tenant]:
        """Every tenant (for periodic jobs; prefer :meth:`resolve` on a request path)."""
        ...

    async def resolve(self, kind: str, value: str) -> Tenant | None:
        """The tenant owning lookup value ``value`` of index ``kind`` (a phone number, a customer id)."""
        ...

    async def authenticate(self, secret: str) -> Tenant | None:
        """The tenant whose API key this is, or None (unknown or revoked)."""
        ...

    async def key_record(self, secret: str) -> dict[str, Any] | None:
        """The stored record of an API key (tenant, key_id, label, created), or None."""
        ...

    def plugin_settings(self, tenant: Tenant, plugin: str) -> BaseModel | None:
        """``plugin``'s tenant settings for ``tenant``, secrets decrypted; None if it has none."""
        ...

    async def set_plugin_settings(self, tenant_id: str, plugin: str, values: Mapping[str, Any]) -> Tenant:
        """Validate and store ``plugin``'s tenant settings (merged; secrets encrypted; indexes claimed)."""
        ...

    async def update(self, tenant_id: str, **fields: Any) -> Tenant:
        """Change host fields of the tenant (plan, subscription status, billing...)."""
        ...

    async def claim_index(self, kind: str, value: str, tenant_id: str) -> None:
        """Make ``value`` of index ``kind`` resolve to the tenant; ``IndexConflict`` if another owns it."""
        ...

    async def release_index(self, kind: str, value: str, tenant_id: str) -> None:
        """Stop ``value`` of index ``kind`` resolving to the tenant (if it does)."""
        ...

    async def put_secret(self, tenant_id: str, name: str, value: str) -> None:
        """Store a per-tenant secret (an OAuth token), encrypted with the host's key."""
        ...

    async def get_secret(self, tenant_id: str, name: str) -> str | None:
        """A per-tenant secret, decrypted, or None."""
        ...

    async def delete_secret(self, tenant_id: str, name: str) -> None:
        """Forget a per-tenant secret."""
        ...


@runtime_checkable
class LilyHost(Protocol):
    """What a plugin may use of the running host. Each member is documented in docs/api.md."""

    @property
    def clock(self) -> Clock:
        """The host's clock (``clock.now()``, seconds since the epoch; a manual clock in tests)."""
        ...

    @property
    def redis(self) -> Any:
        """The shared ``redis.asyncio`` client. Write only under :meth:`keys`'s namespace."""
        ...

    @property
    def tenants(self) -> TenantDirectory:
        """The tenants (:class:`TenantDirectory`)."""
        ...

    @property
    def is_production(self) -> bool:
        """True when ``LILY_ENV=production``."""
        ...

    @property
    def auth_throttle(self) -> FailureThrottle:
        """Wrong credentials counted per client address; past the limit a client waits (429 + Retry-After)."""
        ...

    @property
    def pii(self) -> PiiBox:
        """Customer data at rest (:class:`PiiBox`): seal numbers, names and texts; key records by digest."""
        ...

    def keys(self, plugin: str) -> KeyNamespace:
        """The Redis key namespace of ``plugin`` (``lily:<plugin>:``)."""
        ...

    def plugin_settings(self, name: str) -> Any:
        """Plugin ``name``'s settings instance; None when it is not installed or not configured."""
        ...

    def capability(self, name: str) -> Any:
        """The provider of capability ``name`` (``sms``, ``calendar``, ``storage``); else CapabilityUnavailable."""
        ...

    def has_capability(self, name: str) -> bool:
        """Whether some loaded plugin provides capability ``name``."""
        ...

    def public_url(self, path: str) -> str:
        """The public URL of ``path`` on this host (``LILY_PUBLIC_URL`` + path)."""
        ...

    async def schedule(self, task_type: str, payload: Mapping[str, Any], **options: Any) -> str | None:
        """Schedule a task now (outside a webhook); options as ``TaskContext.schedule``. The task id, or
        None when ``dedupe_key`` matched a pending task."""
        ...

    async def emit(self, event: str, data: Mapping[str, Any], *, tenant: str | None) -> list[str]:
        """Deliver domain event ``event`` to its subscribers (one task each); their task ids."""
        ...

    async def queue_sms(
        self,
        tenant: str | Tenant,
        to: str,
        *,
        template: str,
        context: Mapping[str, Any] | None = None,
        kind: MessageKind = "transactional",
        delay: float | None = None,
        run_at: float | None = None,
        jitter: tuple[float, float] | None = None,
        dedupe_key: str | None = None,
        default_text: str | None = None,
        recipient_timezone: str | None = None,
    ) -> str | None:
        """Text a customer through the one compliant pipeline (suppression, quiet hours, caps).
        The task id, or None when suppressed or deduplicated."""
        ...

    async def record_sms_status(
        self,
        tenant_id: str,
        provider_id: str,
        status: str,
        error_code: str | None = None,
        *,
        recipient_opted_out: bool = False,
        channel: str = "sms",
    ) -> bool:
        """Record an SMS provider's delivery status; False when no message has that provider id."""
        ...

    def track_api_call(self, integration: str, operation: str) -> AbstractContextManager[None]:
        """Time a call to a provider's API and count its failures (``lily_api_call_*`` metrics)."""
        ...

    async def erase_keys(self, patterns: KeyPatterns, tenant_id: str) -> int:
        """UNLINK every key matching ``patterns(glob-escaped tenant_id)``; how many went. Walks the
        whole keyspace: prefer :meth:`erase_tracked` for keys recorded with ``track_keys``."""
        ...

    async def erase_tracked(self, patterns: KeyPatterns, tenant_id: str) -> int:
        """UNLINK the tenant's keys matching ``patterns(glob-escaped tenant_id)`` that were recorded
        in its key registry (``track_keys``; ``once(..., tenant=)``), and those a pattern without
        wildcards names: time proportional to the tenant's keys, not to every tenant's. A tenant
        created before the registry existed is also looked for by a walk of the keyspace."""
        ...

    def logger(self, name: str, **context: Any) -> structlog.stdlib.BoundLogger:
        """A structured logger (phone numbers and secrets are masked when written)."""
        ...

    async def once(self, key: str, ttl: float, *, tenant: str | None = None) -> bool:
        """Do-this-once-per-key: True for the first caller to claim ``key``, False for every other
        caller until ``ttl`` seconds pass or :meth:`release_once` frees it (one atomic ``SET NX``).
        ``tenant``: the claim is that tenant's data, recorded in its key registry (``erase_tracked``).

        For a provider call that has no idempotency key (a chat reply, an email): claim a key named
        after what you are about to do (``keys(plugin).tenant_key(tenant, "replied", message_id)``),
        make the call only on True, and release the claim when the call surely did not happen (the
        provider answered 429 or 5xx, the connection was refused) so a retry may try again.
        """
        ...

    async def release_once(self, key: str) -> None:
        """Free a :meth:`once` claim, so the next caller gets True again."""
        ...


def current_host() -> LilyHost:
    """The host of the app serving the current request (inside a plugin's routes)."""
    from quart import current_app  # imported here: the CLI does not pay for Quart on every start

    host: LilyHost = current_app.extensions["lily"]
    return host
