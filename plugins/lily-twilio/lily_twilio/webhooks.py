"""Twilio's three webhooks: voice callbacks, inbound SMS/MMS and outbound message status.

Each one is verified with the SDK's RequestValidator against the public URL Twilio called, resolves
the tenant by the business number (or, for status callbacks, by the tenant the callback URL names),
is deduplicated on a Twilio id, and only emits events or schedules tasks: no provider call and no
state change happens while Twilio waits for the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from lily_host import WebhookContext, WebhookEndpoint, WebhookRequest, WebhookResponse
from lily_twilio.payloads import (
    CallUpdate,
    InboundMessage,
    MessageStatus,
    parse_call,
    parse_inbound_message,
    parse_message_status,
    textable,
)
from lily_twilio.signature import verify_signature
from lily_twilio.tasks import STATUS_TASK

if TYPE_CHECKING:
    from lily_host import Tenant, TenantDirectory

FORM = "application/x-www-form-urlencoded"
#: Twilio's own request limit is far below this; anything bigger is not Twilio.
MAX_BODY = 64 * 1024


TWIML = "text/xml; charset=utf-8"


def twiml(document: VoiceResponse | MessagingResponse) -> WebhookResponse:
    return WebhookResponse(str(document).encode(), 200, TWIML)


#: Most callbacks answer with nothing to say: rendered once, and the same immutable answer shared.
EMPTY_VOICE_TWIML = twiml(VoiceResponse())
EMPTY_MESSAGING_TWIML = twiml(MessagingResponse())


class _TwilioWebhook(WebhookEndpoint):
    integration = "twilio"
    content_types = (FORM,)
    max_body_bytes = MAX_BODY

    def verify(self, request: WebhookRequest, payload: Any, tenant: Tenant | None) -> None:
        verify_signature(request.settings, request.public_url, request.body, request.headers, request.form_lists())


class VoiceWebhook(_TwilioWebhook):
    """Call status callbacks and ``<Dial action>`` callbacks; a missed call becomes ``call.missed``."""

    path = "/webhooks/twilio/voice"

    def parse(self, request: WebhookRequest) -> CallUpdate:
        return parse_call(request.form())

    async def resolve_tenant(
        self, request: WebhookRequest, payload: CallUpdate, tenants: TenantDirectory
    ) -> Tenant | None:
        return await tenants.resolve("phone", payload.business_number)

    def delivery_id(self, request: WebhookRequest, payload: CallUpdate) -> str:
        return payload.delivery_id

    async def handle(self, request: WebhookRequest, payload: CallUpdate, ctx: WebhookContext) -> WebhookResponse:
        if payload.missed:
            caller = textable(payload.caller)
            if caller is None:
                ctx.log.info("twilio.missed_call_hidden_caller", call_sid=payload.call_sid, status=payload.status)
            else:
                ctx.emit("call.missed", {**payload.event(), "caller": caller})
                # The log processor masks ``caller`` (a phone key), only when the line is written.
                ctx.log.info("twilio.missed_call", call_sid=payload.call_sid, status=payload.status, caller=caller)
        return EMPTY_VOICE_TWIML

    def duplicate_response(self, request: WebhookRequest, payload: CallUpdate) -> WebhookResponse:
        return EMPTY_VOICE_TWIML


class SmsWebhook(_TwilioWebhook):
    """Inbound SMS/MMS: ``message.received``; the host's compliance reads STOP/HELP/START from it."""

    path = "/webhooks/twilio/sms"

    def parse(self, request: WebhookRequest) -> InboundMessage:
        return parse_inbound_message(request.form())

    async def resolve_tenant(
        self, request: WebhookRequest, payload: InboundMessage, tenants: TenantDirectory
    ) -> Tenant | None:
        return await tenants.resolve("phone", payload.business_number)

    def delivery_id(self, request: WebhookRequest, payload: InboundMessage) -> str:
        return payload.message_sid

    async def handle(self, request: WebhookRequest, payload: InboundMessage, ctx: WebhookContext) -> WebhookResponse:
        ctx.emit("message.received", payload.event())
        return EMPTY_MESSAGING_TWIML

    def duplicate_response(self, request: WebhookRequest, payload: InboundMessage) -> WebhookResponse:
        return EMPTY_MESSAGING_TWIML


class StatusWebhook(_TwilioWebhook):
    """Outbound message status callbacks. The URL carries ``?tenant=<id>`` (inside the signed URL)."""

    path = "/webhooks/twilio/status"

    def parse(self, request: WebhookRequest) -> MessageStatus:
        return parse_message_status(request.form())

    async def resolve_tenant(
        self, request: WebhookRequest, payload: MessageStatus, tenants: TenantDirectory
    ) -> Tenant | None:
        tenant_ids = parse_qs(request.query_string).get("tenant", [])
        if len(tenant_ids) != 1 or not tenant_ids[0]:
            return None
        return await tenants.get(tenant_ids[0])

    def delivery_id(self, request: WebhookRequest, payload: MessageStatus) -> str:
        return payload.delivery_id

    async def handle(self, request: WebhookRequest, payload: MessageStatus, ctx: WebhookContext) -> None:
        ctx.schedule(
            STATUS_TASK,
            {
                "message_sid": payload.message_sid,
                "status": payload.status,
                "error_code": payload.error_code,
            },
        )
