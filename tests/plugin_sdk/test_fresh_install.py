"""From `pip install lily-host` alone: a plugin is generated, tested, installed and listed.

Builds lily-host's wheel, installs it into a fresh virtual environment (packages come from the
configured package index), and there: `lily plugin new` renders the template the wheel carries,
the generated plugin's tests pass before and after `pip install -e .`, lily-chatwoot installs
beside lily-host alone and shows in `lily plugins`, and `lily docs` finds the guide in the wheel.
About 30-60 s: marked ``venv`` (deselect with ``-m "not venv"``); it runs in the default suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.venv


def run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_a_plugin_from_the_installed_lily_host_alone(tmp_path: Path) -> None:
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("LILY_", "REDIS_URL", "VIRTUAL_ENV"))
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    uv = shutil.which("uv")
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    if uv is not None:
        run([uv, "build", "--wheel", "--quiet", "--out-dir", str(wheels), str(ROOT)], cwd=tmp_path, env=env)
        run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=tmp_path, env=env)
        python = venv / "bin" / "python"
        install = [uv, "pip", "install", "--quiet", "--python", str(python)]
    else:
        run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(ROOT)],
            cwd=tmp_path,
            env=env,
        )
        run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env)
        python = venv / "bin" / "python"
        install = [str(python), "-m", "pip", "install", "--quiet"]
    [wheel] = wheels.glob("lily_host-*.whl")
    run([*install, f"{wheel}[test]"], cwd=tmp_path, env=env)
    lily = str(venv / "bin" / "lily")

    # The wheel carries the template and the docs.
    out = run([lily, "plugin", "new", "acme"], cwd=tmp_path, env=env)
    assert "Created lily-acme in lily-acme" in out
    guide = run([lily, "docs", "--path", "writing-a-plugin"], cwd=tmp_path, env=env).strip()
    assert guide.startswith(str(venv)), f"the guide is read from the installed wheel, not the checkout: {guide}"
    assert "lily plugin new" in Path(guide).read_text()

    plugin = tmp_path / "lily-acme"
    pytest_command = [str(python), "-m", "pytest", "-q", "-p", "no:randomly"]
    assert " passed" in run(pytest_command, cwd=plugin, env=env)  # before `pip install -e .`
    run([*install, "-e", str(plugin)], cwd=tmp_path, env=env)
    assert " passed" in run(pytest_command, cwd=plugin, env=env)  # after: the entry point loads it too

    # lily-chatwoot beside lily-host alone: loaded, targeting API 2, its hooks listed.
    run([*install, str(ROOT / "plugins" / "lily-chatwoot")], cwd=tmp_path, env=env)
    listing = json.loads(run([lily, "plugins", "--json"], cwd=tmp_path, env=env))
    by_name = {item["name"]: item for item in listing}
    for name in ("acme", "chatwoot"):
        assert by_name[name]["state"] == "loaded", by_name[name]
        assert by_name[name]["api_version"] == 2
    assert by_name["chatwoot"]["version"] == "0.1.0"
    assert "register_webhooks" in by_name["chatwoot"]["hooks"]
    # ...and its own tests pass against the wheel's lily-host (no checkout of the host on the path).
    chatwoot = ROOT / "plugins" / "lily-chatwoot"
    assert " passed" in run([*pytest_command, "-p", "no:cacheprovider", str(chatwoot / "tests")], cwd=chatwoot, env=env)
    assert {"twilio", "stripe", "calcom", "gcal", "s3"}.isdisjoint(by_name), "only lily-host and the two plugins"
