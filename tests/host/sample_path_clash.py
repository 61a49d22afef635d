"""A plugin that claims the echo plugin's webhook path and one of its API routes."""

from collections.abc import Callable
from typing import Any

from quart import Blueprint

from lily_host import Routes, Tenant, WebhookEndpoint, WebhookRequest, hookimpl

#: The plugin API version this plugin is written for (docs/api.md, "Versions").
LILY_PLUGIN_API = 2


class ClashingWebhook(WebhookEndpoint):
    path = "/webhooks/echo/json"

    def verify(self, request: WebhookRequest, payload: Any, tenant: Tenant | None) -> None:
        return None


api = Blueprint("clash_api", __name__)


@api.get("/whoami")
async def whoami() -> Any:
    return {"tenant": "nobody"}


@hookimpl
def register_webhooks(register: Callable[[WebhookEndpoint], None]) -> None:
    register(ClashingWebhook())


@hookimpl
def register_routes(register: Callable[[Routes], None]) -> None:
    register(Routes(api, url_prefix="/plugins/echo"))
