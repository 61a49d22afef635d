"""``POST /webhooks/chatwoot``: Chatwoot's account webhooks. A customer's message that hits a
tenant's keyword rule schedules a reply; everything else is answered 200 and left alone.

Chatwoot sends every subscribed event of an account to the same URL, and Lily's own replies come
back as ``message_created`` too (outgoing, sent by the agent whose token Lily used): only
*incoming*, public messages from a contact are answered, so Lily never talks to itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lily_chatwoot import signature
from lily_chatwoot.rules import choose_reply
from lily_chatwoot.settings import PLUGIN, ChatwootSettings, ChatwootTenantSettings
from lily_host import (
    BadSignature,
    InvalidPayload,
    Tenant,
    TenantDirectory,
    WebhookContext,
    WebhookEndpoint,
    WebhookRequest,
    WebhookResponse,
    get_logger,
)

REPLY_TASK = f"{PLUGIN}.send_reply"


@dataclass(frozen=True)
class Delivery:
    """The parts of a Chatwoot webhook Lily reads."""

    event: str
    account_id: str
    message_id: str | None
    #: ``incoming`` (from the contact), ``outgoing`` (an agent, a bot, Lily), ``activity``, ``template``.
    message_type: str | None
    private: bool
    sender_type: str | None
    content: str
    #: The conversation's number in the account (the ``display_id`` the API's URLs use).
    conversation: str | None

    @property
    def from_customer(self) -> bool:
        """A public message the contact wrote (not an agent's reply, a private note, or an activity)."""
        return (
            self.event == "message_created"
            and self.message_type == "incoming"
            and not self.private
            and self.sender_type in (None, "contact")
            and self.message_id is not None
            and self.conversation is not None
        )


#: Older Chatwoot payloads number message types (Message.message_type's enum).
MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}


def _id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # not "²"
        return value.strip()
    return None


def parse_delivery(payload: Any) -> Delivery:
    if not isinstance(payload, dict):
        raise InvalidPayload("expected a JSON object (a Chatwoot webhook)")
    event = payload.get("event")
    if not isinstance(event, str) or not event:
        raise InvalidPayload("'event' is missing: not a Chatwoot webhook")
    account = payload.get("account")
    account_id = _id(account.get("id")) if isinstance(account, dict) else None
    if account_id is None:
        raise InvalidPayload("'account.id' is missing: Chatwoot names the account in every webhook")
    message_type = payload.get("message_type")
    if isinstance(message_type, int):
        message_type = MESSAGE_TYPES.get(message_type)
    conversation = payload.get("conversation")
    sender = payload.get("sender")
    content = payload.get("content")
    return Delivery(
        event=event,
        account_id=account_id,
        message_id=_id(payload.get("id")),
        message_type=message_type if isinstance(message_type, str) else None,
        private=payload.get("private") is True,
        sender_type=sender.get("type") if isinstance(sender, dict) and isinstance(sender.get("type"), str) else None,
        content=content if isinstance(content, str) else "",
        conversation=_id(conversation.get("display_id")) if isinstance(conversation, dict) else None,
    )


def _answer(**fields: Any) -> WebhookResponse:
    return WebhookResponse.json({"ok": True, **fields})


IGNORED = _answer(replied=False)


log = get_logger("lily.chatwoot")


class ChatwootWebhook(WebhookEndpoint):
    path = "/webhooks/chatwoot"
    integration = PLUGIN

    def parse(self, request: WebhookRequest) -> Delivery:
        return parse_delivery(request.json())

    async def resolve_tenant(
        self, request: WebhookRequest, payload: Delivery, tenants: TenantDirectory
    ) -> Tenant | None:
        return await tenants.resolve("chatwoot_account", payload.account_id)

    def verify(self, request: WebhookRequest, payload: Delivery, tenant: Tenant | None) -> None:
        own = tenant.plugin_settings if tenant is not None else None
        if not isinstance(own, ChatwootTenantSettings) or own.webhook_secret is None:
            # Answered exactly like a wrong signature, so unsigned callers cannot probe for accounts and
            # tenants; the operator finds the real reason (and the fix) in the log.
            signature.require_headers(request.headers)
            if tenant is None:
                log.warning(
                    "chatwoot delivery for an account no tenant has",
                    account=payload.account_id,
                    fix=f"lily tenants set TENANT {PLUGIN}.account_id={payload.account_id}",
                )
            else:
                log.warning(
                    "chatwoot delivery for a tenant without a webhook secret",
                    tenant=tenant.id,
                    fix=f"lily tenants set {tenant.id} {PLUGIN}.webhook_secret=<the Chatwoot webhook's secret>",
                )
            raise BadSignature(signature.NO_MATCH)
        signature.verify(request.headers, request.body, own.webhook_secret.get_secret_value())

    def delivery_id(self, request: WebhookRequest, payload: Delivery) -> str | None:
        # The message, not the send (X-Chatwoot-Delivery is new on every send): one reply per message.
        if payload.event != "message_created" or payload.message_id is None:
            return None
        return f"{payload.account_id}:{payload.message_id}"

    async def handle(self, request: WebhookRequest, payload: Delivery, ctx: WebhookContext) -> WebhookResponse:
        if not payload.from_customer:
            return IGNORED
        own = ctx.tenant.plugin_settings if ctx.tenant is not None else None
        if not isinstance(own, ChatwootTenantSettings):
            return IGNORED
        reply = choose_reply(own.rules, own.default_reply, payload.content)
        if reply is None:
            return IGNORED
        settings = request.settings
        jitter = settings.jitter if isinstance(settings, ChatwootSettings) else ChatwootSettings().jitter
        ctx.schedule(
            REPLY_TASK,
            {
                "account": payload.account_id,
                "conversation": payload.conversation,
                "message": payload.message_id,
                "reply": reply,
            },
            jitter=jitter,
            dedupe_key=f"{PLUGIN}:{payload.account_id}:{payload.message_id}",
        )
        ctx.log.info("chatwoot reply scheduled", conversation=payload.conversation, message=payload.message_id)
        return _answer(replied=True)
