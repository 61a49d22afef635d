"""The domain events the host and its built-ins emit (payloads: docs/events.md).

Subscribe with ``EventSubscription(TENANT_DELETED, "myplugin.erase")``; emit your own with
``ctx.emit("myplugin.something", {...})`` (prefix custom events with your plugin's name).
"""

from __future__ import annotations

CALL_MISSED = "call.missed"
MESSAGE_RECEIVED = "message.received"
JOB_COMPLETED = "job.completed"
JOB_CANCELLED = "job.cancelled"
BOOKING_CREATED = "booking.created"
BOOKING_RESCHEDULED = "booking.rescheduled"
BOOKING_CANCELLED = "booking.cancelled"
BOOKING_CONFIRMED = "booking.confirmed"
TENANT_DELETED = "tenant.deleted"
QUOTE_PHOTOS_RECEIVED = "quote.photos_received"
QUOTE_ACCEPTED = "quote.accepted"
