"""The architecture check passes on this repository and fails on each kind of violation it guards."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "architecture_check.py"


def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["architecture_check"] = module
    spec.loader.exec_module(module)
    return module


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


#: A tiny host in the real layout: the facade, two wings, a plugin.
CLEAN = {
    "lily_host/__init__.py": "from lily_host.plugin_api.contract import Thing\n",
    "lily_host/plugin_api/__init__.py": "",
    "lily_host/plugin_api/contract.py": "class Thing: ...\n",
    "lily_host/runtime/__init__.py": "",
    "lily_host/runtime/host.py": "from lily_host.plugin_api.contract import Thing\n",
    "lily_host/testing.py": "from lily_host.runtime.host import Thing\n",
    "plugins/lily-acme/lily_acme/__init__.py": "",
    "plugins/lily-acme/lily_acme/plugin.py": "from lily_host import Thing\nfrom lily_host.testing import Thing as T\n",
}


def test_this_repository_passes() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), str(ROOT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    write(tmp_path, CLEAN)
    assert checker().check(tmp_path) == []


def test_a_plugin_importing_a_host_internal_fails_even_inside_a_function(tmp_path: Path) -> None:
    write(tmp_path, CLEAN)
    write(
        tmp_path, {"plugins/lily-acme/lily_acme/tasks.py": "def f():\n    from lily_host.runtime.host import Thing\n"}
    )
    problems = checker().check(tmp_path)
    assert len(problems) == 1
    assert "lily_acme/tasks.py:2: imports lily_host.runtime.host.Thing" in problems[0]
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "1 violation" in result.stdout


def test_a_template_importing_a_host_internal_fails(tmp_path: Path) -> None:
    write(tmp_path, CLEAN)
    template = "lily_host/scaffold/template/lily_myplugin/plugin.py.tmpl"
    write(tmp_path, {"lily_host/scaffold/__init__.py": "", template: "import lily_host.tenants.store\n"})
    [problem] = checker().check(tmp_path)
    assert "lily_myplugin/plugin.py.tmpl:1" in problem and "lily_host.tenants.store" in problem


def test_an_import_from_a_higher_layer_fails_even_under_type_checking(tmp_path: Path) -> None:
    write(tmp_path, CLEAN)
    write(
        tmp_path,
        {
            "lily_host/plugin_api/hookspecs.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lily_host.runtime.host import Thing\n"
            )
        },
    )
    [problem] = checker().check(tmp_path)
    assert "lily_host.plugin_api.hookspecs (plugin_api) imports lily_host.runtime.host" in problem
    assert "higher layer (runtime)" in problem


def test_an_import_cycle_fails(tmp_path: Path) -> None:
    write(tmp_path, CLEAN)
    write(
        tmp_path,
        {
            "lily_host/runtime/a.py": "from lily_host.runtime import b\n",
            "lily_host/runtime/b.py": "def f():\n    from lily_host.runtime.a import x\n",
        },
    )
    problems = checker().check(tmp_path)
    assert problems == ["import cycle in lily_host: lily_host.runtime.a -> lily_host.runtime.b"]


def test_an_internal_module_importing_the_facade_fails(tmp_path: Path) -> None:
    write(tmp_path, CLEAN)
    write(tmp_path, {"lily_host/runtime/uses_facade.py": "from lily_host import Thing\n"})
    problems = checker().check(tmp_path)
    assert any("imports the lily_host facade" in problem for problem in problems)


def test_a_wing_in_no_layer_fails(tmp_path: Path) -> None:
    write(tmp_path, CLEAN)
    write(
        tmp_path,
        {"lily_host/misc/__init__.py": "", "lily_host/misc/x.py": "from lily_host.runtime.host import Thing\n"},
    )
    problems = checker().check(tmp_path)
    assert any("is in no layer" in problem for problem in problems)
