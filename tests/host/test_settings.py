"""Host settings: names, parsing, and what production refuses to start without."""

from __future__ import annotations

import pytest

from lily_host.config.host_settings import HostSettings
from lily_host.plugin_api.errors import ConfigurationError


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
    monkeypatch.setenv("LILY_ADMIN_TOKEN", "t")
    monkeypatch.setenv("LILY_SECRET_KEY", "k")
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigurationError, match=missing):
        HostSettings().check_production()


def test_production_wants_an_https_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LILY_ENV", "production")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("LILY_ADMIN_TOKEN", "t")
    monkeypatch.setenv("LILY_SECRET_KEY", "k")
    monkeypatch.setenv("LILY_PUBLIC_URL", "http://lily.example.com")
    with pytest.raises(ConfigurationError, match="LILY_PUBLIC_URL"):
        HostSettings().check_production()
