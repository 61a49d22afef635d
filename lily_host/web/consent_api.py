"""Admin API of the consent ledger: ``/api/sms/consent/<number>``.

- ``GET  /api/sms/consent/<number>[?tenant=ID]``  every opt-in and opt-out of the number (admin token)
- ``POST /api/sms/consent/<number>``  ``{"tenant": ID, "action": "opt_out"|"opt_in"}``: record a
  consent change the business learned of another way (by phone, in person); source ``api``.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, jsonify, request

from lily_host.observability.log import mask_phone
from lily_host.plugin_api.json_problem import problem
from lily_host.plugin_api.untrusted import UntrustedInput, loads_json
from lily_host.plugin_api.validators import normalize_e164
from lily_host.runtime.host import current_host
from lily_host.sms.consent_ledger import consent_history
from lily_host.web.api_auth import require_admin

consent_api = Blueprint("lily_consent", __name__)

ACTIONS = ("opt_out", "opt_in")


@consent_api.get("/<number>")
@require_admin
async def show_consent(number: str) -> Any:
    host = current_host()
    try:
        normalized = normalize_e164(number)
    except ValueError as error:
        return problem(400, "invalid", f"number: {error}")
    entries = await consent_history(host.redis, host.pii, normalized, request.args.get("tenant") or None)
    return jsonify({"number": mask_phone(normalized), "entries": entries})


@consent_api.post("/<number>")
@require_admin
async def change_consent(number: str) -> Any:
    host = current_host()
    try:
        normalized = normalize_e164(number)
    except ValueError as error:
        return problem(400, "invalid", f"number: {error}")
    if request.mimetype != "application/json":
        return problem(415, "unsupported_media_type", "send a JSON object with Content-Type: application/json")
    try:
        body = loads_json(await request.get_data(as_text=False))
    except UntrustedInput as error:
        return problem(400, "invalid", str(error))
    if not isinstance(body, dict) or set(body) - {"tenant", "action"}:
        return problem(400, "invalid", 'the body must be {"tenant": "<id>", "action": "opt_out" or "opt_in"}')
    tenant_id, action = body.get("tenant"), body.get("action")
    if action not in ACTIONS:
        return problem(400, "invalid", "action must be opt_out or opt_in")
    if not isinstance(tenant_id, str) or await host.tenants.get(tenant_id) is None:
        return problem(404, "not_found", f"no tenant {tenant_id!r}")
    compliance = host.messaging.compliance
    now = host.clock.now()
    if action == "opt_out":
        changed = await compliance.suppress(tenant_id, normalized, reason="api", at=now, source="api")
    else:
        changed = await compliance.unsuppress(tenant_id, normalized, at=now, source="api", detail="api")
    return jsonify({"number": mask_phone(normalized), "tenant": tenant_id, "action": action, "changed": changed})
