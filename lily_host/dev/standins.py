"""``lily dev``'s local stand-ins for providers: a plugin's fake, started so the plugin just works.

A plugin whose provider needs an account names a stand-in on its settings model:
``lily_dev_standin = "package.module:function"`` (a path, so nothing is imported outside
``lily dev``). ``lily dev`` calls the function with a :class:`DevContext` before the app is built;
it returns None when the environment already configures the plugin, or a stand-in: an object
with ``description`` (a line for the banner), ``env`` (the variables that point the plugin at the
local server; set for ``lily dev`` and the commands run beside it) and ``stop()``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lily_host.observability.log import get_logger
from lily_host.runtime.registry import PluginRegistry, PluginState

log = get_logger("lily.dev")


@dataclass(frozen=True)
class DevContext:
    """What a stand-in may need to know about the ``lily dev`` it serves."""

    data_dir: Path
    #: Where Lily is reached (``http://localhost:8000``).
    public_url: str
    environ: Mapping[str, str]


class DevStandIn(Protocol):
    description: str
    env: Mapping[str, str]

    def stop(self) -> None: ...


def _factory(path: str) -> Callable[[DevContext], Any]:
    module_name, _, attribute = path.partition(":")
    factory: Callable[[DevContext], Any] = getattr(importlib.import_module(module_name), attribute)
    return factory


def start_standins(registry: PluginRegistry, context: DevContext) -> dict[str, DevStandIn]:
    """Start every stand-in a plugin names, and put its variables in this process's environment
    (variables already set win). One that cannot start is logged and skipped: its plugin then
    runs as configured, or stays ``not_configured`` with the banner naming what to set."""
    started: dict[str, DevStandIn] = {}
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


def stop_standins(standins: Mapping[str, DevStandIn]) -> None:
    for name, standin in standins.items():
        try:
            standin.stop()
        except Exception as error:  # stopping the others matters more
            log.warning("local stand-in did not stop cleanly", plugin=name, error=str(error))
