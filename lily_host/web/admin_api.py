"""The admin API (``/api/tenants``, ``/api/plugins``) and the tenant's view of itself (``/api/tenant``)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, g, jsonify, request

from lily_host.plugin_api.json_problem import problem
from lily_host.plugin_api.route_auth import require_tenant
from lily_host.plugin_api.tenant import IndexConflict, TenantError
from lily_host.plugin_api.untrusted import UntrustedInput, loads_json
from lily_host.runtime.host import current_host
from lily_host.web.api_auth import require_admin

admin = Blueprint("lily_admin", __name__)

#: A key's label names where it is used ("crm", "zapier"): short text, shown in listings.
MAX_KEY_LABEL_CHARS = 100

_TENANT_FIELDS = {
    "name",
    "timezone",
    "quiet_hours_start",
    "quiet_hours_end",
    "review_delay_seconds",
    "review_link",
    "contact_phone",
    "contact_email",
    "jitter_seconds",
    "templates",
    "retention_days",
    "reminder_offsets_minutes",
    "reschedule_link",
    "quote_follow_up_days",
    "review_follow_up_days",
}


async def _json_object() -> dict[str, Any] | Any:
    if request.mimetype != "application/json":
        return problem(415, "unsupported_media_type", "send a JSON object with Content-Type: application/json")
    try:
        body = loads_json(await request.get_data(as_text=False))
    except UntrustedInput as error:
        return problem(400, "invalid", str(error))
    if not isinstance(body, dict):
        return problem(400, "invalid", "the body must be a JSON object")
    return body


def _unknown_fields(body: dict[str, Any], allowed: set[str]) -> Any | None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        return problem(400, "invalid", f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return None


@admin.post("/tenants")
@require_admin
async def create_tenant() -> Any:
    body = await _json_object()
    if not isinstance(body, dict):
        return body
    refusal = _unknown_fields(body, _TENANT_FIELDS | {"id", "plugins"})
    if refusal is not None:
        return refusal
    tenant_id, name = body.pop("id", None), body.pop("name", None)
    if not isinstance(tenant_id, str) or not isinstance(name, str):
        return problem(400, "invalid", "'id' (a slug) and 'name' are required strings")
    try:
        tenant = await current_host().tenants.create(tenant_id, name, **body)
    except TenantError as error:
        status = 409 if "already exists" in str(error) else 400
        return problem(status, "conflict" if status == 409 else "invalid", str(error))
    return jsonify(tenant.public_view()), 201


@admin.get("/tenants")
@require_admin
async def list_tenants() -> Any:
    tenants = await current_host().tenants.all()
    return jsonify({"tenants": [tenant.public_view() for tenant in tenants]})


@admin.get("/tenants/<tenant_id>")
@require_admin
async def show_tenant(tenant_id: str) -> Any:
    tenant = await current_host().tenants.get(tenant_id)
    if tenant is None:
        return problem(404, "not_found", f"no tenant {tenant_id!r}")
    return jsonify(tenant.public_view())


@admin.patch("/tenants/<tenant_id>")
@require_admin
async def update_tenant(tenant_id: str) -> Any:
    body = await _json_object()
    if not isinstance(body, dict):
        return body
    refusal = _unknown_fields(body, _TENANT_FIELDS | {"plugins"})
    if refusal is not None:
        return refusal
    plugins = body.pop("plugins", None)
    try:
        tenant = await current_host().tenants.change(tenant_id, body, plugins)
    except TenantError as error:
        if await current_host().tenants.get(tenant_id) is None:
            return problem(404, "not_found", f"no tenant {tenant_id!r}")
        return problem(409 if isinstance(error, IndexConflict) else 400, "invalid", str(error))
    return jsonify(tenant.public_view())


@admin.delete("/tenants/<tenant_id>")
@require_admin
async def delete_tenant(tenant_id: str) -> Any:
    if not await current_host().delete_tenant(tenant_id):
        return problem(404, "not_found", f"no tenant {tenant_id!r}")
    return "", 204


@admin.post("/tenants/<tenant_id>/keys")
@require_admin
async def mint_key(tenant_id: str) -> Any:
    body: Any = {}
    if request.mimetype == "application/json":  # the body is optional: {"label": "..."}
        try:
            body = loads_json(await request.get_data(as_text=False) or b"{}")
        except UntrustedInput as error:
            return problem(400, "invalid", str(error))
    label = body.get("label", "") if isinstance(body, dict) else ""
    if not isinstance(label, str) or len(label) > MAX_KEY_LABEL_CHARS:
        return problem(400, "invalid", f"'label' must be text of at most {MAX_KEY_LABEL_CHARS} characters")
    try:
        key_id, secret = await current_host().tenants.mint_key(tenant_id, label)
    except TenantError as error:
        return problem(404, "not_found", str(error))
    return jsonify({"key_id": key_id, "key": secret, "note": "store this key now: it is not shown again"}), 201


@admin.get("/tenants/<tenant_id>/keys")
@require_admin
async def list_keys(tenant_id: str) -> Any:
    return jsonify({"keys": await current_host().tenants.list_keys(tenant_id)})


@admin.delete("/tenants/<tenant_id>/keys/<key_id>")
@require_admin
async def revoke_key(tenant_id: str, key_id: str) -> Any:
    if not await current_host().tenants.revoke_key(tenant_id, key_id):
        return problem(404, "not_found", f"tenant {tenant_id!r} has no key {key_id!r}")
    return "", 204


@admin.get("/plugins")
@require_admin
async def list_plugins() -> Any:
    return jsonify({"plugins": current_host().registry.listing()})


@admin.get("/tenant")
@require_tenant
async def own_tenant() -> Any:
    return jsonify(g.tenant.public_view())
