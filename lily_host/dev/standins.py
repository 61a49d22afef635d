"""``lily dev``'s local stand-ins for providers: a plugin's fake, started so the plugin just works.

A plugin whose provider needs an account names a stand-in on its settings model:
``lily_dev_standin = "package.module:function"`` (a path, so nothing, moto say, is imported outside
``lily dev``). ``lily dev`` calls the function with a :class:`~lily_host.plugin_api.dev_standin.DevContext`
before the app is built; it returns None when the environment already configures the plugin, or a
stand-in: an object with ``description`` (a line for the banner), ``env`` (the variables that point
the plugin at the local server; set for ``lily dev`` and the commands run beside it), ``stop()``
and optionally ``prepare_tenant(host, tenant_id)``. ``lily_host.DevStandIn`` is one, ready-made.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from lily_host.observability.log import get_logger
from lily_host.plugin_api.dev_standin import DevContext
from lily_host.runtime.registry import PluginRegistry, PluginState

if TYPE_CHECKING:
    from lily_host.plugin_api.host_api import LilyHost

log = get_logger("lily.dev")


class StandIn(Protocol):
    """What ``lily dev`` reads from a stand-in (plugins may return their own object of this shape)."""

    description: str
    env: Mapping[str, str]

    def stop(self) -> None: ...


def _factory(path: str) -> Callable[[DevContext], Any]:
    module_name, _, attribute = path.partition(":")
    factory: Callable[[DevContext], Any] = getattr(importlib.import_module(module_name), attribute)
    return factory


def start_standins(registry: PluginRegistry, context: DevContext) -> dict[str, StandIn]:
    """Start every stand-in a plugin names, and put its variables in this process's environment
    (variables already set win). One that cannot start (say moto is not installed) is logged and
    skipped: its plugin then runs as configured, or stays ``not_configured`` with the banner naming
    what to set."""
    started: dict[str, StandIn] = {}
    for name, record in registry.records.items():
        model = record.settings_model
        path = getattr(model, "lily_dev_standin", None) if model is not None else None
        if not isinstance(path, str) or record.state == PluginState.DISABLED:
            continue
        try:
            standin = _factory(path)(context)
        except Exception as error:  # a stand-in that fails must not stop `lily dev`
            log.warning("local stand-in not started", plugin=name, error=f"{type(error).__name__}: {error}")
            continue
        if standin is None:
            continue
        for variable, value in standin.env.items():
            os.environ.setdefault(variable, value)
        started[name] = standin
    return started


def tenant_preparation(standin: StandIn) -> Callable[[LilyHost, str], Awaitable[None]] | None:
    """The stand-in's ``prepare_tenant(host, tenant_id)``, run with the demo tenant on every start, if it has one."""
    prepare: Callable[[LilyHost, str], Awaitable[None]] | None = getattr(standin, "prepare_tenant", None)
    return prepare


def stop_standins(standins: Mapping[str, StandIn]) -> None:
    for name, standin in standins.items():
        try:
            standin.stop()
        except Exception as error:  # stopping the others matters more
            log.warning("local stand-in did not stop cleanly", plugin=name, error=str(error))
