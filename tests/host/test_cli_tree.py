"""The whole `lily` command tree, host and plugins: every command and option says what it does,
`lily --help` lists the plugin commands without loading a plugin, and docs/operations.md lists
every command."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lily_host.cli.main import BUILTIN_PLUGIN_COMMANDS, main
from lily_host.dev.embedded_redis import RedisServer
from lily_host.testing import HARNESS_ENV

ROOT = Path(__file__).resolve().parents[2]
#: Modules that cost seconds to import; `lily --help` and `--version` must not touch them.
HEAVY = ("quart", "hypercorn", "boto3", "botocore", "redis", "pydantic", "pydantic_settings", "structlog")


@pytest.fixture
def loaded(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    """The `lily` group with every lazy command imported and every installed plugin's commands added."""
    for name, value in {**HARNESS_ENV, "REDIS_URL": redis_server.url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LILY_PLUGINS", raising=False)
    everything: click.Group = main.load_everything()  # type: ignore[attr-defined]
    return everything


def walk(command: click.Command, path: str = "lily") -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, f"{path} {name}")


def test_every_command_and_option_has_a_help_text(loaded: click.Group) -> None:
    missing = []
    for path, command in walk(loaded):
        if not (command.help or command.short_help):
            missing.append(f"{path}: command without help")
        for param in command.params:
            if isinstance(param, click.Option) and not param.help:
                missing.append(f"{path} {param.opts[0]}: option without help")
    assert not missing, "\n".join(missing)


def test_plugin_commands_are_known_before_the_plugins_load(loaded: click.Group) -> None:
    """What `lily --help` lists without loading a plugin is exactly what the plugins add."""
    hints = main.plugin_command_hints()  # type: ignore[attr-defined]
    host_commands = set(main.lazy_commands) | {  # type: ignore[attr-defined]
        "serve",
        "worker",
        "dev",
        "plugins",
        "health",
        "keygen",
        "outbox",
        "simulate",
    }
    assert set(loaded.commands) - host_commands == set(hints)
    for name, hint in BUILTIN_PLUGIN_COMMANDS.items():
        assert loaded.commands[name].get_short_help_str(limit=200) == hint.help


def test_help_and_version_import_neither_the_web_stack_nor_redis() -> None:
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import lily_host.cli.main as cli\n"
        "for args in (['--help'], ['--version'], ['tasks', '--help'], ['tenants', '--help']):\n"
        "    result = CliRunner().invoke(cli.main, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "assert 'importlib.metadata' not in sys.modules  # plugin commands are found without it\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "lily_gcal" not in loaded and "lily_stripe" not in loaded


def test_help_lists_host_and_plugin_commands() -> None:
    output = CliRunner().invoke(main, ["--help"]).output
    host, _, plugins = output.partition("Plugin commands:")
    for command in ("serve", "worker", "dev", "plugins", "health", "tenants", "tasks", "outbox", "simulate"):
        assert re.search(rf"^  {command} ", host, re.MULTILINE), command
    for command in ("jobs", "sms", "gcal", "billing", "s3"):
        assert re.search(rf"^  {command} ", plugins, re.MULTILINE), command


def test_tenants_set_help_lists_the_fields_of_the_host_and_of_every_plugin(loaded: click.Group) -> None:
    output = CliRunner().invoke(main, ["tenants", "set", "--help"]).output
    for field in ("timezone", "quiet_hours_start", "review_delay_seconds", "review_link", "contact_phone"):
        assert re.search(rf"^  {field} ", output, re.MULTILINE), field
    assert re.search(r"^  id ", output, re.MULTILINE) is None
    from lily_host.cli.tenant_commands import HOST_FIELD_HELP
    from lily_host.plugin_api.tenant import Tenant

    assert set(HOST_FIELD_HELP) == set(Tenant.model_fields) - {"id", "plugins", "created_at", "updated_at"}
    flat = " ".join(output.split())  # however the help is wrapped
    assert "review_link str | None: the http(s) link texted with review requests" in flat
    from lily_host.config.host_settings import HostSettings
    from lily_host.runtime.registry import PluginRegistry

    models = PluginRegistry(HostSettings()).tenant_models
    assert {"twilio", "calcom"} <= set(models)
    for plugin, model in models.items():
        assert f"Fields of plugin {plugin}:" in output
        for field in model.model_fields:
            assert re.search(rf"^  {plugin}\.{field} ", output, re.MULTILINE), f"{plugin}.{field}"


def test_an_inactive_plugins_command_says_why(redis_server: RedisServer) -> None:
    env = {**HARNESS_ENV, "REDIS_URL": redis_server.url, "LILY_DISABLE_PLUGINS": "gcal", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "lily_host.cli.main", "gcal", "connect", "acme"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: `lily gcal` comes from plugin gcal, which is not active: listed in LILY_DISABLE_PLUGINS "
        "(see `lily plugins`)"
    ]


def documented_commands() -> set[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    return {match.group(1).strip() for match in re.finditer(r"^\| `(lily [a-z0-9 -]+?)`", section, re.MULTILINE)}


def test_operations_md_lists_every_command(loaded: click.Group) -> None:
    """docs/operations.md's command table has a row per command (leaf or group), and no stale rows."""
    commands = {path for path, command in walk(loaded) if path != "lily"}
    assert documented_commands() == commands


def test_each_invocation_loads_the_plugin_commands_of_its_own_environment(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**HARNESS_ENV, "REDIS_URL": redis_server.url, "LILY_PLUGINS": "twilio"}.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    limited = runner.invoke(main, ["gcal", "--help"])
    assert limited.exit_code == 1
    assert "`lily gcal` comes from plugin gcal, which is not active: not listed in LILY_PLUGINS" in limited.output
    monkeypatch.delenv("LILY_PLUGINS")
    everything = runner.invoke(main, ["gcal", "--help"])
    assert everything.exit_code == 0, everything.output
    assert "connect" in everything.output


LISTINGS = (
    "lily plugins",
    "lily health",
    "lily outbox",
    "lily simulate",
    "lily tenants list",
    "lily tenants show",
    "lily tenants key list",
    "lily tasks stats",
    "lily tasks list",
    "lily jobs complete",
    "lily jobs cancel",
    "lily jobs show",
    "lily sms messages",
    "lily sms suppressed",
)


def test_every_listing_offers_json(loaded: click.Group) -> None:
    commands = dict(walk(loaded))
    for path in LISTINGS:
        options = [opt for param in commands[path].params for opt in getattr(param, "opts", [])]
        assert "--json" in options, path
