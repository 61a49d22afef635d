"""Deprecated parts of the plugin API: they keep working for one API version and warn once per plugin."""

from __future__ import annotations

import warnings

import structlog

#: (plugin, name) pairs already warned about in this process.
_warned: set[tuple[str | None, str]] = set()


class LilyDeprecationWarning(DeprecationWarning):
    """A plugin uses a deprecated part of Lily's plugin API (removed in the next API version)."""


def warn_deprecated(plugin: str | None, name: str, advice: str) -> None:
    """Warn once per plugin and name: a ``LilyDeprecationWarning`` and one log line naming the plugin."""
    if (plugin, name) in _warned:
        return
    _warned.add((plugin, name))
    who = f"plugin {plugin!r}" if plugin else "a plugin"
    message = f"{who} uses deprecated {name}: {name} {advice}"
    warnings.warn(message, LilyDeprecationWarning, stacklevel=3)
    structlog.get_logger("lily.plugins").warning("deprecated plugin API used", plugin=plugin, name=name, advice=advice)
