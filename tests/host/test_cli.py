"""The `lily` command line, against a real Redis."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lily_host.cli.main import main
from lily_host.dev.embedded_redis import RedisServer
from lily_host.testing import TEST_SECRET_KEY


@pytest.fixture
def runner(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> CliRunner:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("LILY_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("LILY_ENV", "test")
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_help_explains_every_command(runner: CliRunner) -> None:
    output = invoke(runner, "--help")
    for command in ("serve", "worker", "dev", "plugins", "health", "tenants", "tasks", "outbox", "simulate"):
        assert command in output


def test_tenant_lifecycle_from_the_cli(runner: CliRunner) -> None:
    assert "created" in invoke(runner, "tenants", "add", "acme", "--name", "Acme Wash", "--timezone", "America/Chicago")
    header, row = invoke(runner, "tenants", "list").splitlines()
    assert header.split() == ["id", "name", "timezone", "plan", "status", "created"]
    assert row.split()[:5] == ["acme", "Acme", "Wash", "America/Chicago", "none"]
    invoke(runner, "tenants", "set", "acme", "review_delay_seconds=7200", "quiet_hours_start=20:00")
    shown = invoke(runner, "tenants", "show", "acme")
    assert "Acme Wash (America/Chicago)" in shown
    assert "quiet hours: 20:00-09:00" in shown
    assert "plan: none  status: none  trial end: -" in shown
    minted = invoke(runner, "tenants", "key", "mint", "acme", "--label", "crm")
    key_id = minted.split("key id: ")[1].split()[0]
    header, row = invoke(runner, "tenants", "key", "list", "acme").splitlines()
    assert header.split() == ["key", "id", "created", "label"]
    assert row.startswith(key_id) and row.endswith("crm")
    [key_json] = json.loads(invoke(runner, "tenants", "key", "list", "acme", "--json"))
    assert (key_json["key_id"], key_json["label"]) == (key_id, "crm")
    assert isinstance(key_json["created"], float)
    [tenant_json] = json.loads(invoke(runner, "tenants", "list", "--json"))
    assert (tenant_json["id"], tenant_json["timezone"]) == ("acme", "America/Chicago")
    assert "revoked" in invoke(runner, "tenants", "key", "revoke", "acme", key_id)
    assert "deleted" in invoke(runner, "tenants", "delete", "acme", "--yes")


def test_cli_errors_are_messages_not_tracebacks(runner: CliRunner) -> None:
    result = runner.invoke(main, ["tenants", "show", "nobody"])
    assert result.exit_code == 1
    assert "no tenant 'nobody'" in result.output
    bad = runner.invoke(main, ["tenants", "add", "acme", "--name", "A", "--timezone", "Nowhere/Else"])
    assert bad.exit_code == 1 and "timezone" in bad.output


def test_plugins_lists_builtins_with_their_routes(runner: CliRunner) -> None:
    header, *rows = invoke(runner, "plugins").splitlines()
    assert header.split() == ["name", "version", "api", "state", "why"]
    assert "lily.core" in [row.split()[0] for row in rows if row and not row.startswith(" ")]
    assert "loaded" in next(row for row in rows if row.startswith("lily.core "))
    assert "GET /dev/outbox" in invoke(runner, "plugins", "--details")
    listing = json.loads(invoke(runner, "plugins", "--json"))
    reviews = next(item for item in listing if item["name"] == "lily.reviews")
    assert "POST /api/jobs/<job_id>/complete" in reviews["routes"]


def test_health_prints_overall_state(runner: CliRunner) -> None:
    assert "overall:" in invoke(runner, "health")


def test_keygen_prints_a_fernet_key(runner: CliRunner) -> None:
    from cryptography.fernet import Fernet

    Fernet(invoke(runner, "keygen").strip().encode())


def test_google_connect_explains_what_is_missing(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLIENT_ID", raising=False)
    monkeypatch.delenv("GOOGLE_CLIENT_SECRET", raising=False)
    invoke(runner, "tenants", "add", "acme", "--name", "Acme")
    result = runner.invoke(main, ["gcal", "connect", "acme"])
    assert result.exit_code == 1, result.output
    assert "GOOGLE_CLIENT_ID" in result.output or "lily-gcal" in result.output


def test_the_messaging_settings_and_the_consent_export_work_as_documented(runner: CliRunner) -> None:
    invoke(runner, "tenants", "add", "acme", "--name", "Acme Wash")
    # docs/messaging.md, exactly as printed there
    invoke(
        runner,
        "tenants",
        "set",
        "acme",
        "reminder_offsets_minutes=[1440,120]",
        "reschedule_link=https://acme.test/move",
        "quote_follow_up_days=3",
        "review_follow_up_days=4",
    )
    invoke(runner, "sms", "suppress", "acme", "+15557654321")
    exported = json.loads(invoke(runner, "sms", "consent", "+15557654321"))
    assert [(entry["tenant"], entry["action"], entry["source"]) for entry in exported["entries"]] == [
        ("acme", "opt_out", "manual")
    ]
    bad = runner.invoke(main, ["tenants", "set", "acme", "reminder_offsets_minutes=[5]"])
    assert bad.exit_code != 0 and "15 to 20160" in bad.output and "Traceback" not in bad.output
