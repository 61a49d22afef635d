"""A plugin whose webhook path holds a converter: Quart routes it (the front door takes fixed paths only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import jsonify

from lily_host import Tenant, TenantDirectory, WebhookContext, WebhookEndpoint, WebhookRequest, hookimpl

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2


class TenantPathWebhook(WebhookEndpoint):
    path = "/webhooks/pathy/<tenant_id>"

    async def resolve_tenant(self, request: WebhookRequest, payload: Any, tenants: TenantDirectory) -> Tenant | None:
        return await tenants.get(request.path_params["tenant_id"])

    def verify(self, request: WebhookRequest, payload: Any, tenant: Tenant | None) -> None:
        return None  # a test plugin: the signature paths are covered by the echo plugin

    def delivery_id(self, request: WebhookRequest, payload: Any) -> str | None:
        return str(payload["id"])

    async def handle(self, request: WebhookRequest, payload: Any, ctx: WebhookContext) -> Any:
        ctx.schedule("pathy.noted", {"id": payload["id"]})
        return jsonify({"tenant": ctx.tenant.id if ctx.tenant else None, "door": "quart"})


@hookimpl
def register_webhooks(register: Callable[[WebhookEndpoint], None]) -> None:
    register(TenantPathWebhook())
