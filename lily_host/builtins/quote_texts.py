"""Built-in plugin: quotes sent by text, their short link, acceptance, and one optional follow-up.

- ``POST /api/quotes/<id>/send`` (tenant API key)::

      {"amount": "250.00", "description": "driveway wash", "link": "https://...",   # link optional
       "to": "+1555..."}            # or "conversation": "<conversation id>" (the inbox's)

  texts the tenant's ``quote_sent`` template with a short link ``<public URL>/q/<token>``; 202 with
  the quote, 409 when the customer opted out. ``GET /api/quotes/<id>/status`` shows the record.
- ``GET /q/<token>``: the customer's page (amount, description, the business's link, an accept
  button); the first visit marks the quote ``viewed``. ``POST /q/<token>/accept`` accepts it.
- A ``YES`` reply from the customer accepts the quote they were last sent (when a reminder was sent
  to them later, the YES confirms that visit instead: the latest question gets the answer).
- Accepting (either way) emits ``quote.accepted`` once, cancels the follow-up and texts a thank-you.
- ``tenant.quote_follow_up_days`` (default off): one ``quote_follow_up`` text that many days later,
  cancelled by any text from the customer (a reply, STOP), by acceptance, or by sending the quote again.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quart import Blueprint, Response, g, jsonify, request

from lily_host.observability.log import mask_phone
from lily_host.plugin_api.contract import Routes, TaskContext, TaskHandler
from lily_host.plugin_api.errors import PermanentError
from lily_host.plugin_api.event_names import QUOTE_ACCEPTED
from lily_host.plugin_api.json_problem import problem
from lily_host.plugin_api.markers import hookimpl
from lily_host.plugin_api.route_auth import require_tenant
from lily_host.plugin_api.untrusted import UntrustedInput, loads_json
from lily_host.plugin_api.validators import normalize_e164
from lily_host.records import followup_registry as followups
from lily_host.records.quote_store import QUOTE_ID, Quote, QuoteStore, format_amount, parse_amount
from lily_host.runtime.host import Host, current_host, host_of
from lily_host.sms.message_templates import QUOTE_ACCEPTED_REPLY, QUOTE_FOLLOW_UP, QUOTE_SENT

if TYPE_CHECKING:
    from lily_host.plugin_api.tenant import Tenant

FOLLOW_UP_TASK = "quotes.follow_up"
KIND = "quote"
MAX_DESCRIPTION = 200
ACCEPT_WORDS = frozenset({"YES", "Y"})


def _context(host: Host, tenant: Tenant, quote: Quote) -> dict[str, str]:
    return {
        "description": quote.fields.get("description", ""),
        "amount": format_amount(quote.fields.get("amount", "0")),
        "quote_link": host.public_url(f"/q/{quote.fields.get('token', '')}"),
    }


async def accept_quote(host: Host, tenant: Tenant, quote: Quote, via: str) -> bool:
    """Accept ``quote`` (once): ``quote.accepted``, the follow-up cancelled, a thank-you text."""
    store = QuoteStore(host.redis, host.pii)
    if not await store.accept(quote, via, host.clock.now()):
        return False
    customer = store.customer(quote)
    await followups.cancel(host, tenant.id, customer, KIND, quote.id)
    await host.events.emit(
        QUOTE_ACCEPTED,
        {
            "quote_id": quote.id,
            "amount": quote.fields.get("amount"),
            "description": quote.fields.get("description"),
            "accepted_via": via,
            "accepted_at": host.clock.now(),
        },
        tenant=tenant.id,
    )
    await host.messaging.queue_sms(
        tenant,
        customer,
        template=QUOTE_ACCEPTED_REPLY,
        context=_context(host, tenant, quote),
        dedupe_key=f"quote-accepted:{quote.id}:{quote.fields.get('token')}",
    )
    return True


async def answer_quote_reply(ctx: TaskContext, tenant: Tenant, sender: str, body: str) -> bool:
    """A YES from a number that was sent a quote; True if it accepted (or had accepted) one."""
    if body.strip().strip(".!").strip().upper() not in ACCEPT_WORDS:
        return False
    host = host_of(ctx.host)
    store = QuoteStore(host.redis, host.pii)
    awaiting = await store.awaiting(tenant.id, sender)
    if awaiting is None:
        return False
    quote = await store.get(tenant.id, str(awaiting["id"]))
    if quote is None:
        return False
    accepted = await accept_quote(host, tenant, quote, "reply")
    ctx.log.info("quote answered by reply", quote_id=quote.id, newly_accepted=accepted)
    return True


async def send_follow_up(ctx: TaskContext, payload: dict[str, Any]) -> None:
    host = host_of(ctx.host)
    tenant = ctx.tenant
    quote_id, token = str(payload.get("quote_id") or ""), str(payload.get("token") or "")
    if tenant is None:
        return
    store = QuoteStore(host.redis, host.pii)
    quote = await store.get(tenant.id, quote_id)
    if quote is None or quote.fields.get("token") != token or quote.status == "accepted":
        return
    customer = store.customer(quote)
    if not await followups.is_pending(host, tenant.id, customer, KIND, quote_id, ctx.task_id):
        ctx.log.info("quote follow-up cancelled by the customer's reply", quote_id=quote_id)
        return
    await host.messaging.queue_sms(
        tenant,
        customer,
        template=QUOTE_FOLLOW_UP,
        context=_context(host, tenant, quote),
        dedupe_key=f"quote-follow-up:{quote_id}:{token}",
    )
    await followups.done(host, tenant.id, customer, KIND, quote_id)
    await store.set(tenant.id, quote_id, follow_up_sent_at=repr(ctx.now()))
    ctx.log.info("quote follow-up queued", quote_id=quote_id, to=mask_phone(customer))


# --- tenant API ----------------------------------------------------------------------------------------

quotes_api = Blueprint("lily_quotes", __name__)
quote_pages = Blueprint("lily_quote_pages", __name__)


@quotes_api.post("/<quote_id>/send")
@require_tenant
async def send_quote(quote_id: str) -> Any:
    host = current_host()
    tenant: Tenant = g.tenant
    if not QUOTE_ID.fullmatch(quote_id):
        return problem(400, "invalid", "quote id must be 1-128 letters, digits and . _ : -")
    if request.mimetype != "application/json":
        return problem(415, "unsupported_media_type", "send the quote as JSON (Content-Type: application/json)")
    try:
        body = loads_json(await request.get_data(as_text=False))
    except UntrustedInput as error:
        return problem(400, "invalid", str(error))
    allowed = {"amount", "description", "link", "to", "conversation"}
    if not isinstance(body, dict) or set(body) - allowed:
        return problem(400, "invalid", f"the body must be a JSON object with: {', '.join(sorted(allowed))}")
    try:
        amount = parse_amount(body.get("amount"))
    except ValueError as error:
        return problem(400, "invalid", str(error))
    description = body.get("description")
    if not isinstance(description, str) or not 1 <= len(description.strip()) <= MAX_DESCRIPTION:
        return problem(400, "invalid", f"description must be 1 to {MAX_DESCRIPTION} characters")
    link = body.get("link") or ""
    if not isinstance(link, str) or (link and not link.startswith(("https://", "http://"))):
        return problem(400, "invalid", "link must be an http(s) URL")
    to, conversation = body.get("to"), body.get("conversation")
    if (to is None) == (conversation is None):
        return problem(400, "invalid", "give the customer as either 'to' (E.164) or 'conversation' (its id)")
    if conversation is not None:
        found = (
            await host.messaging.conversations.get(tenant.id, conversation) if isinstance(conversation, str) else None
        )
        if found is None:
            return problem(404, "not_found", f"no conversation {conversation!r} for this tenant")
        number = found.number
    else:
        try:
            number = normalize_e164(str(to))
        except ValueError as error:
            return problem(400, "invalid", f"to: {error}")
    if await host.messaging.compliance.is_suppressed(tenant.id, number):
        return problem(409, "opted_out", "the customer opted out of texts from this business (STOP)")

    try:
        sent = await text_quote(host, tenant, quote_id, number, amount, description.strip(), link)
    except PermanentError as error:
        return problem(400, "invalid", error.reason)
    if sent is None:
        return problem(409, "opted_out", "the customer opted out of texts from this business (STOP)")
    return jsonify({**sent.public_view(), "short_link": _context(host, tenant, sent)["quote_link"]}), 202


async def text_quote(
    host: Host, tenant: Tenant, quote_id: str, number: str, amount: Decimal, description: str, link: str
) -> Quote | None:
    """Record the quote and text it (the API and ``lily simulate lily.quote_flow``); None if opted out.

    PermanentError for a template or number the pipeline refuses.
    """
    store = QuoteStore(host.redis, host.pii)
    now = host.clock.now()
    ttl = tenant.retention_days * 86400
    previous = await store.get(tenant.id, quote_id)
    if previous is not None:
        # Sent again: the old link and follow-up are replaced by the new ones.
        await followups.cancel(host, tenant.id, store.customer(previous), KIND, quote_id)
    quote = await store.create(
        tenant.id, quote_id, to=number, amount=amount, description=description, link=link, now=now, ttl=ttl
    )
    task_id = await host.messaging.queue_sms(tenant, number, template=QUOTE_SENT, context=_context(host, tenant, quote))
    if task_id is None:
        return None
    await store.await_reply(tenant.id, number, quote_id, now, ttl)
    if tenant.quote_follow_up_days:
        due = now + tenant.quote_follow_up_days * 86400
        follow_up = await host.queue.schedule(
            FOLLOW_UP_TASK,
            {"quote_id": quote_id, "token": quote.fields["token"]},
            tenant=tenant.id,
            run_at=due,
            dedupe_key=f"quote-follow-up:{tenant.id}:{quote_id}:{quote.fields['token']}",
        )
        if follow_up is not None:
            await followups.register(host, tenant.id, number, KIND, quote_id, follow_up, due)
            await store.set(tenant.id, quote_id, follow_up_due=repr(due))
    await store.set(tenant.id, quote_id, message_task=task_id)
    return await store.get(tenant.id, quote_id)


@quotes_api.get("/<quote_id>/status")
@require_tenant
async def quote_status(quote_id: str) -> Any:
    quote = (
        await QuoteStore(current_host().redis, current_host().pii).get(g.tenant.id, quote_id)
        if QUOTE_ID.fullmatch(quote_id)
        else None
    )
    if quote is None:
        return problem(404, "not_found", f"no quote {quote_id!r} was sent by this tenant")
    return jsonify(quote.public_view())


# --- the customer's page ---------------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> Response:
    document = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        '<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem">'
        f"{body}</body></html>"
    )
    return Response(document, status=status, content_type="text/html; charset=utf-8")


async def _quote_for_page(token: str) -> tuple[Tenant, Quote] | None:
    host = current_host()
    quote = await QuoteStore(host.redis, host.pii).by_token(token)
    if quote is None:
        return None
    tenant = await host.tenants.get(quote.tenant)
    return None if tenant is None else (tenant, quote)


@quote_pages.get("/<token>")
async def show_quote(token: str) -> Response:
    found = await _quote_for_page(token)
    if found is None:
        return _page("Quote not found", "<h1>Quote not found</h1><p>This link is no longer valid.</p>", 404)
    tenant, quote = found
    host = current_host()
    await QuoteStore(host.redis, host.pii).mark_viewed(quote, host.clock.now())
    amount = html.escape(format_amount(quote.fields.get("amount", "0")))
    description = html.escape(quote.fields.get("description", ""))
    link = quote.fields.get("link")
    details = f'<p><a href="{html.escape(link)}">See the full quote</a></p>' if link else ""
    if quote.status == "accepted":
        action = "<p><strong>Accepted.</strong> Thank you!</p>"
    else:
        action = (
            f'<form method=post action="/q/{html.escape(token)}/accept">'
            '<button type=submit style="font-size:1.2rem;padding:.6rem 1.4rem">Accept quote</button></form>'
            "<p>Or reply YES to our text.</p>"
        )
    body = (
        f"<h1>{html.escape(tenant.name)}</h1><p>Quote for {description}</p>"
        f'<p style="font-size:2rem;margin:.5rem 0">{amount}</p>{details}{action}'
    )
    return _page(f"Quote from {tenant.name}", body)


@quote_pages.post("/<token>/accept")
async def accept_from_page(token: str) -> Response:
    found = await _quote_for_page(token)
    if found is None:
        return _page("Quote not found", "<h1>Quote not found</h1><p>This link is no longer valid.</p>", 404)
    tenant, quote = found
    await accept_quote(current_host(), tenant, quote, "link")
    return _page(
        "Quote accepted", f"<h1>Thank you!</h1><p>{html.escape(tenant.name)} will be in touch to schedule.</p>"
    )


# --- hooks -----------------------------------------------------------------------------------------------


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(FOLLOW_UP_TASK, send_follow_up, tenant_gated=True))


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(quotes_api, url_prefix="/api/quotes"))
    register(Routes(quote_pages, url_prefix="/q"))
