"""Settings: the bucket and credentials (environment), and each tenant's photo rules."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lily_host import Tenant, split_comma_list

PLUGIN_NAME = "s3"

MIB = 1024 * 1024
#: SigV4 presigned URLs cannot live longer than this (AWS rejects X-Amz-Expires above it).
MAX_LINK_LIFETIME_SECONDS = 7 * 24 * 3600
#: A browser POST upload is one object of at most 5 GiB (S3's single-upload limit).
MAX_OBJECT_BYTES = 5 * 1024 * MIB
DEFAULT_ALLOWED_TYPES = ("image/jpeg", "image/png", "image/heic", "image/webp")
DEFAULT_KEY_PREFIX = "tenants/{tenant}/"

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
# Characters S3 documents as safe in keys; anything else may need escaping somewhere downstream.
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9!_.*'()-]+")


class S3Settings(BaseSettings):
    """Environment settings. Only ``S3_BUCKET_NAME`` is required: without explicit keys boto3 uses its
    default credential chain (instance role, ``AWS_PROFILE``, ...)."""

    model_config = SettingsConfigDict(extra="ignore")
    #: ``lily dev`` without S3_BUCKET_NAME starts moto's S3 server (``lily-s3[sandbox]``) with a bucket.
    lily_dev_standin: ClassVar[str] = "lily_s3.fake:dev_standin"

    s3_bucket_name: str
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_region: str = "us-east-1"
    # boto3 reads these natively too; they are settings here so `lily plugins` shows where S3 is.
    aws_endpoint_url: str | None = None
    aws_endpoint_url_s3: str | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    s3_upload_expiry_seconds: int = Field(default=600, ge=60, le=3600)
    s3_health_key_prefix: str = "lily-health/"
    s3_retention_interval_seconds: int = Field(default=24 * 3600, ge=60)
    s3_media_max_items: int = Field(default=10, ge=1, le=50)
    s3_media_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    # Twilio media URLs need HTTP Basic auth with the account's SID and auth token.
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_api_base: str | None = None
    s3_media_auth_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["api.twilio.com"])

    @field_validator("s3_bucket_name")
    @classmethod
    def _check_bucket(cls, value: str) -> str:
        value = value.strip()
        if not _BUCKET_NAME.fullmatch(value) or ".." in value:
            raise ValueError("S3_BUCKET_NAME must be a valid bucket name (3-63 lowercase letters, digits, '.', '-')")
        return value

    @field_validator("aws_endpoint_url", "aws_endpoint_url_s3", "twilio_api_base")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} must be an http(s) URL")
        return value.strip().rstrip("/")

    @field_validator("s3_health_key_prefix")
    @classmethod
    def _check_health_prefix(cls, value: str) -> str:
        check_prefix_shape(value)
        return value

    @field_validator("s3_media_auth_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _keys_come_in_pairs(self) -> S3Settings:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (instance role)")
        return self

    @property
    def endpoint_url(self) -> str | None:
        # The service-specific variable wins, as it does inside boto3.
        return self.aws_endpoint_url_s3 or self.aws_endpoint_url

    @property
    def twilio_credentials(self) -> tuple[str, str] | None:
        if self.twilio_account_sid and self.twilio_auth_token is not None:
            return self.twilio_account_sid, self.twilio_auth_token.get_secret_value()
        return None

    @property
    def media_credential_hosts(self) -> frozenset[str]:
        """``host`` or ``host:port`` entries that may receive the Twilio credentials."""
        hosts = set(self.s3_media_auth_hosts)
        if self.twilio_api_base:
            parts = urlsplit(self.twilio_api_base)
            hosts.add(parts.netloc.lower() if parts.port else (parts.hostname or "").lower())
        return frozenset(hosts)


class S3TenantSettings(BaseModel):
    """One tenant's photo rules (``lily tenants set TENANT s3 ...``)."""

    model_config = ConfigDict(extra="forbid")

    #: Where the tenant's objects live; ``{tenant}`` is its id and must be a whole path segment so
    #: that no two tenants can share a prefix by accident.
    key_prefix: str = DEFAULT_KEY_PREFIX
    max_photo_bytes: int = Field(default=10 * MIB, ge=1, le=MAX_OBJECT_BYTES)
    allowed_types: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_TYPES), min_length=1)
    link_lifetime_seconds: int = Field(default=3600, ge=60, le=MAX_LINK_LIFETIME_SECONDS)
    #: Overrides the tenant's ``retention_days`` for photos.
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    #: MMS photos from one customer join the same quote while they keep arriving within this window.
    quote_open_hours: int = Field(default=72, ge=1, le=24 * 60)

    @field_validator("key_prefix")
    @classmethod
    def _check_key_prefix(cls, value: str) -> str:
        check_prefix_shape(value.replace("{tenant}", "tenant"))
        segments = value.rstrip("/").split("/")
        if "{tenant}" not in segments:
            raise ValueError("key_prefix must contain {tenant} as a whole path segment, e.g. 'tenants/{tenant}/'")
        if value.count("{") != value.count("{tenant}") or "}" in value.replace("{tenant}", ""):
            raise ValueError("key_prefix may hold no placeholder other than {tenant}")
        return value

    @field_validator("allowed_types", mode="before")
    @classmethod
    def _split_types(cls, value: object) -> object:
        return split_comma_list(value)

    @field_validator("allowed_types")
    @classmethod
    def _check_types(cls, value: list[str]) -> list[str]:
        normalized = []
        for item in value:
            media_type = normalize_content_type(item)
            if not _MEDIA_TYPE.fullmatch(media_type):
                raise ValueError(f"{item!r} is not a media type like image/jpeg")
            if media_type not in normalized:
                normalized.append(media_type)
        return normalized

    def prefix_for(self, tenant_id: str) -> str:
        return self.key_prefix.replace("{tenant}", tenant_id)

    def allows(self, content_type: str) -> bool:
        return normalize_content_type(content_type) in self.allowed_types

    def retention_days_for(self, tenant: Tenant) -> int:
        return self.retention_days if self.retention_days is not None else tenant.retention_days


class TenantSettingsError(ValueError):
    """A tenant's stored s3 settings no longer validate; the message says which field to fix."""


def tenant_settings(tenant: Tenant) -> S3TenantSettings:
    """The tenant's s3 settings (defaults when it never set any). They hold no secrets, so the stored
    values validate directly, without the host."""
    try:
        return S3TenantSettings.model_validate(tenant.plugins.get(PLUGIN_NAME, {}))
    except ValidationError as error:
        fields = ", ".join(".".join(str(part) for part in item["loc"]) for item in error.errors())
        raise TenantSettingsError(
            f"tenant {tenant.id!r} has invalid s3 settings ({fields}): fix them with `lily tenants set`"
        ) from error


def normalize_content_type(value: str) -> str:
    """``Image/JPEG; charset=binary`` → ``image/jpeg``."""
    return value.split(";", 1)[0].strip().lower()


def check_prefix_shape(prefix: str) -> None:
    """A key prefix is relative, ends with '/', and has only plain, non-dot segments."""
    if not prefix.endswith("/") or prefix.startswith("/"):
        raise ValueError(f"prefix {prefix!r} must not start with '/' and must end with '/'")
    if len(prefix) > 512:
        raise ValueError("prefix is longer than 512 characters")
    for segment in prefix[:-1].split("/"):
        if segment in ("", ".", "..") or not _PREFIX_SEGMENT.fullmatch(segment):
            raise ValueError(
                f"prefix {prefix!r} has an invalid segment {segment!r} (letters, digits and !_.*'()- only)"
            )
