"""pluggy's markers for Lily's hooks: plugins mark implementations with ``hookimpl``."""

from __future__ import annotations

import pluggy

#: The pluggy project name: the entry-point group is ``lily.plugins``.
PROJECT = "lily"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
