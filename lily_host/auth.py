"""Authentication for the host's APIs: the admin token, and per-tenant API keys.

Wrong credentials are counted per client address (:mod:`lily_host.throttle`): past the limit, the
client is answered 429 with ``Retry-After`` whatever it sends, so guessing a key or a token is slow.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from quart import g, jsonify, request

from lily_host.host import current_host
from lily_host.tenants import Tenant
from lily_host.throttle import FailureThrottle, client_address

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


def _throttled(seconds: int) -> Any:
    response = jsonify(
        {"error": "too_many_requests", "message": f"too many wrong credentials from this address: retry in {seconds} s"}
    )
    response.status_code = 429
    response.headers["Retry-After"] = str(seconds)
    return response


def _client() -> tuple[FailureThrottle, str]:
    host = current_host()
    client = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), host.settings.trusted_proxies)
    return FailureThrottle(host.redis), client


async def admin_refusal() -> Any | None:
    """The answer refusing this request the admin API, or None when it carries the admin token."""
    expected = current_host().settings.admin_token
    if not expected:
        return _unauthorized("the admin API is disabled: set LILY_ADMIN_TOKEN", status=503)
    token = _bearer()
    if token is None:
        return _unauthorized("send Authorization: Bearer <LILY_ADMIN_TOKEN>")
    throttle, client = _client()
    wait = await throttle.retry_after("admin", client)
    if wait is not None:
        return _throttled(wait)
    if not hmac.compare_digest(token.encode(), expected.encode()):
        await throttle.record_failure("admin", client)
        return _unauthorized("invalid admin token", status=403)
    return None


def require_admin(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Any]]:
    """Only callers with ``Authorization: Bearer $LILY_ADMIN_TOKEN``."""

    @functools.wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Any:
        refusal = await admin_refusal()
        if refusal is not None:
            return refusal
        return await view(*args, **kwargs)

    return wrapper


async def tenant_or_refusal(
    missing: str = "send Authorization: Bearer <tenant API key> (lily tenants key mint TENANT)",
) -> Tenant | Any:
    """The tenant whose API key this request carries, or the answer refusing it (401, 403 or 429)."""
    token = _bearer()
    if token is None:
        return _unauthorized(missing)
    throttle, client = _client()
    wait = await throttle.retry_after("tenant", client)
    if wait is not None:
        return _throttled(wait)
    tenant = await current_host().tenants.authenticate(token)
    if tenant is None:
        await throttle.record_failure("tenant", client)
        return _unauthorized("unknown or revoked API key", status=403)
    return tenant


def require_tenant(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Any]]:
    """Only callers with a tenant API key; the tenant is in ``quart.g.tenant``."""

    @functools.wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Any:
        tenant = await tenant_or_refusal()
        if not isinstance(tenant, Tenant):
            return tenant
        g.tenant = tenant
        return await view(*args, **kwargs)

    return wrapper
