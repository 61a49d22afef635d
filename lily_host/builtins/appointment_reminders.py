"""Built-in plugin: appointment reminders, confirm-by-reply, and "on my way".

- Every booking fact (``booking.created`` / ``rescheduled`` / ``cancelled``) schedules
  ``reminders.plan`` for the booking's chain (from the booking automation's record task). The plan
  cancels the reminder tasks that no longer fit (moved or cancelled booking) and schedules one
  ``reminders.send`` per tenant offset at the time :func:`lily_host.sms.reminder_store.plan` gives.
- ``reminders.send`` re-checks the booking when it runs (still this start, not cancelled) and
  texts the ``appointment_reminder`` template through ``host.messaging`` (suppression, quiet
  hours, caps); then a reply from that number answers this booking:

  - ``C``, ``confirm``, ``confirmed``, ``yes``, ``y`` → ``booking.confirmed`` and one thank-you text;
  - ``R``, ``reschedule`` → the ``reschedule_reply`` text with the tenant's ``reschedule_link``
    (else its booking page).

  The replies are read by the host's inbound task after STOP/START/HELP and revocation phrases, in
  the same task, so they can never collide: a STOP is an opt-out, a YES from an opted-out number is
  an opt-in (START), and only then is a YES a confirmation.
- ``POST /api/bookings/<uid>/on-my-way`` (tenant API key), optional ``{"eta_minutes": 1-600}``,
  texts the ``on_my_way`` template to the booking's customer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quart import Blueprint, g, jsonify, request

from lily_host.observability.log import mask_phone
from lily_host.plugin_api.contract import Routes, TaskContext, TaskHandler
from lily_host.plugin_api.errors import Defer, PermanentError
from lily_host.plugin_api.event_names import BOOKING_CONFIRMED
from lily_host.plugin_api.json_problem import problem
from lily_host.plugin_api.markers import hookimpl
from lily_host.plugin_api.route_auth import require_tenant
from lily_host.plugin_api.untrusted import UntrustedInput, loads_json
from lily_host.records.booking_store import Booking, BookingState, booking_link, format_when
from lily_host.runtime.host import current_host, host_of
from lily_host.sms.message_templates import (
    APPOINTMENT_CONFIRMED_REPLY,
    APPOINTMENT_REMINDER,
    ON_MY_WAY,
    RESCHEDULE_REPLY,
)
from lily_host.sms.reminder_store import ReminderStore, plan

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant
    from lily_host.records.booking_store import BookingStore
    from lily_host.runtime.host import Host

PLAN_TASK = "reminders.plan"
SEND_TASK = "reminders.send"
CONFIRM_WORDS = frozenset({"C", "CONFIRM", "CONFIRMED", "YES", "Y"})
RESCHEDULE_WORDS = frozenset({"R", "RESCHEDULE"})
#: Booking records and reminder plans outlive the appointment by this much.
PLAN_GRACE_SECONDS = 7 * 24 * 3600
LOCK_RETRY_SECONDS = 5.0
BOOKING_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")  # used with fullmatch


def _store(host: Host, tenant: Tenant) -> BookingStore:
    # Imported here: the booking automation names this module's plan task, and imports stay one-way.
    from lily_host.builtins.booking_messages import store_for

    return store_for(host, tenant)


def _context(tenant: Tenant, booking: Booking) -> dict[str, str]:
    from lily_host.builtins.booking_messages import sms_context

    context = sms_context(tenant, booking)
    contact = tenant.contact_phone or tenant.contact_email or "this number"
    context["reschedule_link"] = tenant.reschedule_link or booking_link(tenant) or f"call us at {contact}"
    return context


# --- planning -------------------------------------------------------------------------------------------


async def plan_reminders(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Bring the chain's reminder tasks in line with the booking as it is now."""
    host = host_of(ctx.host)
    tenant = ctx.tenant
    uid = str(payload.get("uid") or "")
    if tenant is None or not uid:
        return
    state = await _store(host, tenant).state(tenant.id, uid)
    if state is None:
        ctx.log.warning("reminders: no record of this booking", uid=uid)
        return
    reminders = ReminderStore(host.redis, host.pii)
    if not await reminders.lock(tenant.id, state.root_uid, ctx.task_id):
        raise Defer("another reminder plan of this booking is running", until=ctx.now() + LOCK_RETRY_SECONDS)
    try:
        await _replan(ctx, host, tenant, state, reminders)
    finally:
        await reminders.unlock(tenant.id, state.root_uid, ctx.task_id)


async def _replan(ctx: TaskContext, host: Host, tenant: Tenant, state: BookingState, reminders: ReminderStore) -> None:
    root, booking = state.root_uid, state.booking
    start = booking.start.timestamp()
    previous = await reminders.state(tenant.id, root)
    wanted: dict[str, str] = {}
    if not state.cancelled and booking.customer_phone:
        wanted["start"] = repr(start)
        for offset in tenant.reminder_offsets_minutes:
            planned = plan(tenant, booking, offset, ctx.now())
            wanted[f"due:{offset}"] = repr(planned.due)
            if planned.at is None:
                wanted[f"skipped:{offset}"] = planned.reason
                continue
            same = previous.get("start") == repr(start) and previous.get(f"task:{offset}")
            if same and previous.get(f"at:{offset}") == repr(planned.at):
                wanted[f"task:{offset}"], wanted[f"at:{offset}"] = previous[f"task:{offset}"], repr(planned.at)
                continue
            task_id = await host.queue.schedule(
                SEND_TASK,
                {"root": root, "offset": offset, "start": start},
                tenant=tenant.id,
                run_at=planned.at,
                dedupe_key=f"reminder:{tenant.id}:{root}:{offset}:{start!r}:{planned.at!r}",
            )
            if task_id is not None:
                wanted[f"task:{offset}"], wanted[f"at:{offset}"] = task_id, repr(planned.at)
        if previous.get("start") == repr(start):
            for name in ("confirmed_at", *(key for key in previous if key.startswith("sent:"))):
                if name in previous:
                    wanted[name] = previous[name]
    # Reminder tasks of a moved or cancelled slot are cancelled, not left to find out when they run.
    for key, task_id in previous.items():
        if key.startswith("task:") and wanted.get(key) != task_id:
            await host.queue.cancel(task_id)
    ttl = max(3600, int(start - ctx.now())) + PLAN_GRACE_SECONDS
    await reminders.replace(tenant.id, root, wanted, ttl)
    ctx.log.info(
        "reminders planned",
        root=root,
        cancelled=state.cancelled,
        scheduled=sorted(key for key in wanted if key.startswith("task:")),
        skipped={key: value for key, value in wanted.items() if key.startswith("skipped:")},
    )


# --- sending -------------------------------------------------------------------------------------------


async def send_reminder(ctx: TaskContext, payload: dict[str, Any]) -> None:
    host = host_of(ctx.host)
    tenant = ctx.tenant
    root, offset, start = str(payload.get("root") or ""), payload.get("offset"), payload.get("start")
    if tenant is None or not isinstance(offset, int) or not isinstance(start, int | float):
        return
    state = await _store(host, tenant).state(tenant.id, root)
    if state is None or state.cancelled or state.booking.start.timestamp() != float(start):
        ctx.log.info("reminder dropped: the booking moved or was cancelled", root=root, offset=offset)
        return
    booking = state.booking
    if not booking.customer_phone or float(start) <= ctx.now():
        return
    reminders = ReminderStore(host.redis, host.pii)
    task_id = await host.messaging.queue_sms(
        tenant,
        booking.customer_phone,
        template=APPOINTMENT_REMINDER,
        context=_context(tenant, booking),
        dedupe_key=f"reminder:{root}:{offset}:{float(start)!r}",
        recipient_timezone=booking.timezone,
    )
    await reminders.await_reply(tenant.id, booking.customer_phone, root, float(start), ctx.now())
    await reminders.set(tenant.id, root, **{f"sent:{offset}": repr(ctx.now())})
    ctx.log.info("reminder queued", root=root, offset=offset, to=mask_phone(booking.customer_phone), task=task_id)


# --- replies (called by the host's inbound task, after compliance keywords) ----------------------------


def reply_word(body: str) -> str:
    return body.strip().strip(".!").strip().upper()


async def answer_reminder_reply(ctx: TaskContext, tenant: Tenant, sender: str, body: str, source: str) -> bool:
    """C / R (and their words) from a number with a reminder awaiting an answer; True if it was one."""
    word = reply_word(body)
    if word not in CONFIRM_WORDS and word not in RESCHEDULE_WORDS:
        return False
    host = host_of(ctx.host)
    reminders = ReminderStore(host.redis, host.pii)
    awaiting = await reminders.awaiting(tenant.id, sender)
    if awaiting is None:
        return False
    root = str(awaiting["root"])
    state = await _store(host, tenant).state(tenant.id, root)
    if state is None or state.cancelled or state.booking.start.timestamp() != float(awaiting["start"]):
        return False
    booking = state.booking
    context = _context(tenant, booking)
    if word in CONFIRM_WORDS:
        if not (await reminders.state(tenant.id, root)).get("confirmed_at"):
            await reminders.set(tenant.id, root, confirmed_at=repr(ctx.now()))
            await host.events.emit(
                BOOKING_CONFIRMED,
                {
                    "uid": state.current_uid,
                    "root_uid": root,
                    "start": booking.start.isoformat(),
                    "confirmed_at": ctx.now(),
                    "source": "sms_reply",
                },
                tenant=tenant.id,
            )
            await host.messaging.queue_sms(
                tenant,
                sender,
                template=APPOINTMENT_CONFIRMED_REPLY,
                context=context,
                dedupe_key=f"confirmed:{root}:{booking.start.timestamp()!r}",
                recipient_timezone=booking.timezone,
            )
        ctx.log.info("booking confirmed by reply", root=root)
    else:
        await host.messaging.queue_sms(
            tenant,
            sender,
            template=RESCHEDULE_REPLY,
            context=context,
            dedupe_key=f"reschedule-reply:{source}",
            recipient_timezone=booking.timezone,
        )
        ctx.log.info("reschedule link sent", root=root)
    return True


# --- "on my way" ----------------------------------------------------------------------------------------

reminders_api = Blueprint("lily_reminders", __name__)


@reminders_api.post("/<uid>/on-my-way")
@require_tenant
async def on_my_way(uid: str) -> Any:
    host = current_host()
    tenant: Tenant = g.tenant
    body: Any = {}
    if await request.get_data():
        if request.mimetype != "application/json":
            return problem(415, "unsupported_media_type", 'send {"eta_minutes": N} as JSON, or no body')
        try:
            body = loads_json(await request.get_data(as_text=False))
        except UntrustedInput as error:
            return problem(400, "invalid", str(error))
    if not isinstance(body, dict) or set(body) - {"eta_minutes"}:
        return problem(400, "invalid", 'the body must be empty or {"eta_minutes": 1-600}')
    eta = body.get("eta_minutes")
    if eta is not None and (isinstance(eta, bool) or not isinstance(eta, int) or not 1 <= eta <= 600):
        return problem(400, "invalid", "eta_minutes must be a whole number from 1 to 600")
    state = await _store(host, tenant).state(tenant.id, uid) if BOOKING_UID.fullmatch(uid) else None
    if state is None:
        return problem(404, "not_found", f"no booking {uid!r} for this tenant")
    if state.cancelled:
        return problem(409, "cancelled", "the booking is cancelled")
    booking = state.booking
    if not booking.customer_phone:
        return problem(409, "no_phone", "the booking has no customer phone number")
    context = _context(tenant, booking)
    context["eta_line"] = f", about {eta} minutes away" if eta else ""
    try:
        task_id = await host.messaging.queue_sms(
            tenant, booking.customer_phone, template=ON_MY_WAY, context=context, recipient_timezone=booking.timezone
        )
    except PermanentError as error:
        return problem(400, "invalid", error.reason)
    if task_id is None:
        return problem(409, "opted_out", "the customer opted out of texts from this business (STOP)")
    return jsonify({"uid": state.current_uid, "task_id": task_id, "status": "queued"}), 202


@reminders_api.get("/<uid>/reminders")
@require_tenant
async def show_reminders(uid: str) -> Any:
    host = current_host()
    state = await _store(host, g.tenant).state(g.tenant.id, uid) if BOOKING_UID.fullmatch(uid) else None
    if state is None:
        return problem(404, "not_found", f"no booking {uid!r} for this tenant")
    plan_state = await ReminderStore(host.redis, host.pii).state(g.tenant.id, state.root_uid)
    reminders = []
    for offset in sorted({int(key.split(":")[1]) for key in plan_state if key.startswith("due:")}, reverse=True):
        at = plan_state.get(f"at:{offset}")
        reminders.append(
            {
                "offset_minutes": offset,
                "due": float(plan_state[f"due:{offset}"]),
                "at": float(at) if at else None,
                "skipped": plan_state.get(f"skipped:{offset}"),
                "sent_at": float(plan_state[f"sent:{offset}"]) if plan_state.get(f"sent:{offset}") else None,
            }
        )
    confirmed = plan_state.get("confirmed_at")
    return jsonify(
        {
            "uid": state.current_uid,
            "start": state.booking.start.isoformat(),
            "when": format_when(state.booking.local_start()),
            "cancelled": state.cancelled,
            "confirmed_at": float(confirmed) if confirmed else None,
            "reminders": reminders,
        }
    )


# --- hooks -----------------------------------------------------------------------------------------------


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(PLAN_TASK, plan_reminders))
    # Held, not dropped, while the tenant's subscription is paused.
    register(TaskHandler(SEND_TASK, send_reminder, tenant_gated=True))


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(reminders_api, url_prefix="/api/bookings"))
