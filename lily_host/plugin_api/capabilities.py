"""The capabilities automations use, and the protocols their providers implement.

A plugin provides a capability by registering ``Capability(name, provider)``; the host's
automations look providers up by name and never import a plugin. A provider may define
``attach(host)``, called once with the running Host. A provider raises the errors of
:mod:`lily_host.plugin_api.errors` (RetryLater, PermanentError, RecipientOptedOut) to steer retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant

SMS = "sms"
CALENDAR = "calendar"
STORAGE = "storage"


# --- sms ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingSms:
    """One text message, already cleared by compliance (suppression, quiet hours, caps)."""

    message_id: str
    to: str
    body: str
    status_callback: str | None = None


@dataclass(frozen=True)
class SentSms:
    provider_id: str
    status: str
    sender: str


@runtime_checkable
class SmsChannel(Protocol):
    """Sends a text for a tenant. Chooses the sender number from the tenant's settings.

    Raise RecipientOptedOut when the provider says the recipient opted out (Twilio 21610),
    RetryLater for rate limits, PermanentError for other client errors; anything else retries.
    """

    name: str

    async def send(self, tenant: Tenant, message: OutgoingSms) -> SentSms: ...


# --- calendar -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarEvent:
    """A booking as a calendar event. ``start``/``end`` are ISO 8601 with offset."""

    booking_uid: str
    title: str
    description: str
    start: str
    end: str
    timezone: str
    location: str | None = None
    attendee_email: str | None = None


@runtime_checkable
class CalendarProvider(Protocol):
    """Writes a tenant's bookings to its calendar, idempotently per booking uid."""

    name: str

    async def upsert_event(self, tenant: Tenant, event: CalendarEvent) -> str: ...

    async def cancel_event(self, tenant: Tenant, booking_uid: str) -> None: ...


# --- storage --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class StorageProvider(Protocol):
    """Object storage confined to a tenant: every ``key`` is relative to the tenant's prefix."""

    name: str

    async def put(self, tenant: Tenant, key: str, data: bytes, content_type: str) -> StoredObject: ...

    async def presigned_post(
        self, tenant: Tenant, key: str, *, content_type: str, max_bytes: int, expires: int
    ) -> dict[str, Any]: ...

    async def presigned_get(self, tenant: Tenant, key: str, *, expires: int) -> str: ...

    async def head(self, tenant: Tenant, key: str) -> StoredObject | None: ...

    async def delete(self, tenant: Tenant, key: str) -> None: ...
