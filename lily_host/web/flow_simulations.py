"""Built-in plugin: ``lily simulate`` flows for reminders and quotes (development only).

It lives in ``web/`` rather than ``builtins/`` because its routes are admin-token guarded
(:func:`lily_host.web.api_auth.require_admin`, a web concern above the built-ins' layer).

- ``lily.reminder_flow``: a sample booking starting in 2 h 1 min for the sample customer → the
  booking confirmation at once and the 2 h reminder a minute later (when that minute is inside the
  allowed hours; otherwise the quiet-hour rule moves or skips it). Answer it with
  ``lily simulate twilio.sms_confirm`` (C) and watch ``lily outbox``.
- ``lily.quote_flow``: a $240 sample quote texted to the sample customer, with its ``/q/<token>``
  link; accept it with ``lily simulate twilio.sms_yes`` or the link's button.

Each posts to ``/dev/simulate/<flow>`` with the admin token; those routes answer 404 in production.
The sample customer is the number every Twilio simulation texts from (a 555 number).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from quart import Blueprint, jsonify

from lily_host.plugin_api.contract import Routes, Simulation
from lily_host.plugin_api.event_names import BOOKING_CREATED
from lily_host.plugin_api.host_api import LilyHost
from lily_host.plugin_api.markers import hookimpl
from lily_host.plugin_api.tenant import Tenant
from lily_host.runtime.host import current_host, host_of
from lily_host.web.api_auth import require_admin

#: The sample customer of every simulation (lily-twilio's SAMPLE_CALLER; a 555 number reaches no one).
SAMPLE_CUSTOMER = "+15555550123"
#: The sample booking starts this long from now, so its 2 h reminder is due a minute later.
SAMPLE_LEAD_SECONDS = 2 * 3600 + 60

dev_simulations = Blueprint("lily_dev_simulations", __name__)


def _not_found() -> Any:
    response = jsonify({"error": "not_found", "message": "simulations exist only in development"})
    response.status_code = 404
    return response


async def _tenant(tenant_id: str) -> Tenant | None:
    return await current_host().tenants.get(tenant_id)


@dev_simulations.post("/reminder/<tenant_id>")
@require_admin
async def reminder_flow(tenant_id: str) -> Any:
    host = current_host()
    tenant = await _tenant(tenant_id)
    if host.settings.is_production or tenant is None:
        return _not_found()
    start = dt.datetime.fromtimestamp(host.clock.now() + SAMPLE_LEAD_SECONDS, dt.UTC).replace(microsecond=0)
    uid = "sim-" + secrets.token_hex(6)
    booking = {
        "uid": uid,
        "provider": "simulation",
        "start": start.isoformat(),
        "end": (start + dt.timedelta(minutes=60)).isoformat(),
        "timezone": tenant.timezone,
        "service_type": "Pressure Washing Estimate",
        "customer_name": "Sam Sample",
        "customer_phone": SAMPLE_CUSTOMER,
        "location": "12 Sample St",
        "occurred_at": host.clock.now(),
    }
    await host.events.emit(BOOKING_CREATED, booking, tenant=tenant.id)
    return jsonify({"booking": uid, "start": booking["start"], "reminders": f"/api/bookings/{uid}/reminders"}), 202


@dev_simulations.post("/quote/<tenant_id>")
@require_admin
async def quote_flow(tenant_id: str) -> Any:
    from lily_host.builtins.quote_texts import text_quote

    host = current_host()
    tenant = await _tenant(tenant_id)
    if host.settings.is_production or tenant is None:
        return _not_found()
    quote_id = "sim-" + secrets.token_hex(4)
    quote = await text_quote(host, tenant, quote_id, SAMPLE_CUSTOMER, Decimal("240"), "driveway wash (sample)", "")
    if quote is None:
        return jsonify({"quote": quote_id, "status": "not sent: the sample customer opted out (simulate START)"})
    return jsonify({"quote": quote_id, "link": host.public_url(f"/q/{quote.fields['token']}")}), 202


def _request(flow: str) -> Callable[[LilyHost, Tenant], tuple[str, Mapping[str, str], bytes]]:
    def build(host: LilyHost, tenant: Tenant) -> tuple[str, Mapping[str, str], bytes]:
        headers = {"Authorization": f"Bearer {host_of(host).settings.admin_token or ''}"}
        return f"/dev/simulate/{flow}/{tenant.id}", headers, b""

    return build


@hookimpl
def register_simulations(register: Callable[[Simulation], None]) -> None:
    register(
        Simulation(
            "lily.reminder_flow",
            "a sample booking in 2 h → confirmation now, the 2 h reminder in a minute (reply: twilio.sms_confirm)",
            _request("reminder"),
        )
    )
    register(
        Simulation(
            "lily.quote_flow",
            "a $240 sample quote texted with its /q link (accept: twilio.sms_yes or the link)",
            _request("quote"),
        )
    )


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(dev_simulations, url_prefix="/dev/simulate", always_available=True))
