"""The admin token guard of the host's own admin API (tenant API keys: ``lily_host.require_tenant``).

Wrong admin tokens are throttled per client address like wrong tenant keys (``host.auth_throttle``).
The ``/dev`` routes (the dev outbox holds customers' numbers and texts) are open only in a
``lily dev`` session, and otherwise behind the admin token too.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from quart import current_app, g

from lily_host.plugin_api.masking import fingerprint
from lily_host.plugin_api.route_auth import bearer_token, checked_bearer, unauthorized
from lily_host.runtime.host import current_host

P = ParamSpec("P")
R = TypeVar("R")

#: Set on the app by ``lily dev``: the one server whose outbox anyone on the machine may read.
DEV_SESSION = "LILY_DEV_SESSION"


async def admin_refusal() -> Any | None:
    """The answer refusing this request the admin API, or None when it carries the admin token."""
    expected = current_host().settings.admin_token
    g.audit_actor = {"actor": "anonymous"}
    if not expected:
        return unauthorized("the admin API is disabled: set LILY_ADMIN_TOKEN", status=503)

    async def matches(token: str) -> bool | None:
        return True if hmac.compare_digest(token.encode(), expected.encode()) else None

    found = await checked_bearer(
        "admin", matches, missing="send Authorization: Bearer <LILY_ADMIN_TOKEN>", wrong="invalid admin token"
    )
    if found is not True:
        return found
    g.audit_actor = {"actor": f"admin:{fingerprint(bearer_token() or '')}"}  # lily_host.web.api_audit
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


async def dev_routes_refusal() -> Any | None:
    """Before each ``/dev`` route: open in a ``lily dev`` session on a laptop, else the admin token's.

    In production the routes answer 404 themselves (they do not exist there), so that is left to them.
    """
    if current_app.config.get(DEV_SESSION) or current_host().settings.is_production:
        return None
    return await admin_refusal()
