"""Lily's plugin API: everything a plugin imports, and nothing else (docs/api.md, name by name).

Plugins write ``from lily_host import hookimpl, WebhookEndpoint, ...`` and implement the hooks of
``lily_host.plugin_api.hookspecs`` (docs/hooks.md). Tests use ``lily_host.testing``; provider fakes
build on ``lily_host.fakes``. Every other module of ``lily_host`` is the host's own and may change
in any release; the architecture check (``tools/architecture_check.py``) keeps our plugins honest.

Names load on first use, so ``import lily_host`` (and ``lily --version``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lily_host.plugin_api.markers import hookimpl
from lily_host.plugin_api.versions import HOST_VERSION as __version__
from lily_host.plugin_api.versions import PLUGIN_API_VERSION

if TYPE_CHECKING:
    from lily_host.observability.log import (
        get_logger,
        mask_phone,
    )
    from lily_host.observability.metrics import (
        track_api_call,
    )
    from lily_host.operations.correlation import (
        note_effect,
    )
    from lily_host.plugin_api.capabilities import (
        CalendarEvent,
        CalendarProvider,
        OutgoingSms,
        SentSms,
        SmsChannel,
        StorageProvider,
        StoredObject,
    )
    from lily_host.plugin_api.cli_output import (
        Column,
        json_option,
        local_time,
        masked,
        print_listing,
    )
    from lily_host.plugin_api.commands import (
        with_host,
    )
    from lily_host.plugin_api.contract import (
        Capability,
        EventSubscription,
        HealthCheck,
        HealthResult,
        HealthState,
        RequestHeaders,
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
        simulation_id,
    )
    from lily_host.plugin_api.dev_standin import (
        DevContext,
        DevStandIn,
    )
    from lily_host.plugin_api.erasure import (
        deleted_tenant,
        erase_keys,
        erase_tracked,
        glob_escape,
        tracked_keys,
    )
    from lily_host.plugin_api.errors import (
        BadSignature,
        CapabilityUnavailable,
        ConfigurationError,
        Defer,
        InvalidPayload,
        PermanentError,
        RecipientOptedOut,
        RetryLater,
        UnknownTenant,
    )
    from lily_host.plugin_api.event_names import (
        BOOKING_CANCELLED,
        BOOKING_CONFIRMED,
        BOOKING_CREATED,
        BOOKING_RESCHEDULED,
        CALL_MISSED,
        INTEGRATION_FAILING,
        INTEGRATION_RECOVERED,
        JOB_CANCELLED,
        JOB_COMPLETED,
        MESSAGE_RECEIVED,
        QUOTE_ACCEPTED,
        QUOTE_PHOTOS_RECEIVED,
        TENANT_DELETED,
    )
    from lily_host.plugin_api.forms import (
        parse_form,
    )
    from lily_host.plugin_api.host_api import (
        KeyNamespace,
        KeyPatterns,
        LilyHost,
        MessageKind,
        PiiBox,
        TenantDirectory,
        current_host,
    )
    from lily_host.plugin_api.key_registry import (
        set_tracked,
        track_keys,
        track_keys_now,
        untrack_keys,
    )
    from lily_host.plugin_api.key_slots import (
        slot_transaction,
    )
    from lily_host.plugin_api.redis_typing import (
        awaited,
    )
    from lily_host.plugin_api.retry_after import (
        parse_retry_after,
    )
    from lily_host.plugin_api.route_auth import (
        require_tenant,
        tenant_or_refusal,
    )
    from lily_host.plugin_api.tenant import (
        TENANT_ID,
        IndexConflict,
        Tenant,
        TenantError,
    )
    from lily_host.plugin_api.untrusted import (
        UntrustedInput,
        ascii_int,
        loads_json,
    )
    from lily_host.plugin_api.validators import (
        normalize_e164,
        split_comma_list,
        unique_emails,
    )
    from lily_host.records.booking_store import (
        Booking,
        BookingCalendarEvent,
        BookingStore,
    )

#: Where each public name lives (the host's own layout, free to change: import from lily_host).
_LOCATION: dict[str, str] = {
    "Capability": "lily_host.plugin_api.contract",
    "EventSubscription": "lily_host.plugin_api.contract",
    "HealthCheck": "lily_host.plugin_api.contract",
    "HealthResult": "lily_host.plugin_api.contract",
    "HealthState": "lily_host.plugin_api.contract",
    "RequestHeaders": "lily_host.plugin_api.contract",
    "RetryPolicy": "lily_host.plugin_api.contract",
    "Routes": "lily_host.plugin_api.contract",
    "Simulation": "lily_host.plugin_api.contract",
    "TaskContext": "lily_host.plugin_api.contract",
    "TaskHandler": "lily_host.plugin_api.contract",
    "TenantHealthCheck": "lily_host.plugin_api.contract",
    "WebhookContext": "lily_host.plugin_api.contract",
    "WebhookEndpoint": "lily_host.plugin_api.contract",
    "WebhookRequest": "lily_host.plugin_api.contract",
    "WebhookResponse": "lily_host.plugin_api.contract",
    "simulation_id": "lily_host.plugin_api.contract",
    "DevContext": "lily_host.plugin_api.dev_standin",
    "DevStandIn": "lily_host.plugin_api.dev_standin",
    "BadSignature": "lily_host.plugin_api.errors",
    "CapabilityUnavailable": "lily_host.plugin_api.errors",
    "ConfigurationError": "lily_host.plugin_api.errors",
    "Defer": "lily_host.plugin_api.errors",
    "InvalidPayload": "lily_host.plugin_api.errors",
    "PermanentError": "lily_host.plugin_api.errors",
    "RecipientOptedOut": "lily_host.plugin_api.errors",
    "RetryLater": "lily_host.plugin_api.errors",
    "UnknownTenant": "lily_host.plugin_api.errors",
    "IndexConflict": "lily_host.plugin_api.tenant",
    "TENANT_ID": "lily_host.plugin_api.tenant",
    "Tenant": "lily_host.plugin_api.tenant",
    "TenantError": "lily_host.plugin_api.tenant",
    "KeyNamespace": "lily_host.plugin_api.host_api",
    "slot_transaction": "lily_host.plugin_api.key_slots",
    "KeyPatterns": "lily_host.plugin_api.host_api",
    "LilyHost": "lily_host.plugin_api.host_api",
    "MessageKind": "lily_host.plugin_api.host_api",
    "TenantDirectory": "lily_host.plugin_api.host_api",
    "PiiBox": "lily_host.plugin_api.host_api",
    "current_host": "lily_host.plugin_api.host_api",
    "deleted_tenant": "lily_host.plugin_api.erasure",
    "erase_keys": "lily_host.plugin_api.erasure",
    "erase_tracked": "lily_host.plugin_api.erasure",
    "tracked_keys": "lily_host.plugin_api.erasure",
    "track_keys": "lily_host.plugin_api.key_registry",
    "track_keys_now": "lily_host.plugin_api.key_registry",
    "set_tracked": "lily_host.plugin_api.key_registry",
    "untrack_keys": "lily_host.plugin_api.key_registry",
    "glob_escape": "lily_host.plugin_api.erasure",
    "BOOKING_CANCELLED": "lily_host.plugin_api.event_names",
    "BOOKING_CREATED": "lily_host.plugin_api.event_names",
    "BOOKING_RESCHEDULED": "lily_host.plugin_api.event_names",
    "CALL_MISSED": "lily_host.plugin_api.event_names",
    "INTEGRATION_FAILING": "lily_host.plugin_api.event_names",
    "INTEGRATION_RECOVERED": "lily_host.plugin_api.event_names",
    "JOB_CANCELLED": "lily_host.plugin_api.event_names",
    "JOB_COMPLETED": "lily_host.plugin_api.event_names",
    "MESSAGE_RECEIVED": "lily_host.plugin_api.event_names",
    "TENANT_DELETED": "lily_host.plugin_api.event_names",
    "BOOKING_CONFIRMED": "lily_host.plugin_api.event_names",
    "QUOTE_ACCEPTED": "lily_host.plugin_api.event_names",
    "QUOTE_PHOTOS_RECEIVED": "lily_host.plugin_api.event_names",
    "CalendarEvent": "lily_host.plugin_api.capabilities",
    "CalendarProvider": "lily_host.plugin_api.capabilities",
    "OutgoingSms": "lily_host.plugin_api.capabilities",
    "SentSms": "lily_host.plugin_api.capabilities",
    "SmsChannel": "lily_host.plugin_api.capabilities",
    "StorageProvider": "lily_host.plugin_api.capabilities",
    "StoredObject": "lily_host.plugin_api.capabilities",
    "parse_form": "lily_host.plugin_api.forms",
    "normalize_e164": "lily_host.plugin_api.validators",
    "split_comma_list": "lily_host.plugin_api.validators",
    "unique_emails": "lily_host.plugin_api.validators",
    "awaited": "lily_host.plugin_api.redis_typing",
    "with_host": "lily_host.plugin_api.commands",
    "Column": "lily_host.plugin_api.cli_output",
    "json_option": "lily_host.plugin_api.cli_output",
    "local_time": "lily_host.plugin_api.cli_output",
    "masked": "lily_host.plugin_api.cli_output",
    "print_listing": "lily_host.plugin_api.cli_output",
    "require_tenant": "lily_host.plugin_api.route_auth",
    "tenant_or_refusal": "lily_host.plugin_api.route_auth",
    "UntrustedInput": "lily_host.plugin_api.untrusted",
    "ascii_int": "lily_host.plugin_api.untrusted",
    "loads_json": "lily_host.plugin_api.untrusted",
    "parse_retry_after": "lily_host.plugin_api.retry_after",
    "note_effect": "lily_host.operations.correlation",
    "get_logger": "lily_host.observability.log",
    "mask_phone": "lily_host.observability.log",
    "track_api_call": "lily_host.observability.metrics",
    "Booking": "lily_host.records.booking_store",
    "BookingCalendarEvent": "lily_host.records.booking_store",
    "BookingStore": "lily_host.records.booking_store",
}


def __getattr__(name: str) -> Any:
    module = _LOCATION.get(name)
    if module is None:
        raise AttributeError(f"module 'lily_host' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BOOKING_CANCELLED",
    "BOOKING_CONFIRMED",
    "BOOKING_CREATED",
    "BOOKING_RESCHEDULED",
    "CALL_MISSED",
    "INTEGRATION_FAILING",
    "INTEGRATION_RECOVERED",
    "JOB_CANCELLED",
    "JOB_COMPLETED",
    "MESSAGE_RECEIVED",
    "PLUGIN_API_VERSION",
    "QUOTE_ACCEPTED",
    "QUOTE_PHOTOS_RECEIVED",
    "TENANT_DELETED",
    "TENANT_ID",
    "BadSignature",
    "Booking",
    "BookingCalendarEvent",
    "BookingStore",
    "CalendarEvent",
    "CalendarProvider",
    "Capability",
    "CapabilityUnavailable",
    "Column",
    "ConfigurationError",
    "Defer",
    "DevContext",
    "DevStandIn",
    "EventSubscription",
    "HealthCheck",
    "HealthResult",
    "HealthState",
    "IndexConflict",
    "InvalidPayload",
    "KeyNamespace",
    "KeyPatterns",
    "LilyHost",
    "MessageKind",
    "OutgoingSms",
    "PermanentError",
    "PiiBox",
    "RecipientOptedOut",
    "RequestHeaders",
    "RetryLater",
    "RetryPolicy",
    "Routes",
    "SentSms",
    "Simulation",
    "SmsChannel",
    "StorageProvider",
    "StoredObject",
    "TaskContext",
    "TaskHandler",
    "Tenant",
    "TenantDirectory",
    "TenantError",
    "TenantHealthCheck",
    "UnknownTenant",
    "UntrustedInput",
    "WebhookContext",
    "WebhookEndpoint",
    "WebhookRequest",
    "WebhookResponse",
    "__version__",
    "ascii_int",
    "awaited",
    "current_host",
    "deleted_tenant",
    "erase_keys",
    "erase_tracked",
    "get_logger",
    "glob_escape",
    "hookimpl",
    "json_option",
    "loads_json",
    "local_time",
    "mask_phone",
    "masked",
    "normalize_e164",
    "note_effect",
    "parse_form",
    "parse_retry_after",
    "print_listing",
    "require_tenant",
    "set_tracked",
    "simulation_id",
    "slot_transaction",
    "split_comma_list",
    "tenant_or_refusal",
    "track_api_call",
    "track_keys",
    "track_keys_now",
    "tracked_keys",
    "unique_emails",
    "untrack_keys",
    "with_host",
]
