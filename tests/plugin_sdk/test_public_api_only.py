"""The architecture check keeps plugins (lily-chatwoot and the template included) on the public API."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def architecture_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture_check", ROOT / "tools" / "architecture_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_repository_passes() -> None:
    assert architecture_check().check(ROOT) == []


def test_chatwoot_and_the_template_are_among_the_plugins_checked() -> None:
    roots = {path.relative_to(ROOT).as_posix() for path in architecture_check().plugin_roots(ROOT)}
    assert {"plugins/lily-chatwoot", "lily_host/scaffold/template"} <= roots


def copy_of_repo(tmp_path: Path) -> Path:
    """The parts the check reads: the host's package, chatwoot and the template."""
    repo = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lily_host", repo / "lily_host", ignore=ignore)
    shutil.copytree(ROOT / "plugins" / "lily-chatwoot", repo / "plugins" / "lily-chatwoot", ignore=ignore)
    return repo


def test_a_private_import_in_chatwoot_fails_the_check(tmp_path: Path) -> None:
    repo = copy_of_repo(tmp_path)
    module = repo / "plugins" / "lily-chatwoot" / "lily_chatwoot" / "tasks.py"
    module.write_text(module.read_text() + "\nfrom lily_host.runtime.host import Host  # noqa\n")
    problems = architecture_check().check(repo)
    assert len(problems) == 1
    assert "lily_chatwoot/tasks.py" in problems[0] and "imports lily_host.runtime.host.Host" in problems[0]


def test_a_private_import_in_the_template_fails_the_check(tmp_path: Path) -> None:
    repo = copy_of_repo(tmp_path)
    template = repo / "lily_host" / "scaffold" / "template" / "lily_myplugin" / "client.py.tmpl"
    template.write_text(template.read_text() + "\n\ndef later() -> None:\n    import lily_host.queue.task_queue\n")
    problems = architecture_check().check(repo)
    assert len(problems) == 1
    assert "client.py.tmpl" in problems[0] and "lily_host.queue.task_queue" in problems[0]
