"""Lily: a pluggable integration host for home-service SaaS.

Plugins write ``from lily_host import hookimpl`` and implement hooks of :mod:`lily_host.hookspecs`.
"""

from __future__ import annotations

import pluggy

from lily_host.contract import (
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
    TenantHealthCheck,
    WebhookContext,
    WebhookEndpoint,
    WebhookRequest,
    WebhookResponse,
)
from lily_host.errors import (
    BadSignature,
    CapabilityUnavailable,
    Defer,
    InvalidPayload,
    PermanentError,
    RetryLater,
    UnknownTenant,
)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("lily")

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
    "TenantHealthCheck",
    "UnknownTenant",
    "WebhookContext",
    "WebhookEndpoint",
    "WebhookRequest",
    "WebhookResponse",
    "__version__",
    "hookimpl",
]
