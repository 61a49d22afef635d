"""Settings validation, key confinement and the media credential allow-list (no network)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lily_s3.keys import InvalidKey, check_relative_key, photo_id_of, relative_to
from lily_s3.media import MediaFetcher, host_key
from lily_s3.settings import S3Settings, S3TenantSettings


def test_tenant_prefix_defaults_to_tenants_slash_id() -> None:
    assert S3TenantSettings().prefix_for("acme") == "tenants/acme/"


@pytest.mark.parametrize(
    "prefix",
    ["photos/", "tenants/{tenant}", "/tenants/{tenant}/", "tenants/../{tenant}/", "t/{tenant}x/", "{tenant}/{other}/"],
)
def test_a_prefix_must_hold_the_tenant_as_a_plain_segment(prefix: str) -> None:
    with pytest.raises(ValidationError):
        S3TenantSettings(key_prefix=prefix)


def test_allowed_types_are_normalised() -> None:
    assert S3TenantSettings(allowed_types=["Image/JPEG; q=1", "image/png"]).allowed_types == ["image/jpeg", "image/png"]
    with pytest.raises(ValidationError):
        S3TenantSettings(allowed_types=["jpeg"])


def test_relative_to_refuses_other_tenants_and_dot_segments() -> None:
    assert relative_to("tenants/acme/", "tenants/acme/quotes/q1/p1.jpg") == "quotes/q1/p1.jpg"
    assert relative_to("tenants/acme/", "tenants/acmeco/quotes/q1/p1.jpg") is None
    assert relative_to("tenants/acme/", "tenants/bob/quotes/q1/p1.jpg") is None
    assert relative_to("tenants/acme/", "tenants/acme/../bob/p1.jpg") is None
    with pytest.raises(InvalidKey):
        check_relative_key("quotes/q1/../../bob/p.jpg")


def test_photo_ids_come_only_from_server_made_keys() -> None:
    assert photo_id_of("quotes/q_1/p_abc.jpg") == "p_abc"
    assert photo_id_of("other/q_1/p_abc.jpg") is None
    assert photo_id_of("quotes/q_1/deep/p_abc.jpg") is None


def test_access_keys_come_in_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_BUCKET_NAME", "lily-photos")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA0000")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ValidationError, match="both"):
        S3Settings(**{})


def test_bucket_names_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_BUCKET_NAME", "Not_A_Bucket")
    with pytest.raises(ValidationError, match="S3_BUCKET_NAME"):
        S3Settings(**{})


def test_twilio_api_base_joins_the_credential_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_BUCKET_NAME", "lily-photos")
    monkeypatch.setenv("TWILIO_API_BASE", "http://127.0.0.1:8123")
    assert S3Settings(**{}).media_credential_hosts == {"api.twilio.com", "127.0.0.1:8123"}


def test_credentials_go_only_to_allow_listed_hosts_over_https_or_loopback() -> None:
    fetcher = MediaFetcher(
        credentials=("AC1", "token"), credential_hosts={"api.twilio.com", "127.0.0.1:8123"}, timeout=1
    )

    assert fetcher.may_authenticate("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1")
    assert fetcher.may_authenticate("http://127.0.0.1:8123/media")
    assert not fetcher.may_authenticate("http://api.twilio.com/media")  # plain http off loopback
    assert not fetcher.may_authenticate("https://api.twilio.com.evil.example/media")
    assert not fetcher.may_authenticate("https://api.twilio.com:8443/media")
    assert not fetcher.may_authenticate("http://127.0.0.1:9999/media")
    assert host_key("https://API.twilio.com:443/x") == "api.twilio.com"
