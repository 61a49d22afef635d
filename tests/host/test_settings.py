"""Host settings: names, parsing, and what production refuses to start without."""

from __future__ import annotations

import subprocess

import pytest

from lily_host.config.host_settings import ADMIN_TOKEN_COMMAND, HostSettings, strong_token
from lily_host.plugin_api.errors import ConfigurationError

#: Long and varied enough for production.
STRONG_TOKEN = "settings-test-admin-token-0123456789abcdef"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LILY_ENV", "LILY_JITTER_SECONDS", "REDIS_URL", "LILY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = HostSettings()
    assert settings.env == "development"
    assert settings.jitter == (10.0, 45.0)
    assert settings.max_webhook_bytes == 1024 * 1024
    assert settings.redis_url is None


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LILY_SECRET_KEY", "new, old")
    monkeypatch.setenv("LILY_DISABLE_PLUGINS", "s3")
    settings = HostSettings()
    assert settings.secret_keys == ["new", "old"]
    assert settings.disable_plugins == ["s3"]


def test_bad_jitter_is_refused_with_the_expected_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LILY_JITTER_SECONDS", "45-10")
    with pytest.raises(ValueError, match="low <= high"):
        HostSettings()


@pytest.mark.parametrize("missing", ["LILY_ADMIN_TOKEN", "LILY_SECRET_KEY"])
def test_production_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setenv("LILY_ENV", "production")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("LILY_PUBLIC_URL", "https://lily.example.com")
    monkeypatch.setenv("LILY_ADMIN_TOKEN", STRONG_TOKEN)
    monkeypatch.setenv("LILY_SECRET_KEY", "k")
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigurationError, match=missing):
        HostSettings().check_production()


def test_production_wants_an_https_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LILY_ENV", "production")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("LILY_ADMIN_TOKEN", STRONG_TOKEN)
    monkeypatch.setenv("LILY_SECRET_KEY", "k")
    monkeypatch.setenv("LILY_PUBLIC_URL", "http://lily.example.com")
    with pytest.raises(ConfigurationError, match="LILY_PUBLIC_URL"):
        HostSettings().check_production()


@pytest.mark.parametrize("token", ["t", "a" * 64, "short-but-varied-123"])
def test_production_refuses_a_weak_admin_token_and_says_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("LILY_ENV", "production")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("LILY_PUBLIC_URL", "https://lily.example.com")
    monkeypatch.setenv("LILY_SECRET_KEY", "k")
    monkeypatch.setenv("LILY_ADMIN_TOKEN", token)
    with pytest.raises(ConfigurationError, match="LILY_ADMIN_TOKEN is too weak") as refused:
        HostSettings().check_production()
    assert ADMIN_TOKEN_COMMAND in str(refused.value)
    made = subprocess.run(["sh", "-c", ADMIN_TOKEN_COMMAND], capture_output=True, text=True, check=True)
    assert strong_token(made.stdout.strip())  # the advice works as printed
