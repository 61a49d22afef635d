"""Audit entries for the HTTP APIs: one per call of a route behind the admin token or a tenant key.

``require_admin`` / ``require_tenant`` (lily_host.web.api_auth) say who is calling in ``g.audit_actor``;
this after-request hook writes the entry once the answer is known, so refused calls are recorded
too. The client address is the one the trusted-proxy rules believe (``X-Forwarded-For`` only from a
proxy in ``LILY_TRUSTED_PROXIES``).
"""

from __future__ import annotations

from typing import Any

from quart import Quart, Response, g, request

from lily_host.observability.log import get_logger
from lily_host.runtime.host import current_host
from lily_host.web.webhook_pipeline import _is_trusted

log = get_logger("lily.audit")


def client_address(remote: str | None, forwarded_for: str, trusted: list[str]) -> str | None:
    """The first address, from the right, of the proxy chain that is not a trusted proxy."""
    if not remote or not forwarded_for or not _is_trusted(remote, trusted):
        return remote
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else remote


def install(app: Quart) -> None:
    @app.after_request
    async def audit_api_call(response: Response) -> Response:
        actor: dict[str, Any] | None = getattr(g, "audit_actor", None)
        if actor is None:
            return response
        host = current_host()
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        resource = dict(request.view_args or {})
        tenant = actor.get("tenant") or resource.get("tenant_id")
        try:
            await host.audit.write(
                actor=actor["actor"],
                action=f"{request.method} {rule}",
                outcome=str(response.status_code),
                tenant=tenant if isinstance(tenant, str) else None,
                resource=resource,
                remote_addr=client_address(
                    request.remote_addr, request.headers.get("X-Forwarded-For", ""), host.settings.trusted_proxies
                ),
                detail={"label": actor["label"]} if actor.get("label") else None,
            )
        except Exception as error:  # an unwritable audit entry is logged loudly, the answer still goes out
            log.error("audit entry not written", action=f"{request.method} {rule}", error=repr(error))
        return response
