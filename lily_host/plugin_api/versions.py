"""The host's release and the plugin API's version, in the one place both are read from."""

from __future__ import annotations

#: The ``lily-host`` release.
HOST_VERSION = "0.1.0"

#: The plugin API this host offers. A plugin declares the version it was written for
#: (``LILY_PLUGIN_API = 2`` in its module); one needing a newer API is ``incompatible``.
PLUGIN_API_VERSION = 2

#: The oldest plugin API version still served: names deprecated since then still work and warn once.
OLDEST_SUPPORTED_API_VERSION = 1
