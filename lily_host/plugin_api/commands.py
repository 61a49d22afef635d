"""Plugin CLI commands that need the running host: ``@with_host``-style helper for ``register_commands``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, TypeVar, cast

import click

from lily_host.plugin_api.cli_output import echo_json
from lily_host.plugin_api.errors import ConfigurationError

if TYPE_CHECKING:  # pydantic-heavy: `lily --help` imports this module, a command's run imports them
    from lily_host.plugin_api.host_api import LilyHost

__all__ = ["HOST_OPENER", "HostOpener", "echo_json", "set_default_host_opener", "with_host"]

T = TypeVar("T")
#: The host type a command works with: plugins use LilyHost; the host's own commands its concrete Host.
H = TypeVar("H", bound="LilyHost")

#: Where the ``lily`` command puts its host opener (``click.Context.meta``): the CLI injects how a
#: host is built, so this module needs nothing above the plugin API.
HOST_OPENER = "lily.open_host"

HostOpener = Callable[[], AbstractAsyncContextManager["LilyHost"]]

_default_opener: list[HostOpener] = []


def set_default_host_opener(opener: HostOpener) -> None:
    """The opener used when a command runs outside ``lily`` (a plugin's group invoked on its own, as
    tests do). The ``lily`` CLI sets it when it is imported."""
    _default_opener[:] = [opener]


def with_host(work: Callable[[H], Awaitable[T]]) -> T:
    """Run ``await work(host)`` with a host built from the environment (Redis, tenants, plugins),
    inside a ``lily`` command; closes it afterwards. Configuration and tenant errors become one-line
    CLI errors (non-zero exit)."""
    context = click.get_current_context(silent=True)
    opener: HostOpener | None = None if context is None else context.meta.get(HOST_OPENER)
    if opener is None and _default_opener:
        opener = _default_opener[0]
    if opener is None:
        raise click.ClickException("this command must run under `lily` (no host opener in the click context)")

    import asyncio  # here: `lily tasks --help` imports this module and should not pay for asyncio

    from lily_host.plugin_api.tenant import TenantError

    async def run() -> T:
        async with opener() as host:
            return await work(cast(H, host))

    try:
        return asyncio.run(run())
    except (ConfigurationError, TenantError) as error:
        raise click.ClickException(str(error)) from error
