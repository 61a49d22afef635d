"""Tenant API keys on a plugin's routes: ``@require_tenant`` puts the caller's tenant in ``quart.g.tenant``.

Wrong credentials are counted per client address (``host.auth_throttle``,
:mod:`lily_host.plugin_api.auth_throttle`): past the limit, the client is answered 429 with
``Retry-After`` whatever it sends, so guessing a key or a token is slow.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from quart import current_app, g, request

from lily_host.plugin_api.host_api import current_host
from lily_host.plugin_api.json_problem import problem
from lily_host.plugin_api.masking import fingerprint
from lily_host.plugin_api.tenant import Tenant

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: What a request without a tenant API key is told.
MISSING_TENANT_KEY = "send Authorization: Bearer <tenant API key> (lily tenants key mint TENANT)"

#: ``app.extensions[API_RATE_LIMIT]``: the host's per-key rate limit of the tenant API, as
#: ``await limit(token)`` → None (go on) or the seconds to wait. The web layer installs it
#: (``lily_host.web.load_shedding``); an app without one does not limit.
API_RATE_LIMIT = "lily.api_rate_limit"
ApiRateLimit = Callable[[str], Awaitable[int | None]]


#: How a wrong credential of each kind is named in the audit log (with the token's fingerprint).
_INVALID = {"admin": "invalid-admin-token", "tenant": "invalid-key"}


def bearer_token() -> str | None:
    """The request's ``Authorization: Bearer`` token, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def unauthorized(message: str, status: int = 401) -> Any:
    """A 401 (with ``WWW-Authenticate``) or 403 JSON answer."""
    response = problem(status, "unauthorized" if status == 401 else "forbidden", message)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def throttled(seconds: int) -> Any:
    """The 429 answer (with ``Retry-After``) to a client that sent too many wrong credentials."""
    response = problem(429, "too_many_requests", f"too many wrong credentials from this address: retry in {seconds} s")
    response.headers["Retry-After"] = str(seconds)
    return response


async def checked_bearer(
    kind: str, check: Callable[[str], Awaitable[T | None]], *, missing: str, wrong: str
) -> T | Any:
    """What ``check`` makes of the request's bearer token, or the answer refusing it (401, 403 or 429).

    A client past the failure limit for ``kind`` is refused before its token is checked (a right
    guess must look like a wrong one); a token ``check`` turns down (None) counts as a failure.
    """
    token = bearer_token()
    # Who is calling, for the audit log (the host's API audit writes it after the answer).
    g.audit_actor = {"actor": "anonymous"}
    if token is None:
        return unauthorized(missing)
    throttle = current_host().auth_throttle
    client = throttle.client(request.remote_addr, request.headers.get("X-Forwarded-For"))
    wait = await throttle.retry_after(kind, client)
    if wait is not None:
        return throttled(wait)
    found = await check(token)
    if found is None:
        g.audit_actor = {"actor": f"{_INVALID.get(kind, 'invalid-' + kind)}:{fingerprint(token)}"}
        await throttle.record_failure(kind, client)
        return unauthorized(wrong, status=403)
    return found


async def tenant_or_refusal(missing: str = MISSING_TENANT_KEY) -> Tenant | Any:
    """The tenant whose API key this request carries, or the answer refusing it (401, 403 or 429)."""
    return await checked_bearer(
        "tenant", current_host().tenants.authenticate, missing=missing, wrong="unknown or revoked API key"
    )


def require_tenant(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Any]]:
    """Only callers with a tenant API key; the tenant is in ``quart.g.tenant``."""

    @functools.wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Any:
        tenant = await tenant_or_refusal()
        if not isinstance(tenant, Tenant):
            return tenant
        token = bearer_token()
        key = await current_host().tenants.key_record(token or "") or {}
        g.audit_actor = {"actor": f"key:{key.get('key_id', '?')}", "label": key.get("label", ""), "tenant": tenant.id}
        wait = await _rate_limit_wait(token) if token is not None else None
        if wait is not None:
            response = problem(429, "rate_limited", f"too many requests with this API key; retry in {wait} s")
            response.headers["Retry-After"] = str(wait)
            return response
        g.tenant = tenant
        return await view(*args, **kwargs)

    return wrapper


async def _rate_limit_wait(token: str) -> int | None:
    limit: ApiRateLimit | None = current_app.extensions.get(API_RATE_LIMIT)
    return await limit(token) if limit is not None else None
