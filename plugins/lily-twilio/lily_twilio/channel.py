"""The ``sms`` capability over Twilio's Messages API.

Only ``lily_host.sms.outbound`` calls it, after compliance cleared the message. The SDK call runs in a
worker thread; Twilio's answers become Lily's task outcomes: 429/20429 → RetryLater (Retry-After
when given), 5xx and timeouts → retried with backoff, 21610 → RecipientOptedOut (suppressed, no
retry), any other 4xx → PermanentError (dead letter, with Twilio's code and message).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import quote

import requests
from pydantic import ValidationError
from twilio.base.exceptions import TwilioException

from lily_host import OutgoingSms, PermanentError, SentSms, track_api_call
from lily_twilio.client import make_client, map_error, map_transport_error
from lily_twilio.settings import TwilioSettings, TwilioTenantSettings

if TYPE_CHECKING:
    from lily_host import LilyHost, Tenant

PLUGIN = "twilio"
STATUS_PATH = "/webhooks/twilio/status"


def tenant_settings(tenant: Tenant) -> TwilioTenantSettings:
    try:
        return TwilioTenantSettings.model_validate(tenant.plugins.get(PLUGIN, {}))
    except ValidationError as error:
        raise PermanentError(
            f"tenant {tenant.id} has invalid twilio settings ({error.error_count()} errors): fix them with "
            f"`lily tenants set {tenant.id} twilio.FIELD=VALUE`",
            code="tenant_settings",
        ) from error


class TwilioSmsChannel:
    """An SmsChannel. Sender: the tenant's ``from_number``, else its first number, else TWILIO_FROM_NUMBER."""

    name = "twilio"

    def __init__(self, settings: TwilioSettings) -> None:
        self.settings = settings
        self._client, self._http = make_client(settings)
        self._public_url: str | None = None

    def attach(self, host: LilyHost) -> None:
        """Called by the host once it exists: status callbacks go to its public URL."""
        self._public_url = host.public_url("").rstrip("/")

    def status_callback(self, tenant: Tenant) -> str | None:
        if self._public_url is None:
            return None
        return f"{self._public_url}{STATUS_PATH}?tenant={quote(tenant.id, safe='')}"

    async def send(self, tenant: Tenant, message: OutgoingSms) -> SentSms:
        sender = tenant_settings(tenant).sender(self.settings.from_number)
        if sender is None:
            raise PermanentError(
                f"tenant {tenant.id} has no Twilio number to send from: run "
                f"`lily tenants set {tenant.id} twilio.business_numbers=+1...` or set TWILIO_FROM_NUMBER",
                code="no_sender",
            )
        callback = message.status_callback or self.status_callback(tenant)
        with track_api_call(PLUGIN, "messages.create"):
            return await asyncio.to_thread(self._create, message.to, sender, message.body, callback)

    def _create(self, to: str, sender: str, body: str, callback: str | None) -> SentSms:
        try:
            created = self._client.messages.create(to=to, from_=sender, body=body, status_callback=callback)
        except TwilioException as error:
            raise map_error(error, self._http.last_response) from error
        except requests.RequestException as error:
            raise map_transport_error(error) from error
        return SentSms(
            provider_id=str(created.sid), status=str(created.status or "queued"), sender=created.from_ or sender
        )
