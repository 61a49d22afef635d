"""Built-in plugin: the two-way text inbox (:mod:`lily_host.sms.conversation_store`) and its tenant API.

- ``message.received`` → ``conversations.inbound`` records the customer's text (body, media, time);
- ``quote.photos_received`` (lily-s3) → ``conversations.quote`` links the quote built from the photos;
- tenant API (tenant API key), under ``/api/conversations``:

  - ``GET  /api/conversations[?limit=50]``            unread first, then by latest activity
  - ``GET  /api/conversations/<id>[?limit=500]``      one conversation and its texts, oldest first
  - ``POST /api/conversations/<id>/messages``         ``{"body": "..."}``: reply (through the one
    SMS pipeline: suppression, quiet hours, caps); 202, or 409 when the customer opted out
  - ``POST /api/conversations/<id>/read``             mark read

A reply is sent with the tenant's ``conversation_reply`` template (default: the body as written).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, g, jsonify, request

from lily_host.observability.log import mask_phone
from lily_host.plugin_api.contract import EventSubscription, Routes, TaskContext, TaskHandler
from lily_host.plugin_api.errors import PermanentError
from lily_host.plugin_api.event_names import MESSAGE_RECEIVED, QUOTE_PHOTOS_RECEIVED
from lily_host.plugin_api.json_problem import problem
from lily_host.plugin_api.markers import hookimpl
from lily_host.plugin_api.route_auth import require_tenant
from lily_host.plugin_api.untrusted import UntrustedInput, ascii_int, loads_json
from lily_host.plugin_api.validators import normalize_e164
from lily_host.runtime.host import current_host, host_of
from lily_host.sms.message_templates import CONVERSATION_REPLY

INBOUND_TASK = "conversations.inbound"
QUOTE_TASK = "conversations.quote"
#: Longest reply body accepted (ten SMS segments of GSM-7).
MAX_REPLY_CHARS = 1530
CONVERSATION_ID_CHARS = 32


async def record_inbound(ctx: TaskContext, payload: dict[str, Any]) -> None:
    tenant = ctx.tenant
    if tenant is None:
        return
    try:
        sender = normalize_e164(str(payload.get("from") or ""))
    except ValueError:
        ctx.log.info("inbound text from a number that cannot be texted back; not kept")
        return
    body = str(payload.get("body") or "")
    raw_media = payload.get("media")
    media: list[Any] = raw_media if isinstance(raw_media, list) else []
    message_id = str(payload.get("message_sid") or ctx.task_id)
    content_types = [
        str(item.get("content_type") or "application/octet-stream") for item in media if isinstance(item, dict)
    ]
    cid = await host_of(ctx.host).messaging.conversations.record(
        tenant,
        sender,
        direction="in",
        body=body,
        at=ctx.now(),
        message_id=message_id,
        extra={"media": content_types} if content_types else None,
    )
    ctx.log.info("inbound text kept", sender=mask_phone(sender), conversation=cid, media=len(content_types))


async def link_quote(ctx: TaskContext, payload: dict[str, Any]) -> None:
    if ctx.tenant_id is None:
        return
    quote_id, message_sid, customer = payload.get("quote_id"), payload.get("message_sid"), payload.get("from")
    if not all(isinstance(value, str) and value for value in (quote_id, message_sid, customer)):
        raise PermanentError("quote.photos_received needs quote_id, message_sid and from", code="invalid_event")
    try:
        await host_of(ctx.host).messaging.conversations.link_quote(
            ctx.tenant_id, str(customer), str(message_sid), str(quote_id)
        )
    except ValueError as error:
        raise PermanentError(f"quote.photos_received: {error}", code="invalid_event") from error


# --- tenant API ----------------------------------------------------------------------------------------

conversations_api = Blueprint("lily_conversations", __name__)


def _limit(default: int, maximum: int) -> int | None:
    try:
        limit = ascii_int(request.args.get("limit"), name="limit")
    except UntrustedInput:
        return None
    if limit is None:
        return default
    return limit if 1 <= limit <= maximum else None


def _valid_id(cid: str) -> bool:
    return len(cid) == CONVERSATION_ID_CHARS and all(char in "0123456789abcdef" for char in cid)


@conversations_api.get("")
@require_tenant
async def list_conversations() -> Any:
    limit = _limit(50, 200)
    if limit is None:
        return problem(400, "invalid", "limit must be a whole number from 1 to 200")
    store = current_host().messaging.conversations
    return jsonify({"conversations": [item.as_dict() for item in await store.listing(g.tenant.id, limit)]})


@conversations_api.get("/<cid>")
@require_tenant
async def show_conversation(cid: str) -> Any:
    limit = _limit(500, 500)
    if limit is None:
        return problem(400, "invalid", "limit must be a whole number from 1 to 500")
    store = current_host().messaging.conversations
    conversation = await store.get(g.tenant.id, cid) if _valid_id(cid) else None
    if conversation is None:
        return problem(404, "not_found", f"no conversation {cid!r} for this tenant")
    messages = await store.messages(g.tenant.id, cid, limit)
    return jsonify({"conversation": conversation.as_dict(), "messages": messages})


@conversations_api.post("/<cid>/messages")
@require_tenant
async def reply(cid: str) -> Any:
    host = current_host()
    store = host.messaging.conversations
    conversation = await store.get(g.tenant.id, cid) if _valid_id(cid) else None
    if conversation is None:
        return problem(404, "not_found", f"no conversation {cid!r} for this tenant")
    if request.mimetype != "application/json":
        return problem(415, "unsupported_media_type", 'send {"body": "..."} with Content-Type: application/json')
    try:
        body = loads_json(await request.get_data(as_text=False))
    except UntrustedInput as error:
        return problem(400, "invalid", str(error))
    if not isinstance(body, dict) or set(body) != {"body"} or not isinstance(body["body"], str):
        return problem(400, "invalid", 'the body must be {"body": "<text of the reply>"}')
    text = body["body"].strip()
    if not text or len(text) > MAX_REPLY_CHARS:
        return problem(400, "invalid", f"body must be 1 to {MAX_REPLY_CHARS} characters")
    if await host.messaging.compliance.is_suppressed(g.tenant.id, conversation.number):
        return problem(409, "opted_out", "the customer opted out of texts from this business (STOP)")
    try:
        task_id = await host.messaging.queue_sms(
            g.tenant, conversation.number, template=CONVERSATION_REPLY, context={"body": text}
        )
    except PermanentError as error:
        return problem(400, "invalid", error.reason)
    if task_id is None:
        return problem(409, "opted_out", "the customer opted out of texts from this business (STOP)")
    # Answering a conversation means it has been read.
    await store.mark_read(g.tenant.id, cid)
    return jsonify({"conversation": cid, "task_id": task_id, "status": "queued"}), 202


@conversations_api.post("/<cid>/read")
@require_tenant
async def mark_read(cid: str) -> Any:
    store = current_host().messaging.conversations
    if not _valid_id(cid) or not await store.mark_read(g.tenant.id, cid):
        return problem(404, "not_found", f"no conversation {cid!r} for this tenant")
    return jsonify({"conversation": cid, "unread": 0})


# --- hooks -----------------------------------------------------------------------------------------------


@hookimpl
def register_tasks(register: Callable[[TaskHandler], None]) -> None:
    register(TaskHandler(INBOUND_TASK, record_inbound))
    register(TaskHandler(QUOTE_TASK, link_quote))


@hookimpl
def register_event_subscriptions(register: Callable[[EventSubscription], None]) -> None:
    register(EventSubscription(MESSAGE_RECEIVED, INBOUND_TASK))
    register(EventSubscription(QUOTE_PHOTOS_RECEIVED, QUOTE_TASK))


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(conversations_api, url_prefix="/api/conversations"))
