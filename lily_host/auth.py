"""Authentication for the host's APIs: the admin token, and per-tenant API keys."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from quart import g, jsonify, request

from lily_host.host import current_host
from lily_host.tenants import hash_api_key

P = ParamSpec("P")
R = TypeVar("R")


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorized(message: str, status: int = 401) -> Any:
    response = jsonify({"error": "unauthorized" if status == 401 else "forbidden", "message": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def require_admin(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Any]]:
    """Only callers with ``Authorization: Bearer $LILY_ADMIN_TOKEN``."""

    @functools.wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Any:
        expected = current_host().settings.admin_token
        if not expected:
            return _unauthorized("the admin API is disabled: set LILY_ADMIN_TOKEN", status=503)
        token = _bearer()
        if token is None:
            return _unauthorized("send Authorization: Bearer <LILY_ADMIN_TOKEN>")
        if not hmac.compare_digest(token.encode(), expected.encode()):
            return _unauthorized("invalid admin token", status=403)
        return await view(*args, **kwargs)

    return wrapper


def require_tenant(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Any]]:
    """Only callers with a tenant API key; the tenant is in ``quart.g.tenant``."""

    @functools.wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Any:
        token = _bearer()
        if token is None:
            return _unauthorized("send Authorization: Bearer <tenant API key> (lily tenants key mint TENANT)")
        host = current_host()
        tenant = await host.tenants.authenticate(token)
        if tenant is None:
            return _unauthorized("unknown or revoked API key", status=403)
        wait = await host.api_limiter.retry_after(hash_api_key(token))
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
