"""Lets the tests import the plugin before it is pip-installed (the lily_harness fixture comes from lily-host)."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
