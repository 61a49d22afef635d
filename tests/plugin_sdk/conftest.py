"""Plugin SDK tests: the sample plugins of tests/host are importable by module name here too."""

from __future__ import annotations

import sys
from pathlib import Path

HOST_SAMPLES = Path(__file__).resolve().parents[1] / "host"
if str(HOST_SAMPLES) not in sys.path:
    sys.path.insert(0, str(HOST_SAMPLES))
