"""A click group that imports its commands on use, so ``lily --help`` and ``lily --version`` stay fast.

Loading every plugin costs seconds (Quart, boto3, redis, the plugins' settings). The ``lily``
group therefore knows three kinds of commands:

* host commands defined next to the group (cheap: click only, heavy imports inside the commands);
* lazy host commands, named ``module:attribute`` and imported when called (``tasks``, ``tenants``);
* plugin commands, added by the plugins' ``register_commands`` hook. Their names are known without
  loading any plugin: the built-ins' from a table here, installed plugins' from the
  ``lily.commands`` entry points their packages declare (docs/hooks.md, ``register_commands``).
  The plugins load only when such a command (or an unknown name) is asked for, once per invocation.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click

__all__ = ["COMMAND_ENTRY_POINTS", "LazyGroup", "PluginCommandHint", "PluginLoadResult"]

#: Entry-point group in which a plugin package names the commands its ``register_commands`` adds:
#: ``[project.entry-points."lily.commands"] billing = "lily_stripe.plugin"`` (value: the plugin's module).
COMMAND_ENTRY_POINTS = "lily.commands"
PLUGIN_ENTRY_POINTS = "lily.plugins"
#: Where an invocation keeps the plugin commands it loaded (``click.Context.meta`` of its root).
_PLUGIN_COMMANDS = "lily.plugin_commands"


@dataclass(frozen=True)
class PluginCommandHint:
    """A plugin command known before the plugin loads: its name, its plugin, a one-line help."""

    name: str
    plugin: str
    help: str


@dataclass(frozen=True)
class PluginLoadResult:
    """What loading the plugins said: each inactive plugin's reason, or why none loaded at all."""

    inactive: Mapping[str, str]
    error: str | None = None


PluginLoader = Callable[[click.Group], PluginLoadResult]


def _entry_point_sections(text: str) -> dict[str, dict[str, str]]:
    """``entry_points.txt`` (an INI file): section → name → value."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif current is not None and "=" in line:
            name, _, value = line.partition("=")
            current[name.strip()] = value.strip()
    return sections


def _summary(metadata_dir: str) -> str:
    for file_name in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(metadata_dir, file_name), encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        break  # the headers end at the first blank line
                    if line.startswith("Summary:"):
                        return line.removeprefix("Summary:").strip()
        except OSError:
            continue
    return ""


def installed_command_hints() -> dict[str, PluginCommandHint]:
    """The ``lily.commands`` entry points of the installed distributions, read straight from their
    ``entry_points.txt`` files.

    ``importlib.metadata`` would parse every distribution's entry points (≈ 20-100 ms on a busy
    machine, most of ``lily --help``'s budget); this reads the files on ``sys.path`` and parses only
    the few that mention Lily. Like ``importlib.metadata``, the first distribution of a name on the
    path wins. tests/host/test_cli_tree.py checks the result against what the plugins register.
    """
    seen: set[str] = set()
    plugins: dict[str, str] = {}
    commands: dict[str, tuple[str, str]] = {}
    for entry in sys.path:
        try:
            listing = os.scandir(entry or ".")
        except OSError:
            continue
        with listing:
            for item in listing:
                if not item.name.endswith((".dist-info", ".egg-info")):
                    continue
                distribution = item.name.rpartition(".")[0].split("-")[0].lower().replace("_", "-")
                if distribution in seen:
                    continue
                seen.add(distribution)
                try:
                    with open(os.path.join(item.path, "entry_points.txt"), encoding="utf-8") as handle:
                        text = handle.read()
                except OSError:
                    continue
                if "[lily." not in text:
                    continue
                sections = _entry_point_sections(text)
                for name, value in sections.get(PLUGIN_ENTRY_POINTS, {}).items():
                    plugins.setdefault(value, name)
                for name, value in sections.get(COMMAND_ENTRY_POINTS, {}).items():
                    commands.setdefault(name, (value, item.path))
    hints: dict[str, PluginCommandHint] = {}
    for name, (value, metadata_dir) in commands.items():
        plugin = plugins.get(value, value)
        summary = _summary(metadata_dir).split(":")[0]
        text = f"{summary} (plugin {plugin})." if summary else f"Commands of plugin {plugin}."
        hints[name] = PluginCommandHint(name, plugin, text)
    return hints


class LazyGroup(click.Group):
    """The ``lily`` group: host commands, lazily imported host commands, plugin commands on demand."""

    def __init__(
        self,
        *args: Any,
        lazy_commands: Mapping[str, str] | None = None,
        builtin_plugin_commands: Mapping[str, PluginCommandHint] | None = None,
        plugin_loader: PluginLoader | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        self.builtin_plugin_commands = dict(builtin_plugin_commands or {})
        self.plugin_loader = plugin_loader
        self._installed_hints: dict[str, PluginCommandHint] | None = None

    # --- what exists -------------------------------------------------------------------------------

    def plugin_command_hints(self) -> dict[str, PluginCommandHint]:
        """Every plugin command known without loading a plugin: built-ins' and the ``lily.commands`` entry points."""
        if self._installed_hints is None:
            self._installed_hints = installed_command_hints()
        return {**self._installed_hints, **self.builtin_plugin_commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands, *self.plugin_command_hints()})

    # --- finding one ---------------------------------------------------------------------------------

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in self.lazy_commands:
            return self._import(cmd_name)
        commands, result = self._plugin_commands(ctx)
        if cmd_name in commands:
            return commands[cmd_name]
        hint = self.plugin_command_hints().get(cmd_name)
        if hint is not None and result.error is not None:
            raise click.ClickException(f"`lily {cmd_name}` needs the plugins, which did not load: {result.error}")
        if hint is not None and hint.plugin in result.inactive:
            raise click.ClickException(
                f"`lily {cmd_name}` comes from plugin {hint.plugin}, which is not active: "
                f"{result.inactive[hint.plugin]} (see `lily plugins`)"
            )
        return None

    def _import(self, cmd_name: str) -> click.Command:
        module_name, _, attribute = self.lazy_commands[cmd_name].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
        self.add_command(command, cmd_name)
        return command

    def _plugin_commands(self, ctx: click.Context) -> tuple[dict[str, click.Command], PluginLoadResult]:
        """The plugins' commands for this invocation, loaded once per invocation.

        Kept in the invocation's root context, not added to the group: which plugins are active
        depends on the environment of the run (LILY_PLUGINS, credentials), and a process that
        invokes ``lily`` more than once (the test suite) must see each run's own.
        """
        meta = ctx.find_root().meta
        if _PLUGIN_COMMANDS not in meta:
            target = click.Group(self.name)
            result = PluginLoadResult(inactive={}) if self.plugin_loader is None else self.plugin_loader(target)
            meta[_PLUGIN_COMMANDS] = (dict(target.commands), result)
        loaded: tuple[dict[str, click.Command], PluginLoadResult] = meta[_PLUGIN_COMMANDS]
        return loaded

    def load_everything(self) -> click.Group:
        """A group with every command: the host's (lazy ones imported) and those the plugins add now.

        For tests and documentation checks that walk the whole tree."""
        for name in self.lazy_commands:
            if name not in self.commands:
                self._import(name)
        everything = click.Group(self.name, commands=dict(self.commands), help=self.help)
        if self.plugin_loader is not None:
            self.plugin_loader(everything)
        return everything

    # --- help ------------------------------------------------------------------------------------------

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Host commands with their help; plugin commands from their hints, without loading the plugins."""
        limit = formatter.width - 6 - max((len(name) for name in self.list_commands(ctx)), default=0)
        hints = self.plugin_command_hints()
        host_rows = []
        for name in sorted({*self.commands, *self.lazy_commands} - set(hints)):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                host_rows.append((name, command.get_short_help_str(limit)))
        if host_rows:
            with formatter.section("Commands"):
                formatter.write_dl(host_rows)
        plugin_rows = [(name, hints[name].help) for name in sorted(hints)]
        with formatter.section("Plugin commands"):
            if plugin_rows:
                formatter.write_dl(plugin_rows)
            formatter.write_paragraph()
            formatter.write_text(
                "Plugins load on first use: `lily COMMAND --help` shows a plugin command's own help, "
                "`lily plugins` which plugins are active."
            )
