"""``lily plugin new``, ``lily docs`` and the rows of ``lily plugins``: what a plugin author needs
from an installed lily-host alone (no repository checkout)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lily_host.plugin_api.versions import PLUGIN_API_VERSION
from lily_host.scaffold import ScaffoldError, plugin_name, render_plugin

if TYPE_CHECKING:
    from lily_host.runtime.registry import PluginRecord

#: The plugin guide, as ``lily docs`` names it.
GUIDE = "writing-a-plugin"


def docs_dir() -> Path | None:
    """Where Lily's docs are: inside the installed package (the wheel ships them as
    ``lily_host/docs``), else the ``docs/`` folder of a source checkout (an editable install)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "docs", package.parent / "docs"):
        if (candidate / f"{GUIDE}.md").is_file():
            return candidate
    return None


def doc_pages(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).with_suffix("").as_posix() for path in folder.rglob("*.md"))


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


@click.command("docs")
@click.argument("page", required=False)
@click.option("--path", "path_only", is_flag=True, help="print only the file's path")
def docs(page: str | None, path_only: bool) -> None:
    """List Lily's documentation (installed with lily-host), or print PAGE (e.g. writing-a-plugin)."""
    folder = docs_dir()
    if folder is None:
        raise click.ClickException("the documentation is not installed with this lily-host; reinstall lily-host")
    if page is None:
        click.echo(f"Lily's documentation is in {folder}")
        for name in doc_pages(folder):
            click.echo(f"  {name:<20} {_title(folder / f'{name}.md')}")
        click.echo(f"Print a page with `lily docs PAGE`; the plugin guide: lily docs {GUIDE}")
        return
    name = page.removesuffix(".md").strip("/")
    target = folder / f"{name}.md"
    if name not in doc_pages(folder):
        raise click.ClickException(f"no page {page!r}; pages: {', '.join(doc_pages(folder))}")
    click.echo(str(target) if path_only else target.read_text(encoding="utf-8"), nl=path_only)


@click.group("plugin")
def plugin_group() -> None:
    """Write a new plugin (`lily plugin new NAME`)."""


@plugin_group.command("new")
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="where to write it (default: ./lily-NAME)",
)
def new(name: str, directory: Path | None) -> None:
    """Generate plugin NAME: package, tests, a local fake of the provider, README and CI workflow."""
    try:
        plugin = plugin_name(name)
        destination = directory if directory is not None else Path(f"lily-{plugin}")
        written = render_plugin(plugin, destination)
    except (ScaffoldError, OSError) as error:
        raise click.ClickException(str(error)) from error
    shown = os.path.relpath(destination) if not destination.is_absolute() else str(destination)
    click.echo(f"Created lily-{plugin} in {shown} ({len(written)} files): the plugin {plugin!r}, its tests,")
    click.echo("a local fake of the provider, a README and a CI workflow. Next:")
    click.echo(f"  cd {shown}")
    click.echo('  python -m pip install -e ".[test]"')
    click.echo("  python -m pytest -q")
    folder = docs_dir()
    where = f" ({folder / (GUIDE + '.md')})" if folder is not None else ""
    click.echo(f"The plugin guide: lily docs {GUIDE}{where}")


def api_version(record: PluginRecord) -> int | None:
    """The plugin API version a plugin targets: its ``LILY_PLUGIN_API`` (1 when it declares none;
    the host's own for built-ins); None when the plugin was not imported (disabled)."""
    declared = getattr(record, "api_version", None)
    if isinstance(declared, int) and record.module is not None:
        return declared
    if record.builtin:
        return PLUGIN_API_VERSION
    if record.module is None:
        return None
    value = getattr(record.module, "LILY_PLUGIN_API", 1)
    return value if isinstance(value, int) else None


def plugin_rows(records: list[PluginRecord]) -> list[dict[str, Any]]:
    """``lily plugins``'s rows: each record's listing, with the API version it targets."""
    return [{**record.as_dict(), "api_version": api_version(record)} for record in records]


def echo_plugin_rows(rows: list[dict[str, Any]]) -> None:
    click.echo(f"{'plugin':<18} {'version':<8} {'api':<4} state")
    for item in rows:
        version = item["version"] or "-"
        api = "-" if item["api_version"] is None else str(item["api_version"])
        click.echo(f"{item['name']:<18} {version:<8} {api:<4} {item['state']}")
        if item["error"] or item["missing_settings"]:
            click.echo(f"    why: {item['error'] or 'set ' + ', '.join(item['missing_settings'])}")
        for label in ("hooks", "tasks", "routes", "subscriptions", "capabilities"):
            if item[label]:
                click.echo(f"    {label}: {', '.join(item[label])}")
