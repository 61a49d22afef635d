"""`lily plugin new`: the template ships inside lily-host and renders a whole plugin, name throughout."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from lily_host.cli.main import main
from lily_host.plugin_api.versions import HOST_VERSION, PLUGIN_API_VERSION
from lily_host.scaffold import PLACEHOLDER, ScaffoldError, plugin_name, render_plugin, template_files

EXPECTED = {
    "pyproject.toml",
    "README.md",
    ".gitignore",
    ".github/workflows/ci.yml",
    "lily_acme/__init__.py",
    "lily_acme/settings.py",
    "lily_acme/webhooks.py",
    "lily_acme/tasks.py",
    "lily_acme/client.py",
    "lily_acme/fake.py",
    "lily_acme/plugin.py",
    "tests/conftest.py",
    "tests/test_plugin.py",
}


def test_the_template_renders_a_whole_plugin_with_the_name_throughout(tmp_path: Path) -> None:
    written = render_plugin("acme", tmp_path / "lily-acme")
    relative = {path.relative_to(tmp_path / "lily-acme").as_posix() for path in written}
    assert relative == EXPECTED
    for path in written:
        text = path.read_text()
        assert PLACEHOLDER not in text.lower(), f"{path} still says {PLACEHOLDER}"
        assert "__LILY_" not in text
        if path.suffix == ".py":
            ast.parse(text, filename=str(path))
    root = tmp_path / "lily-acme"
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "lily-acme"' in pyproject
    assert '[project.entry-points."lily.plugins"]\nacme = "lily_acme.plugin"' in pyproject
    assert f'"lily-host>={HOST_VERSION}"' in pyproject
    plugin = (root / "lily_acme" / "plugin.py").read_text()
    assert f"LILY_PLUGIN_API = {PLUGIN_API_VERSION}\n" in plugin
    settings = (root / "lily_acme" / "settings.py").read_text()
    assert 'ENV_PREFIX = "ACME_"' in settings and 'PROVIDER = "Acme"' in settings
    assert '"lily_index": "acme_account"' in settings


def test_what_the_template_covers(tmp_path: Path) -> None:
    """The issue's list: settings, indexed tenant settings, a signed webhook with a per-tenant secret,
    a task, a health check, erasure on tenant.deleted, a simulation, a fake on lily_host.fakes."""
    root = tmp_path / "lily-acme"
    render_plugin("acme", root)
    package = {path.name: path.read_text() for path in (root / "lily_acme").glob("*.py")}
    plugin = package["plugin.py"]
    for hook in (
        "register_settings",
        "register_tenant_settings",
        "register_webhooks",
        "register_tasks",
        "register_event_subscriptions",
        "register_health_checks",
        "register_simulations",
    ):
        assert f"def {hook}(" in plugin
    assert "EventSubscription(TENANT_DELETED" in plugin
    assert "tenant.plugin_settings" in package["webhooks.py"]  # the tenant's own secret in verify
    assert "raise UnknownTenant(" in package["webhooks.py"]
    assert "ctx.host.once(" in package["tasks.py"] and "release_once(" in package["tasks.py"]
    assert "from lily_host.fakes import LocalHTTPServer" in package["fake.py"]
    tests = (root / "tests" / "test_plugin.py").read_text()
    assert "lily_harness(extra_modules=" in tests


@pytest.mark.parametrize(
    ("given", "name"), [("chatwoot", "chatwoot"), ("lily-jobber", "jobber"), ("Lily_HCP2", "hcp2")]
)
def test_plugin_names(given: str, name: str) -> None:
    assert plugin_name(given) == name


@pytest.mark.parametrize("given", ["a", "9lives", "my-crm", "acme_co", "x" * 21, "", "lily-"])
def test_bad_names_are_refused_with_the_rule(given: str) -> None:
    with pytest.raises(ScaffoldError, match="lowercase letters and digits"):
        plugin_name(given)


def test_the_cli_generates_and_says_what_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plugin", "new", "lily-acme"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Created lily-acme in lily-acme (13 files)" in result.output
    assert "  cd lily-acme\n" in result.output
    assert 'python -m pip install -e ".[test]"' in result.output
    assert "The plugin guide: lily docs writing-a-plugin (" in result.output
    assert (tmp_path / "lily-acme" / "lily_acme" / "plugin.py").is_file()
    # A second time: the folder is taken; one line, nothing changed.
    before = sorted(path.as_posix() for path in (tmp_path / "lily-acme").rglob("*"))
    again = CliRunner().invoke(main, ["plugin", "new", "acme"])
    assert again.exit_code == 1
    assert "already exists and is not empty" in again.output and "Traceback" not in again.output
    assert sorted(path.as_posix() for path in (tmp_path / "lily-acme").rglob("*")) == before
    bad = CliRunner().invoke(main, ["plugin", "new", "my-crm"])
    assert bad.exit_code == 1 and "lowercase letters and digits" in bad.output


def test_the_template_is_package_data_with_no_python_module_in_it() -> None:
    """``.tmpl`` files: mypy, pytest and the layer check never take the template for host code."""
    files = [relative for relative, _text in template_files()]
    assert all(relative.endswith(".tmpl") for relative in files)
    template = Path(__file__).resolve().parents[2] / "lily_host" / "scaffold" / "template"
    assert not list(template.rglob("*.py"))


def test_lily_docs_lists_and_prints_the_guide() -> None:
    runner = CliRunner()
    listing = runner.invoke(main, ["docs"], catch_exceptions=False)
    assert listing.exit_code == 0
    assert "writing-a-plugin" in listing.output and "plugins/chatwoot" in listing.output
    guide = runner.invoke(main, ["docs", "writing-a-plugin"], catch_exceptions=False)
    assert guide.output.startswith("# Writing a plugin")
    path = runner.invoke(main, ["docs", "--path", "writing-a-plugin"], catch_exceptions=False).output.strip()
    assert Path(path).read_text().startswith("# Writing a plugin")
    missing = runner.invoke(main, ["docs", "nope"])
    assert missing.exit_code == 1 and "no page 'nope'" in missing.output
