"""Lets the tests import the plugin before it is pip-installed; the fixtures (``lily_harness``,
``redis_server``) come from lily-host's pytest plugin, registered when lily-host is installed."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
