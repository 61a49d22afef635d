"""Built-in plugin: bookings become a record, a text to the customer and a calendar event.

``booking.created`` / ``booking.rescheduled`` / ``booking.cancelled`` (from any scheduling plugin,
data = :class:`lily_host.records.booking_store.Booking`) each run one *record* task that applies the fact to the
tenant's :class:`~lily_host.records.booking_store.BookingStore`, then schedules two independent follow-ups:

- ``automations.booking_sms``: the confirmation / reschedule / cancellation text, through
  ``host.messaging`` (so suppression, quiet hours and caps apply), when an ``sms`` channel exists;
- ``automations.booking_calendar``: brings the tenant's calendar in line with the booking, when a
  ``calendar`` capability exists (lily-gcal).

Being separate tasks, a Google outage delays only the calendar write. Both follow-ups act on the
booking's state when they run, not on the event that scheduled them, so deliveries out of order
converge: a confirmation is not sent for a booking that was already rescheduled or cancelled, a
cancellation text waits ``CANCEL_SETTLE_SECONDS`` in case the cancellation was the first half of a
reschedule, and the calendar always ends with the chain's current slot (or nothing, if cancelled).

A calendar write for a tenant that has not connected its calendar (or whose connection was
revoked) is deferred by the provider, not failed; after ``CALENDAR_WAIT_SECONDS`` of waiting it is
dropped with a warning instead of piling up forever.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lily_host.observability.log import mask_phone
from lily_host.operations.correlation import note_effect
from lily_host.plugin_api.capabilities import CALENDAR, SMS
from lily_host.plugin_api.contract import EventSubscription, TaskContext, TaskHandler
from lily_host.plugin_api.errors import Defer, PermanentError
from lily_host.plugin_api.event_names import BOOKING_CANCELLED, BOOKING_CREATED, BOOKING_RESCHEDULED
from lily_host.plugin_api.key_slots import tenant_key
from lily_host.plugin_api.markers import hookimpl
from lily_host.records.booking_store import (
    Booking,
    BookingCalendarEvent,
    BookingState,
    BookingStore,
    booking_link,
    format_when,
)
from lily_host.runtime.host import host_of
from lily_host.sms.message_templates import BOOKING_CANCELLED_TEXT, BOOKING_CONFIRMED, BOOKING_RESCHEDULED_TEXT

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant
    from lily_host.runtime.host import Host

RECORD_TASKS = {
    BOOKING_CREATED: "automations.booking_created",
    BOOKING_RESCHEDULED: "automations.booking_rescheduled",
    BOOKING_CANCELLED: "automations.booking_cancelled",
}
SMS_TASK = "automations.booking_sms"
#: lily_host.builtins.appointment_reminders.PLAN_TASK (named here: that module imports this one).
REMINDERS_PLAN_TASK = "reminders.plan"
CALENDAR_TASK = "automations.booking_calendar"

CONFIRMED_TEMPLATE = BOOKING_CONFIRMED
RESCHEDULED_TEMPLATE = BOOKING_RESCHEDULED_TEXT
CANCELLED_TEMPLATE = BOOKING_CANCELLED_TEXT
TEMPLATE_FOR = {
    BOOKING_CREATED: CONFIRMED_TEMPLATE,
    BOOKING_RESCHEDULED: RESCHEDULED_TEMPLATE,
    BOOKING_CANCELLED: CANCELLED_TEMPLATE,
}

#: A cancellation text waits this long: Cal.com may cancel the old slot of a reschedule just before
#: announcing the new one, and the customer should then get one "moved" text, not "cancelled" + "moved".
CANCEL_SETTLE_SECONDS = 120
#: How long a calendar write waits for the tenant to (re)connect its calendar before it is dropped.
CALENDAR_WAIT_SECONDS = 14 * 24 * 3600
#: Event titles read "<service type> <en dash> <customer name>", as the product spec writes them.
TITLE_SEPARATOR = " \u2013 "
#: One calendar sync per tenant at a time, so an older view of a booking never overwrites a newer one.
CALENDAR_LOCK_SECONDS = 120
CALENDAR_LOCK_RETRY_SECONDS = 5
#: Booking records outlive the tenant's retention by this much, so late provider retries still merge.
RECORD_GRACE_SECONDS = 30 * 24 * 3600


def store_for(host: Host, tenant: Tenant) -> BookingStore:
    return BookingStore(host.redis, ttl_seconds=tenant.retention_days * 86400 + RECORD_GRACE_SECONDS, pii=host.pii)


# --- record -----------------------------------------------------------------------------------------


def _record_task(event: str) -> Callable[[TaskContext, dict[str, Any]], Awaitable[None]]:
    async def record(ctx: TaskContext, payload: dict[str, Any]) -> None:
        host = host_of(ctx.host)
        tenant = ctx.tenant
        if tenant is None:
            ctx.log.warning("booking event for an unknown tenant; ignored", event_name=event)
            return
        try:
            booking = Booking.model_validate(payload)
        except ValidationError as error:
            raise PermanentError(
                f"{event} data is not a booking: {error.errors()[0]['msg']}", code="invalid"
            ) from error
        store = store_for(host, tenant)
        if event == BOOKING_CREATED:
            await store.record_created(tenant.id, booking)
        elif event == BOOKING_RESCHEDULED:
            await store.record_rescheduled(tenant.id, booking)
        else:
            await store.record_cancelled(tenant.id, booking)
        ctx.log.info("booking recorded", event_name=event, uid=booking.uid, replaces=booking.replaces_uid)
        await note_effect(host, "booking", booking.uid, {"tenant": tenant.id, "event": event})

        follow_up = {"event": event, "uid": booking.uid}
        if host.has_capability(SMS):
            timing = {"delay": CANCEL_SETTLE_SECONDS} if event == BOOKING_CANCELLED else {}
            await ctx.schedule(
                SMS_TASK, follow_up, dedupe_key=f"bookings:sms:{tenant.id}:{event}:{booking.uid}", **timing
            )
        if host.has_capability(SMS):
            # Reminders follow the chain: moved with a reschedule, dropped with a cancellation.
            await ctx.schedule(
                REMINDERS_PLAN_TASK, follow_up, dedupe_key=f"bookings:reminders:{tenant.id}:{event}:{booking.uid}"
            )
        if host.has_capability(CALENDAR):
            await ctx.schedule(
                CALENDAR_TASK, follow_up, dedupe_key=f"bookings:calendar:{tenant.id}:{event}:{booking.uid}"
            )

    return record


# --- sms ----------------------------------------------------------------------------------------------


def _should_text(event: str, state: BookingState, uid: str) -> str | None:
    """Why no text goes out for ``event`` on ``uid`` given the booking's state now, or None to send it."""
    if not state.is_current(uid):
        return "the booking was rescheduled again since"
    if event == BOOKING_CANCELLED:
        return None if state.cancelled else "the booking is no longer cancelled (it was rescheduled)"
    return "the booking was cancelled since" if state.cancelled else None


def sms_context(tenant: Tenant, booking: Booking, previous: Booking | None = None) -> dict[str, str]:
    """What the booking templates may use (besides tenant_name, contact and review_link)."""
    local = booking.local_start()
    link = booking_link(tenant)
    return {
        "customer_name": booking.customer_name,
        "first_name": (booking.customer_name.split() or ["there"])[0],
        "service": booking.service_type or "appointment",
        "when": format_when(local),
        "date": f"{local.strftime('%a, %b')} {local.day}",
        "time": format_when(local).rsplit(" at ", 1)[-1],
        "address": booking.location or "",
        "address_line": f" at {booking.location}" if booking.location else "",
        "previous_when": previous.when_text() if previous is not None else "",
        "booking_url": link or "",
        "book_again": f" Book a new time: {link}" if link else "",
    }


async def send_text(ctx: TaskContext, payload: dict[str, Any]) -> None:
    host = host_of(ctx.host)
    event, uid = str(payload.get("event", "")), str(payload.get("uid", ""))
    template = TEMPLATE_FOR.get(event)
    tenant = ctx.tenant
    if template is None or tenant is None:
        ctx.log.warning("booking text for an unknown event or tenant; ignored", event_name=event)
        return
    store = store_for(host, tenant)
    state = await store.state(tenant.id, uid)
    if state is None:
        ctx.log.warning("booking text: no record of this booking", uid=uid)
        return
    reason = _should_text(event, state, uid)
    if reason is not None:
        ctx.log.info("booking text skipped", event_name=event, uid=uid, reason=reason)
        return
    booking = state.booking
    if booking.start.timestamp() <= ctx.now():
        ctx.log.info("booking text skipped: the appointment time has passed", event_name=event, uid=uid)
        return
    if not booking.customer_phone:
        ctx.log.info("booking text skipped: the booking form gave no phone number", event_name=event, uid=uid)
        return
    previous = None
    if event == BOOKING_RESCHEDULED and len(state.chain) > 1:
        record = await store.record(tenant.id, state.chain[-2])
        if record is not None and record.get("booking"):
            previous = Booking.model_validate(record["booking"])
    task_id = await host.messaging.queue_sms(
        tenant,
        booking.customer_phone,
        template=template,
        context=sms_context(tenant, booking, previous),
        kind="transactional",
        dedupe_key=f"{template}:{uid}",
        # Quiet hours follow the customer's own clock when Cal.com tells us their timezone.
        recipient_timezone=booking.timezone,
    )
    ctx.log.info("booking text queued", template=template, to=mask_phone(booking.customer_phone), task=task_id)


# --- calendar ------------------------------------------------------------------------------------------


def calendar_event(tenant: Tenant, state: BookingState) -> BookingCalendarEvent:
    booking = state.booking
    service = booking.service_type or "Appointment"
    title = f"{service}{TITLE_SEPARATOR}{booking.customer_name}" if booking.customer_name else service
    lines = [
        f"Customer: {booking.customer_name or 'unknown'}",
        f"Phone: {booking.customer_phone or 'not given'}",
        f"Email: {booking.customer_email or 'not given'}",
        f"Address: {booking.location or 'not given'}",
        f"Service: {service}",
    ]
    if booking.notes:
        lines.append(f"Notes: {booking.notes}")
    lines.append(f"Booked via {booking.provider} (booking {state.current_uid})")
    return BookingCalendarEvent(
        booking_uid=state.root_uid,
        title=title,
        description="\n".join(lines),
        start=booking.start.isoformat(),
        end=booking.end.isoformat(),
        timezone=tenant.timezone,
        location=booking.location,
        attendee_email=booking.customer_email,
        service_type=service,
    )


async def sync_calendar(ctx: TaskContext, payload: dict[str, Any]) -> None:
    host = host_of(ctx.host)
    uid = str(payload.get("uid", ""))
    tenant = ctx.tenant
    if tenant is None:
        ctx.log.warning("calendar sync for an unknown tenant; ignored")
        return
    if not host.has_capability(CALENDAR):
        ctx.log.info("calendar sync skipped: no calendar plugin is configured", uid=uid)
        return
    lock = calendar_lock_key(tenant.id)
    if not await host.redis.set(lock, ctx.task_id, nx=True, ex=CALENDAR_LOCK_SECONDS):
        raise Defer("another calendar sync of this tenant is running", until=ctx.now() + CALENDAR_LOCK_RETRY_SECONDS)
    try:
        await _sync(ctx, host, tenant, uid)
    except Defer:
        if ctx.now() - ctx.first_due > CALENDAR_WAIT_SECONDS:
            ctx.log.warning("calendar sync dropped: the tenant's calendar stayed unavailable", uid=uid)
            return
        raise
    finally:
        holder = await host.redis.get(lock)
        if holder is not None and holder.decode() == ctx.task_id:
            await host.redis.delete(lock)


async def _sync(ctx: TaskContext, host: Host, tenant: Tenant, uid: str) -> None:
    store = store_for(host, tenant)
    state = await store.state(tenant.id, uid)
    if state is None:
        ctx.log.warning("calendar sync: no record of this booking", uid=uid)
        return
    provider = host.capability(CALENDAR)
    if state.cancelled:
        # The root's event is removed even if no write was recorded: the record may predate a crash.
        for name in dict.fromkeys((state.root_uid, *state.calendar_uids)):
            await provider.cancel_event(tenant, name)
            if name in state.calendar_uids:
                await store.mark_calendar(tenant.id, name, written=False)
        ctx.log.info("calendar event cancelled", uid=uid, root=state.root_uid)
        return
    event_id = await provider.upsert_event(tenant, calendar_event(tenant, state))
    await store.mark_calendar(tenant.id, state.root_uid, written=True)
    await note_effect(host, "calendar", str(event_id), {"tenant": tenant.id, "uid": state.root_uid, "action": "upsert"})
    # A chain whose head arrived late was first written under a later uid: remove that stray event.
    for stray in state.calendar_uids:
        if stray != state.root_uid:
            await provider.cancel_event(tenant, stray)
            await store.mark_calendar(tenant.id, stray, written=False)
    ctx.log.info("calendar event written", uid=uid, root=state.root_uid, calendar_event=event_id)


# --- registration ------------------------------------------------------------------------------------


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    for event, task in RECORD_TASKS.items():
        register(TaskHandler(task, _record_task(event)))
    register(TaskHandler(SMS_TASK, send_text, tenant_gated=True))
    register(TaskHandler(CALENDAR_TASK, sync_calendar, tenant_gated=True))


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    for event, task in RECORD_TASKS.items():
        register(EventSubscription(event, task))


def calendar_lock_key(tenant_id: str) -> str:
    """``lily:{t:<tenant>}:bookings:calendar_lock``: one calendar sync of a tenant at a time."""
    return tenant_key(tenant_id, "bookings", "calendar_lock")
