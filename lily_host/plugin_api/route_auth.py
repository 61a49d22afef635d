"""Tenant API keys on a plugin's routes: ``@require_tenant`` puts the caller's tenant in ``quart.g.tenant``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from quart import current_app, g, jsonify, request

from lily_host.plugin_api.host_api import current_host

P = ParamSpec("P")
R = TypeVar("R")

#: ``app.extensions[API_RATE_LIMIT]``: the host's per-key rate limit of the tenant API, as
#: ``await limit(token)`` → None (go on) or the seconds to wait. The web layer installs it
#: (``lily_host.web.load_shedding``); an app without one does not limit.
API_RATE_LIMIT = "lily.api_rate_limit"
ApiRateLimit = Callable[[str], Awaitable[int | None]]


def bearer_token() -> str | None:
    """The request's ``Authorization: Bearer`` token, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def unauthorized(message: str, status: int = 401) -> Any:
    """A 401 (with ``WWW-Authenticate``) or 403 JSON answer."""
    response = jsonify({"error": "unauthorized" if status == 401 else "forbidden", "message": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def require_tenant(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Any]]:
    """Only callers with a tenant API key; the tenant is in ``quart.g.tenant``."""

    @functools.wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Any:
        token = bearer_token()
        if token is None:
            return unauthorized("send Authorization: Bearer <tenant API key> (lily tenants key mint TENANT)")
        tenant = await current_host().tenants.authenticate(token)
        if tenant is None:
            return unauthorized("unknown or revoked API key", status=403)
        wait = await _rate_limit_wait(token)
        if wait is not None:
            response = jsonify(
                {"error": "rate_limited", "message": f"too many requests with this API key; retry in {wait} s"}
            )
            response.status_code = 429
            response.headers["Retry-After"] = str(wait)
            return response
        g.tenant = tenant
        return await view(*args, **kwargs)

    return wrapper


async def _rate_limit_wait(token: str) -> int | None:
    limit: ApiRateLimit | None = current_app.extensions.get(API_RATE_LIMIT)
    return await limit(token) if limit is not None else None
