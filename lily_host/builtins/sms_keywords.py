"""Built-in plugin: the ``sms.send`` task and the compliance keywords (STOP / START / HELP).

Inbound texts reach the host as ``message.received`` events from whatever SMS plugin received
them; the keyword task reads them here, so every SMS provider gets the same opt-out handling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lily_host.observability.log import mask_phone
from lily_host.plugin_api.cli_output import Column, json_option, local_time, masked, print_listing
from lily_host.plugin_api.contract import EventSubscription, RetryPolicy, TaskContext, TaskHandler
from lily_host.plugin_api.event_names import MESSAGE_RECEIVED
from lily_host.plugin_api.markers import hookimpl
from lily_host.plugin_api.validators import normalize_e164
from lily_host.records import followup_registry as followups
from lily_host.runtime.host import host_of
from lily_host.sms.compliance import Keyword, classify_keyword
from lily_host.sms.consent_ledger import consent_history
from lily_host.sms.message_templates import HELP, OPT_IN_CONFIRMATION, OPT_OUT_CONFIRMATION
from lily_host.sms.outbound import SEND_TASK
from lily_host.sms.revocation import is_revocation

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant
    from lily_host.runtime.host import Host

KEYWORD_TASK = "sms.keywords"
T = TypeVar("T")

#: Provider outages last minutes, not seconds: retries after about 30 s, 1, 2 and 4 minutes.
SEND_RETRY = RetryPolicy(max_attempts=5, backoff_base=30.0, backoff_cap=900.0, jitter=5.0)


async def send_sms(ctx: TaskContext, payload: dict[str, Any]) -> None:
    await host_of(ctx.host).messaging.send_task(ctx, payload)


async def handle_keywords(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """STOP-words and revocation phrases suppress and confirm once; START-words lift a suppression and
    confirm; HELP-words get help. Every opt-in and opt-out lands in the consent ledger."""
    body = str(payload.get("body") or "")
    keyword = classify_keyword(body)
    phrase = keyword is None and is_revocation(body)
    if ctx.tenant_id is None:
        return
    try:
        sender = normalize_e164(str(payload.get("from") or ""))
    except ValueError:
        ctx.log.info("inbound text from a number that cannot be texted; ignored", keyword=keyword or "")
        return
    tenant = ctx.tenant
    if tenant is None:
        return
    # Any text from the customer (a reply, a question, STOP) stops the follow-ups waiting for them.
    cancelled = await followups.cancel_all(host_of(ctx.host), tenant.id, sender)
    if cancelled:
        ctx.log.info("follow-ups cancelled by the customer's text", follow_ups=cancelled)
    if keyword is None and not phrase:
        # Not a compliance message: maybe an answer to a reminder (C / R) or a quote (YES).
        await route_reply(ctx, tenant, sender, body, str(payload.get("message_sid") or ctx.task_id))
        return
    messaging = host_of(ctx.host).messaging
    # The inbound message id makes a redelivered keyword give the same answer and at most one reply.
    source = str(payload.get("message_sid") or ctx.task_id)
    reply_key = f"keyword-reply:{source}"
    word = body.strip().upper()
    if phrase or keyword is Keyword.OPT_OUT:
        # The phrase itself is customer text: the ledger and the list record only that it was one.
        reason = "phrase" if phrase else f"keyword:{word}"
        changed = await messaging.compliance.suppress(
            tenant.id, sender, reason=reason, at=ctx.now(), source_id=source, source="phrase" if phrase else "keyword"
        )
        ctx.log.info("opt-out", to=mask_phone(sender), reason=reason, newly_suppressed=changed)
        if changed:
            await messaging.queue_sms(
                tenant, sender, template=OPT_OUT_CONFIRMATION, kind="confirmation", dedupe_key=reply_key
            )
    elif keyword is Keyword.OPT_IN:
        changed = await messaging.compliance.unsuppress(
            tenant.id, sender, source_id=source, at=ctx.now(), source="keyword", detail=word
        )
        ctx.log.info("opt-in keyword", to=mask_phone(sender), keyword=word, was_suppressed=changed)
        # "YES" is also an everyday answer: only someone who had opted out gets a resubscribe confirmation;
        # from anyone else it is a reply (confirming a visit, accepting a quote).
        if changed:
            await messaging.queue_sms(
                tenant, sender, template=OPT_IN_CONFIRMATION, kind="confirmation", dedupe_key=reply_key
            )
        elif word == "YES":
            await route_reply(ctx, tenant, sender, body, source)
    else:
        await messaging.queue_sms(tenant, sender, template=HELP, kind="confirmation", dedupe_key=reply_key)


async def route_reply(ctx: TaskContext, tenant: Tenant, sender: str, body: str, source: str) -> bool:
    """Answers to what Lily asked the customer (after compliance, in the same task, so never colliding).

    C / R answer a reminder; YES accepts a quote or confirms a visit: whichever was asked last.
    """
    from lily_host.builtins.appointment_reminders import answer_reminder_reply
    from lily_host.builtins.quote_texts import answer_quote_reply
    from lily_host.records.quote_store import QuoteStore
    from lily_host.sms.reminder_store import ReminderStore

    host = host_of(ctx.host)
    quote_asked = await QuoteStore(host.redis, host.pii).awaiting(tenant.id, sender)
    reminder_asked = await ReminderStore(host.redis, host.pii).awaiting(tenant.id, sender)
    reminder_first = reminder_asked is not None and (
        quote_asked is None or float(reminder_asked.get("at", 0)) > float(quote_asked.get("at", 0))
    )

    async def quote() -> bool:
        return await answer_quote_reply(ctx, tenant, sender, body)

    async def reminder() -> bool:
        return await answer_reminder_reply(ctx, tenant, sender, body, source)

    for answer in (reminder, quote) if reminder_first else (quote, reminder):
        if await answer():
            return True
    return False


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(SEND_TASK, send_sms, retry=SEND_RETRY))
    register(TaskHandler(KEYWORD_TASK, handle_keywords))


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    register(EventSubscription(MESSAGE_RECEIVED, KEYWORD_TASK))


# --- CLI ---------------------------------------------------------------------------------------------


@click.group("sms", help="A tenant's texts and suppression list.")
def sms_cli() -> None:
    """Group of SMS commands."""


#: Message fields stored as text that are numbers: ``--json`` gives them as numbers.
_NUMERIC_FIELDS = frozenset({"created_at", "updated_at", "delivered_at", "length", "segments", "status_rank"})


def _typed(record: dict[str, Any]) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for name, value in record.items():
        if name in _NUMERIC_FIELDS and value != "":
            number = float(value)
            typed[name] = int(number) if number.is_integer() and not name.endswith("_at") else number
        else:
            typed[name] = value
    return typed


@sms_cli.command("messages", help="The tenant's latest texts, newest first (numbers masked).")
@click.argument("tenant_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500), help="Show at most this many.")
@json_option
def messages_command(tenant_id: str, limit: int, as_json: bool) -> None:
    from lily_host.plugin_api.commands import with_host

    async def work(host: Host) -> list[dict[str, Any]]:
        await host.tenants.require(tenant_id)
        return [_typed(record.as_dict()) for record in await host.messaging.recent(tenant_id, limit)]

    columns = [
        Column("time", lambda m: local_time(m.get("created_at"))),
        Column("to", lambda m: masked(m.get("to"))),
        Column("status", lambda m: m.get("status")),
        Column("kind", lambda m: m.get("kind")),
        Column("template", lambda m: m.get("template")),
        Column("body", lambda m: m.get("body"), width=60),
    ]
    print_listing(with_host(work), columns, as_json=as_json, empty=f"no texts for {tenant_id} yet")


@sms_cli.command(
    "suppressed",
    help="Numbers that opted out of the tenant's texts (masked; --json gives them in full, e.g. for unsuppress).",
)
@click.argument("tenant_id")
@json_option
def suppressed_command(tenant_id: str, as_json: bool) -> None:
    from lily_host.plugin_api.commands import with_host

    async def work(host: Host) -> dict[str, dict[str, Any]]:
        await host.tenants.require(tenant_id)
        return await host.messaging.compliance.suppressed(tenant_id)

    rows = [{"number": number, **entry} for number, entry in sorted(with_host(work).items())]
    columns = [
        Column("number", lambda r: masked(r["number"])),
        Column("reason", lambda r: r.get("reason")),
        Column("since", lambda r: local_time(r.get("at"))),
    ]
    print_listing(rows, columns, as_json=as_json, empty=f"no suppressed numbers for {tenant_id}")


@sms_cli.command("suppress", help="Stop texting NUMBER for the tenant (e.g. the customer asked by phone).")
@click.argument("tenant_id")
@click.argument("number")
def suppress_command(tenant_id: str, number: str) -> None:
    from lily_host.plugin_api.commands import with_host

    async def work(host: Host) -> bool:
        await host.tenants.require(tenant_id)
        return await host.messaging.compliance.suppress(tenant_id, number, reason="manual", at=host.clock.now())

    changed = _run_with_number(lambda: with_host(work))
    click.echo(f"{mask_phone(number)} {'suppressed' if changed else 'was already suppressed'} for {tenant_id}")


@sms_cli.command(
    "unsuppress", help="Text NUMBER again. Only with the customer's consent; START by text does this itself."
)
@click.argument("tenant_id")
@click.argument("number")
def unsuppress_command(tenant_id: str, number: str) -> None:
    from lily_host.plugin_api.commands import with_host

    async def work(host: Host) -> bool:
        await host.tenants.require(tenant_id)
        return await host.messaging.compliance.unsuppress(tenant_id, number, at=host.clock.now())

    changed = _run_with_number(lambda: with_host(work))
    click.echo(f"{mask_phone(number)} {'removed from' if changed else 'was not on'} {tenant_id}'s suppression list")


@sms_cli.command(
    "consent", help="Every opt-in and opt-out of NUMBER (all tenants, or --tenant), with source and time, as JSON."
)
@click.argument("number")
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's entries.")
def consent_command(number: str, tenant_id: str | None) -> None:
    from lily_host.plugin_api.cli_output import echo_json
    from lily_host.plugin_api.commands import with_host

    async def work(host: Host) -> dict[str, Any]:
        history = await consent_history(host.redis, host.pii, number, tenant_id)
        return {"number": mask_phone(normalize_e164(number)), "entries": history}

    echo_json(_run_with_number(lambda: with_host(work)))


def _run_with_number(run: Callable[[], T]) -> T:
    try:
        return run()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="NUMBER") from error


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(sms_cli)
