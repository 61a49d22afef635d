"""The plugin contract: every hook a Lily plugin may implement.

Registration hooks (``register_*``) are plain functions, called once per plugin while the app is
built. Each receives ``register``, a callback bound to that plugin (so the host knows who
registered what), and ``settings``, the plugin's own settings instance, or ``None`` when the
plugin has no settings model or is not configured. A hook implementation may accept only the
arguments it uses. Objects handed to ``register`` may be async; the hooks themselves are not.

Lifecycle hooks (``startup``, ``shutdown``) may return an awaitable; the host awaits it.
Never mark a hook ``firstresult``: results may be coroutines.

Every hook here has a section in docs/hooks.md (a test checks it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel
    from pydantic_settings import BaseSettings

    from lily_host.plugin_api.contract import (
        Capability,
        EventSubscription,
        HealthCheck,
        Routes,
        Simulation,
        TaskHandler,
        WebhookEndpoint,
    )
    from lily_host.plugin_api.host_api import LilyHost

from lily_host.plugin_api.markers import hookspec


@hookspec
def register_settings(register: Callable[[type[BaseSettings]], None]) -> None:
    """Register the plugin's global settings model (a pydantic-settings ``BaseSettings``).

    Fields without a default are required: when one is missing from the environment, the plugin is
    ``not_configured`` (its routes answer 503 naming the variables) and the rest of Lily runs.
    """


@hookspec
def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
    """Register the plugin's per-tenant settings model (a pydantic ``BaseModel``).

    ``lily tenants set`` and the admin API validate a tenant's settings for this plugin with it.
    ``SecretStr`` fields are encrypted at rest. A field with
    ``json_schema_extra={"lily_index": "<kind>"}`` (a str or a list of str) is indexed so that
    webhooks can resolve a tenant by it (``kind`` e.g. ``phone``, ``calcom_organizer``).
    """


@hookspec
def register_webhooks(register: Callable[[WebhookEndpoint], None], settings: Any) -> None:
    """Register webhook endpoints; each runs through the host's webhook pipeline."""


@hookspec
def register_routes(register: Callable[[Routes], None], settings: Any) -> None:
    """Register ordinary Quart routes (tenant APIs, OAuth callbacks) as a blueprint."""


@hookspec
def register_tasks(register: Callable[[TaskHandler], None], settings: Any) -> None:
    """Register task handlers: a unique name, an async function and a retry policy."""


@hookspec
def register_event_subscriptions(register: Callable[[EventSubscription], None], settings: Any) -> None:
    """Subscribe tasks to domain events (``call.missed``, ``booking.created``, ...)."""


@hookspec
def register_health_checks(register: Callable[[HealthCheck], None], settings: Any) -> None:
    """Register async health checks. Called only for configured plugins."""


@hookspec
def register_capabilities(register: Callable[[Capability], None], settings: Any) -> None:
    """Provide a capability (``sms``, ``calendar``, ``storage``). Called only for configured plugins."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``lily`` command line."""


@hookspec
def register_simulations(register: Callable[[Simulation], None], settings: Any) -> None:
    """Offer signed sample requests for ``lily simulate`` (development)."""


@hookspec
def startup(host: LilyHost) -> Awaitable[None] | None:
    """Called once when the app or worker starts, after Redis is reachable. May be async."""


@hookspec
def shutdown(host: LilyHost) -> Awaitable[None] | None:
    """Called once when the app or worker stops. May be async."""


HOOK_NAMES: tuple[str, ...] = (
    "register_settings",
    "register_tenant_settings",
    "register_webhooks",
    "register_routes",
    "register_tasks",
    "register_event_subscriptions",
    "register_health_checks",
    "register_capabilities",
    "register_commands",
    "register_simulations",
    "startup",
    "shutdown",
)
