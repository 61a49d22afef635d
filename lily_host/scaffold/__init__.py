"""``lily plugin new NAME``: a new plugin's repository, rendered from the template shipped in lily-host.

The template (``lily_host/scaffold/template/``, package data) is a complete plugin named
``myplugin``: settings, tenant settings with an indexed field, a signed webhook verified with the
tenant's own secret, a task that calls the provider once per event, a health check, erasure on
``tenant.deleted``, a simulation, a local fake of the provider, tests on the host's fixtures, a
README and a CI workflow. Rendering replaces the name in every spelling (``myplugin``,
``Myplugin``, ``MYPLUGIN``) in paths and text; files end in ``.tmpl`` so that no tool mistakes the
template for the host's own code, and ``_github``/``_gitignore`` become ``.github``/``.gitignore``.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from lily_host.plugin_api.versions import HOST_VERSION, PLUGIN_API_VERSION

__all__ = ["PLACEHOLDER", "ScaffoldError", "plugin_name", "render_plugin", "template_files"]

#: The template plugin's name, replaced by the new plugin's.
PLACEHOLDER = "myplugin"
SUFFIX = ".tmpl"
#: Template path parts renamed on the way out (dot-files are kept out of package data).
RENAMED_PARTS = {"_github": ".github", "_gitignore": ".gitignore"}
NAME = re.compile(r"[a-z][a-z0-9]{1,19}")


class ScaffoldError(ValueError):
    """The plugin cannot be generated as asked; the message says why and what to do."""


def plugin_name(text: str) -> str:
    """The plugin name in ``text`` (``chatwoot``, ``lily-chatwoot`` and ``lily_chatwoot`` all give ``chatwoot``)."""
    name = text.strip().lower()
    for prefix in ("lily-", "lily_"):
        name = name.removeprefix(prefix)
    if not NAME.fullmatch(name):
        raise ScaffoldError(
            f"plugin name {text!r} must be 2-20 lowercase letters and digits, starting with a letter "
            "(e.g. chatwoot); it becomes the package lily_<name> and the distribution lily-<name>"
        )
    return name


def substitute(text: str, name: str) -> str:
    text = text.replace("__LILY_PLUGIN_API__", str(PLUGIN_API_VERSION)).replace("__LILY_HOST_VERSION__", HOST_VERSION)
    return (
        text.replace(PLACEHOLDER.upper(), name.upper())
        .replace(PLACEHOLDER.capitalize(), name.capitalize())
        .replace(PLACEHOLDER, name)
    )


def template_root() -> Traversable:
    return resources.files("lily_host.scaffold") / "template"


def template_files() -> list[tuple[str, str]]:
    """Every template file as (relative path with ``/``, text), in a stable order."""
    found: list[tuple[str, str]] = []

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda item: item.name):
            if entry.name == "__pycache__":
                continue
            relative = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, relative + "/")
            elif entry.name.endswith(SUFFIX):
                found.append((relative, entry.read_text(encoding="utf-8")))

    walk(template_root(), "")
    return found


def output_path(relative: str, name: str) -> str:
    parts = [RENAMED_PARTS.get(part, part) for part in relative.removesuffix(SUFFIX).split("/")]
    return substitute("/".join(parts), name)


def render_plugin(name: str, destination: Path) -> list[Path]:
    """Write plugin ``name`` into ``destination`` (new, or an empty folder); the files written."""
    name = plugin_name(name)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ScaffoldError(f"{destination} already exists and is not empty: pick another folder with --directory")
    written: list[Path] = []
    for relative, text in template_files():
        target = destination / output_path(relative, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(substitute(text, name), encoding="utf-8")
        written.append(target)
    return written
