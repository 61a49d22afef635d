"""Signed sample requests for ``lily simulate``: a missed call and inbound texts, as Twilio sends them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from lily_host import Simulation, simulation_id
from lily_twilio.settings import TwilioSettings, TwilioTenantSettings
from lily_twilio.signature import sign

if TYPE_CHECKING:
    from lily_host import LilyHost, Tenant

#: The caller of every simulation (a 555 number: it never reaches a real phone).
SAMPLE_CALLER = "+15555550123"
#: Where `lily dev` serves a sample JPEG (lily_host.builtins.core), the simulated MMS's media.
SAMPLE_PHOTO_PATH = "/dev/sample-photo.jpg"

Builder = Callable[["LilyHost", "Tenant"], tuple[str, Mapping[str, str], bytes]]


def _business_number(tenant: Tenant) -> str:
    numbers = TwilioTenantSettings.model_validate(tenant.plugins.get("twilio", {})).business_numbers
    if not numbers:
        raise ValueError(
            f"tenant {tenant.id} has no Twilio number: lily tenants set {tenant.id} twilio.business_numbers=+1..."
        )
    return numbers[0]


def _signed(
    settings: TwilioSettings, host: LilyHost, path: str, params: dict[str, str]
) -> tuple[str, Mapping[str, str], bytes]:
    signature = sign(settings.auth_token.get_secret_value(), host.public_url(path), params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return path, headers, urlencode(params).encode()


def missed_call(settings: TwilioSettings) -> Builder:
    def build(host: LilyHost, tenant: Tenant) -> tuple[str, Mapping[str, str], bytes]:
        params = {
            "AccountSid": settings.account_sid,
            "CallSid": simulation_id("CA"),
            "CallStatus": "no-answer",
            "Direction": "inbound",
            "From": SAMPLE_CALLER,
            "To": _business_number(tenant),
        }
        return _signed(settings, host, "/webhooks/twilio/voice", params)

    return build


def inbound_text(settings: TwilioSettings, body: str, *, photo: bool = False) -> Builder:
    def build(host: LilyHost, tenant: Tenant) -> tuple[str, Mapping[str, str], bytes]:
        params = {
            "AccountSid": settings.account_sid,
            "MessageSid": simulation_id("MM" if photo else "SM"),
            "From": SAMPLE_CALLER,
            "To": _business_number(tenant),
            "Body": body,
            "NumMedia": "0",
        }
        if photo:
            # `lily dev` serves a sample photo, standing in for Twilio's media URL.
            params.update(
                NumMedia="1",
                MediaUrl0=host.public_url(SAMPLE_PHOTO_PATH),
                MediaContentType0="image/jpeg",
            )
        return _signed(settings, host, "/webhooks/twilio/sms", params)

    return build


def simulations(settings: TwilioSettings) -> list[Simulation]:
    return [
        Simulation(
            "twilio.missed_call", "a caller hangs up unanswered → text-back after 10-45 s", missed_call(settings)
        ),
        Simulation(
            "twilio.sms_stop", "the caller texts STOP → suppressed, one confirmation", inbound_text(settings, "STOP")
        ),
        Simulation("twilio.sms_start", "the caller texts START → texts allowed again", inbound_text(settings, "START")),
        Simulation("twilio.sms_help", "the caller texts HELP → the tenant's help text", inbound_text(settings, "HELP")),
        Simulation(
            "twilio.sms_confirm",
            "the caller texts C → confirms the visit they were reminded of (booking.confirmed)",
            inbound_text(settings, "C"),
        ),
        Simulation(
            "twilio.sms_yes",
            "the caller texts YES → accepts the quote they were sent (quote.accepted)",
            inbound_text(settings, "YES"),
        ),
        Simulation(
            "twilio.sms",
            "the caller texts a question → message.received (and the conversation inbox)",
            inbound_text(settings, "Do you clean gutters?"),
        ),
        Simulation(
            "twilio.mms_photo",
            "the caller texts a photo → stored in S3 (lily-s3) for a quote",
            inbound_text(settings, "Here is the driveway", photo=True),
        ),
    ]
