"""lily-calcom's hook implementations."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from pydantic_settings import BaseSettings

from lily_calcom.client import check_api_key
from lily_calcom.fake import booking_delivery, signed
from lily_calcom.settings import CalcomSettings, CalcomTenantSettings
from lily_calcom.webhooks import PLUGIN, CalcomWebhook, TenantCalcomWebhook
from lily_host import (
    ConfigurationError,
    HealthCheck,
    HealthResult,
    LilyHost,
    Simulation,
    Tenant,
    WebhookEndpoint,
    hookimpl,
    simulation_id,
)

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2

#: The customer of a simulated booking (a 555 number: it never reaches a real phone).
SAMPLE_CUSTOMER = "+15555550142"


@hookimpl
def register_settings(register: Callable[[type[BaseSettings]], None]) -> None:
    register(CalcomSettings)


@hookimpl
def register_tenant_settings(register: Callable[[type[BaseModel]], None]) -> None:
    register(CalcomTenantSettings)


@hookimpl
def register_webhooks(register: Callable[[WebhookEndpoint], None]) -> None:
    register(CalcomWebhook())
    register(TenantCalcomWebhook())


@hookimpl
def register_health_checks(register: Callable[[HealthCheck], None], settings: CalcomSettings) -> None:
    async def api_key(host: LilyHost) -> HealthResult:
        return await check_api_key(settings)

    register(HealthCheck("api_key", api_key, timeout=settings.request_timeout + 1))


@hookimpl
def register_simulations(register: Callable[[Simulation], None], settings: CalcomSettings) -> None:
    def builder(trigger: str) -> Callable[[LilyHost, Tenant], tuple[str, Mapping[str, str], bytes]]:
        def build(host: LilyHost, tenant: Tenant) -> tuple[str, Mapping[str, str], bytes]:
            tenant_settings = host.tenants.plugin_settings(tenant, PLUGIN)
            secret = None
            if isinstance(tenant_settings, CalcomTenantSettings) and tenant_settings.webhook_secret is not None:
                secret = tenant_settings.webhook_secret.get_secret_value()
            elif settings.webhook_secret is not None:
                secret = settings.webhook_secret.get_secret_value()
            if secret is None:
                raise ConfigurationError(
                    f"set CALCOM_WEBHOOK_SECRET or tenant {tenant.id}'s calcom webhook_secret to sign a simulation"
                )
            # A customer books: the confirmation goes to them (a 555 number), never to the tenant itself.
            options: dict[str, Any] = {"customer_phone": SAMPLE_CUSTOMER}
            if trigger == "BOOKING_RESCHEDULED":
                # --id names the booking being moved; the new slot gets a fresh uid, as Cal.com does.
                options["uid"] = f"sim-{secrets.token_hex(8)}"
                options["reschedule_uid"] = simulation_id("sim-", 8)
                options["start"] = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
            else:
                options["uid"] = simulation_id("sim-", 8)
            body = booking_delivery(trigger, **options)
            raw, headers = signed(body, secret)
            return f"/webhooks/calcom/{tenant.id}", headers, raw

        return build

    register(
        Simulation(
            "calcom.booking_created",
            "a customer books → confirmation text + calendar event (lily-gcal)",
            builder("BOOKING_CREATED"),
        )
    )
    register(
        Simulation(
            "calcom.booking_rescheduled",
            "a booking moves 3 days out (--id UID: the booking to move)",
            builder("BOOKING_RESCHEDULED"),
        )
    )
    register(
        Simulation(
            "calcom.booking_cancelled", "a booking is cancelled (--id UID: the booking)", builder("BOOKING_CANCELLED")
        )
    )
