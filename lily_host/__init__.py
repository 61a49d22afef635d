"""Lily: a pluggable integration host for home-service SaaS.

Plugins write ``from lily_host.plugin_api.markers import hookimpl`` and implement hooks of :mod:`lily_host.plugin_api.hookspecs`.
"""

from __future__ import annotations


from lily_host.plugin_api.contract import (
    PLUGIN_API_VERSION,
    Capability,
    EventSubscription,
    HealthCheck,
    HealthResult,
    HealthState,
    RetryPolicy,
    Routes,
    Simulation,
    TaskContext,
    TaskHandler,
    WebhookContext,
    WebhookEndpoint,
    WebhookRequest,
    WebhookResponse,
)
from lily_host.plugin_api.errors import (
    BadSignature,
    CapabilityUnavailable,
    Defer,
    InvalidPayload,
    PermanentError,
    RetryLater,
    UnknownTenant,
)

from lily_host.plugin_api.versions import HOST_VERSION as __version__

from lily_host.plugin_api.markers import hookimpl

__all__ = [
    "PLUGIN_API_VERSION",
    "BadSignature",
    "Capability",
    "CapabilityUnavailable",
    "Defer",
    "EventSubscription",
    "HealthCheck",
    "HealthResult",
    "HealthState",
    "InvalidPayload",
    "PermanentError",
    "RetryLater",
    "RetryPolicy",
    "Routes",
    "Simulation",
    "TaskContext",
    "TaskHandler",
    "UnknownTenant",
    "WebhookContext",
    "WebhookEndpoint",
    "WebhookRequest",
    "WebhookResponse",
    "__version__",
    "hookimpl",
]
