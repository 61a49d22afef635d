"""Lint the plugin template as ``lily plugin new`` renders it: ``nox -s lint`` runs this.

The template's files end in ``.tmpl`` (so no tool takes them for the host's own code), which also
hides them from ruff. A generated plugin's CI runs ``ruff check`` and ``ruff format --check`` on day
one, so both must pass for any name: rendered with the shortest and the longest name allowed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lily_host.scaffold import render_plugin  # noqa: E402  (the source tree's, not an installed one)

NAMES = ("ab", "abcdefghijklmnopqrst")


def main() -> int:
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        for name in NAMES:
            target = Path(folder) / f"lily-{name}"
            render_plugin(name, target)
            for command in (["check", "."], ["format", "--check", "."]):
                result = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=target, check=False)
                if result.returncode != 0:
                    print(f"template rendered as {name!r}: `ruff {' '.join(command)}` failed", file=sys.stderr)
                    failed = True
    if not failed:
        print(f"plugin template: ruff check and format pass when rendered as {', '.join(NAMES)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
