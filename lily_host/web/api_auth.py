"""The admin token guard of the host's own admin API (tenant API keys: ``lily_host.require_tenant``)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from lily_host.plugin_api.route_auth import bearer_token, unauthorized
from lily_host.runtime.host import current_host

P = ParamSpec("P")
R = TypeVar("R")


def require_admin(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Any]]:
    """Only callers with ``Authorization: Bearer $LILY_ADMIN_TOKEN``."""

    @functools.wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Any:
        expected = current_host().settings.admin_token
        if not expected:
            return unauthorized("the admin API is disabled: set LILY_ADMIN_TOKEN", status=503)
        token = bearer_token()
        if token is None:
            return unauthorized("send Authorization: Bearer <LILY_ADMIN_TOKEN>")
        if not hmac.compare_digest(token.encode(), expected.encode()):
            return unauthorized("invalid admin token", status=403)
        return await view(*args, **kwargs)

    return wrapper
