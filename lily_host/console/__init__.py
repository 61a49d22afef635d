"""The operator console: ``/console``, server-rendered pages over the same stores the admin API reads.

Kept in one package (routes, sign-in and sessions, templates, one stylesheet and one small script)
so ``pip install lily-host`` brings all of it and nothing is built on the front end. The
cross-tenant index its pages read is written by the webhook log itself
(:mod:`lily_host.operations.webhook_index`). This module imports nothing heavy (``lily dev`` and
the app import it; the views load on mount).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart

    from lily_host.runtime.host import Host

#: Where the console is mounted.
URL_PREFIX = "/console"


def install_console(app: Quart) -> None:
    """Mount the console's blueprint on the app (``lily serve`` and ``lily dev`` both build it)."""
    from lily_host.console.views import console

    app.register_blueprint(console, url_prefix=URL_PREFIX)


async def signin_link(host: Host, base_url: str) -> str:
    """A one-click, one-time sign-in link (``lily dev`` prints it); it expires after a few minutes."""
    from lily_host.console.sessions import mint_link_token

    token = await mint_link_token(host.redis)
    return f"{base_url.rstrip('/')}{URL_PREFIX}/signin/{token}"
