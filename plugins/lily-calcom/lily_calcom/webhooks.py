"""The Cal.com webhook endpoints: ``POST /webhooks/calcom`` and the tenant-scoped ``/webhooks/calcom/<tenant>``."""

from __future__ import annotations

import secrets

import phonenumbers
from prometheus_client import Counter
from quart import Response, jsonify

from lily_calcom import signature
from lily_calcom.payloads import Delivery, normalize, parse_delivery
from lily_calcom.settings import CalcomSettings, CalcomTenantSettings
from lily_host import (
    TENANT_ID,
    Tenant,
    TenantDirectory,
    UnknownTenant,
    WebhookContext,
    WebhookEndpoint,
    WebhookRequest,
    current_host,
    get_logger,
)

log = get_logger("lily.calcom")
#: Checked against when no secret is configured: fresh per process, known to nobody, matches nothing.
_UNMATCHABLE_SECRET = secrets.token_hex(32)

PLUGIN = "calcom"

IGNORED = Counter(
    "lily_calcom_ignored_triggers_total",
    "Signed Cal.com deliveries whose trigger Lily does not act on, by trigger",
    ["trigger"],
)


def tenant_settings(tenant: Tenant) -> CalcomTenantSettings:
    found = current_host().tenants.plugin_settings(tenant, PLUGIN)
    return found if isinstance(found, CalcomTenantSettings) else CalcomTenantSettings()


def webhook_secrets(settings: CalcomSettings | None, tenant: Tenant | None) -> list[str]:
    """The secrets a delivery may be signed with: the tenant's own, then the platform's."""
    found: list[str] = []
    if tenant is not None:
        own = tenant_settings(tenant).webhook_secret
        if own is not None:
            found.append(own.get_secret_value())
    if settings is not None and settings.webhook_secret is not None:
        found.append(settings.webhook_secret.get_secret_value())
    return found


def _region(tenant: Tenant | None) -> str:
    """Country used to read phone numbers written without +country code: the tenant's own number's."""
    if tenant is not None and tenant.contact_phone:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(tenant.contact_phone, None))
        except phonenumbers.NumberParseException:
            region = None
        if region:
            return str(region)
    return "US"


class CalcomWebhook(WebhookEndpoint):
    """Cal.com booking deliveries; the tenant is whoever owns the event type, else the organizer."""

    path = "/webhooks/calcom"
    integration = PLUGIN
    # Triggers Lily ignores may name no tenant and still deserve a 2xx; booking triggers are checked in verify().
    tenant_required = False

    def parse(self, request: WebhookRequest) -> Delivery:
        return parse_delivery(request.json())

    async def resolve_tenant(
        self, request: WebhookRequest, payload: Delivery, tenants: TenantDirectory
    ) -> Tenant | None:
        if payload.event_type_id:
            tenant = await tenants.resolve("calcom_event_type", payload.event_type_id)
            if tenant is not None:
                return tenant
        if payload.organizer_email:
            return await tenants.resolve("calcom_organizer", payload.organizer_email)
        return None

    def verify(self, request: WebhookRequest, payload: Delivery, tenant: Tenant | None) -> None:
        candidates = [secret for secret in webhook_secrets(request.settings, tenant) if secret]
        if not candidates:
            # No secret for this tenant (or no such tenant): answer exactly as for a wrong signature,
            # so that the answers do not tell which tenants (or organizers) exist. The operator
            # learns the real reason from the log.
            log.warning(
                "cal.com delivery refused: no webhook secret is configured for it "
                "(set CALCOM_WEBHOOK_SECRET or the tenant's calcom webhook_secret)",
                tenant=tenant.id if tenant else None,
            )
            candidates = [_UNMATCHABLE_SECRET]
        signature.verify(request.body, request.headers.get(signature.HEADER), candidates)
        if tenant is None and payload.event is not None:
            raise UnknownTenant(self._unknown_tenant_message(payload))

    def _unknown_tenant_message(self, payload: Delivery) -> str:
        return (
            f"no tenant owns Cal.com organizer {payload.organizer_email or '(none)'} or event type "
            f"{payload.event_type_id or '(none)'}: add one to the tenant's calcom settings "
            "(organizer_emails / event_type_ids)"
        )

    def delivery_id(self, request: WebhookRequest, payload: Delivery) -> str | None:
        # Ignored triggers schedule nothing; leaving them undeduplicated keeps the ignored count honest.
        return payload.delivery_id() if payload.event is not None else None

    async def handle(self, request: WebhookRequest, payload: Delivery, ctx: WebhookContext) -> Response | None:
        event = payload.event
        if event is None:
            IGNORED.labels(payload.trigger).inc()
            ctx.log.info("cal.com trigger ignored", trigger=payload.trigger)
            return jsonify({"ok": True, "ignored": payload.trigger})
        booking = normalize(payload, default_region=_region(ctx.tenant))
        ctx.emit(event, booking.as_event_data())
        ctx.log.info("cal.com booking received", trigger=payload.trigger, uid=booking.uid)
        return jsonify({"ok": True, "event": event, "uid": booking.uid})


class TenantCalcomWebhook(CalcomWebhook):
    """The same deliveries at a URL that names the tenant (for tenants with their own Cal.com account)."""

    path = "/webhooks/calcom/<tenant_id>"

    async def resolve_tenant(
        self, request: WebhookRequest, payload: Delivery, tenants: TenantDirectory
    ) -> Tenant | None:
        tenant_id = request.path_params.get("tenant_id", "")
        return await tenants.get(tenant_id) if TENANT_ID.fullmatch(tenant_id) else None

    def _unknown_tenant_message(self, payload: Delivery) -> str:
        return "no such tenant: check the tenant id at the end of the webhook URL"
