"""The contract is documented hook by hook, and every hook is exercised by some test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from lily_host.plugin_api import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def spec_names() -> list[str]:
    return sorted(
        name for name, value in vars(hookspecs).items() if inspect.isfunction(value) and hasattr(value, "lily_spec")
    )


def test_hook_names_list_matches_the_specs() -> None:
    assert sorted(hookspecs.HOOK_NAMES) == spec_names()


def test_every_hook_has_a_docstring() -> None:
    for name in spec_names():
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"


def test_every_hook_has_a_section_with_signature_and_example_in_docs() -> None:
    text = (ROOT / "docs" / "hooks.md").read_text()
    for name in spec_names():
        match = re.search(rf"^## `{name}`\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
        assert match, f"docs/hooks.md has no section for hook {name}"
        section = match.group(1)
        assert f"def {name}(" in section, f"the {name} section does not show its signature"
        assert "@hookimpl" in section, f"the {name} section has no example"


def test_every_hook_is_implemented_somewhere_under_test() -> None:
    sources = "\n".join(
        path.read_text()
        for pattern in ("lily_host/**/*.py", "plugins/*/lily_*/**/*.py", "tests/**/*.py")
        for path in ROOT.glob(pattern)
    )
    for name in spec_names():
        assert re.search(rf"@hookimpl[^\n]*\n(?:async )?def {name}\(", sources), f"no implementation of {name}"
