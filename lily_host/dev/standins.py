"""``lily dev`` starts and stops the plugins' local stand-ins for their providers.

A plugin names its stand-in on its settings model (``lily_dev_standin``, see
:mod:`lily_host.plugin_api.dev_standin`); ``lily dev`` imports it only then, so heavy imports such
as moto happen only under ``lily dev``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from lily_host.observability.log import get_logger
from lily_host.plugin_api.dev_standin import DevContext, DevStandIn, StandInFactory
from lily_host.runtime.registry import PluginRegistry

log = get_logger("lily.dev")


def _factory(path: str) -> StandInFactory:
    module_name, _, attribute = path.partition(":")
    factory: StandInFactory = getattr(importlib.import_module(module_name), attribute)
    return factory


def start_standins(registry: PluginRegistry, context: DevContext) -> dict[str, DevStandIn]:
    """Start the stand-in of every plugin that names one and is not configured by the environment.

    A stand-in that cannot start (say moto is not installed) is logged and skipped: the plugin then
    stays ``not_configured`` and ``lily dev``'s banner says which variables to set.
    """
    started: dict[str, DevStandIn] = {}
    for name, record in registry.records.items():
        model = record.settings_model
        path = getattr(model, "lily_dev_standin", None) if model is not None else None
        if not isinstance(path, str) or record.state.value == "disabled":
            continue
        try:
            standin = _factory(path)(context)
        except Exception as error:  # a missing optional dependency must not stop `lily dev`
            log.warning("local stand-in not started", plugin=name, error=f"{type(error).__name__}: {error}")
            continue
        if standin is not None:
            started[name] = standin
    return started


def stop_standins(standins: Mapping[str, DevStandIn]) -> None:
    for name, standin in standins.items():
        try:
            standin.stop()
        except Exception as error:  # stopping the others matters more
            log.warning("local stand-in did not stop cleanly", plugin=name, error=str(error))
