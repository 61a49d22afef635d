"""``POST /webhooks/chatwoot``: the provider's signed events, each tenant with its own secret.

The pipeline calls, in order: ``parse`` → ``resolve_tenant`` → ``verify`` → (no tenant: 404) →
idempotency on ``delivery_id`` → ``handle`` → one atomic commit of the tasks ``handle`` scheduled.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from lily_host import (
    BadSignature,
    InvalidPayload,
    Tenant,
    TenantDirectory,
    UnknownTenant,
    WebhookContext,
    WebhookEndpoint,
    WebhookRequest,
)
from lily_chatwoot.settings import PLUGIN, ChatwootTenantSettings

#: The header the provider signs with: hex HMAC-SHA256 of the raw body with the tenant's secret.
SIGNATURE_HEADER = "X-Chatwoot-Signature"
#: The task each event schedules.
NOTE_TASK = f"{PLUGIN}.post_note"


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ChatwootWebhook(WebhookEndpoint):
    path = "/webhooks/chatwoot"
    integration = PLUGIN

    def parse(self, request: WebhookRequest) -> dict[str, Any]:
        payload = request.json()
        if not isinstance(payload, dict):
            raise InvalidPayload("expected a JSON object")
        for name in ("id", "account", "type"):
            if not isinstance(payload.get(name), str | int) or not str(payload[name]).strip():
                raise InvalidPayload(f"expected a non-empty {name!r}")
        return payload

    async def resolve_tenant(
        self, request: WebhookRequest, payload: dict[str, Any], tenants: TenantDirectory
    ) -> Tenant | None:
        # The account id is indexed (ChatwootTenantSettings.account_id): one look-up, no scan.
        return await tenants.resolve("chatwoot_account", str(payload["account"]))

    def verify(self, request: WebhookRequest, payload: dict[str, Any], tenant: Tenant | None) -> None:
        if tenant is None:
            # Nothing to verify against: answer 404 naming the fix (the provider's delivery log shows it).
            raise UnknownTenant(
                f"no tenant has Chatwoot account {payload['account']}: "
                f"`lily tenants set TENANT {PLUGIN}.account_id={payload['account']}`"
            )
        # The tenant handed to verify carries this plugin's own tenant settings, decrypted.
        own = tenant.plugin_settings
        if not isinstance(own, ChatwootTenantSettings) or own.webhook_secret is None:
            raise BadSignature(f"tenant {tenant.id} has no {PLUGIN} webhook_secret to verify with")
        given = request.headers.get(SIGNATURE_HEADER)
        if not given:
            raise BadSignature(f"{SIGNATURE_HEADER} is missing", missing=True)
        if not hmac.compare_digest(given, signature(own.webhook_secret.get_secret_value(), request.body)):
            raise BadSignature(f"{SIGNATURE_HEADER} does not match the body")

    def delivery_id(self, request: WebhookRequest, payload: dict[str, Any]) -> str | None:
        # The provider's event id: a second delivery of the same event schedules nothing.
        return f"{payload['account']}:{payload['id']}"

    async def handle(self, request: WebhookRequest, payload: dict[str, Any], ctx: WebhookContext) -> None:
        # Only translate here; the provider call happens in a task (retried, rate-limited, once).
        ctx.schedule(NOTE_TASK, {"event_id": str(payload["id"]), "type": str(payload["type"])})
        ctx.log.info("chatwoot event received", event_type=payload["type"])
