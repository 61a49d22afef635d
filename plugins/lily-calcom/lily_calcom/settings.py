"""Settings: the platform's Cal.com account (environment) and how each tenant is recognised (tenant settings)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lily_host import split_comma_list, unique_emails

DEFAULT_API_BASE = "https://api.cal.com"


class CalcomSettings(BaseSettings):
    """Everything is optional: webhooks also verify with per-tenant secrets, and health reports
    ``not_configured`` while ``CALCOM_API_KEY`` is unset."""

    model_config = SettingsConfigDict(env_prefix="CALCOM_", extra="ignore")
    #: ``lily dev`` without CALCOM_WEBHOOK_SECRET: a development secret, so `lily simulate calcom.*` signs.
    lily_dev_standin: ClassVar[str] = "lily_calcom.fake:dev_standin"

    #: API key (``cal_live_...``) used for the health check against the Cal.com API.
    api_key: SecretStr | None = None
    #: Secret of the platform-wide Cal.com webhook; tenants may have their own (tenant settings).
    webhook_secret: SecretStr | None = None
    #: Where the Cal.com API lives; a self-hosted instance or lily_calcom.fake in tests.
    api_base: str = DEFAULT_API_BASE
    #: Seconds to wait for the Cal.com API.
    request_timeout: float = Field(default=10.0, gt=0)

    @field_validator("api_key", "webhook_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_base")
    @classmethod
    def _check_base(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("CALCOM_API_BASE must be an http(s) URL, e.g. https://api.cal.com")
        return value.rstrip("/")


class CalcomTenantSettings(BaseModel):
    """How a Cal.com delivery is matched to this tenant, and the booking link its messages offer."""

    model_config = ConfigDict(extra="forbid")

    #: Cal.com organizer emails that belong to this tenant (bookings they host are this tenant's).
    organizer_emails: list[str] = Field(default_factory=list, json_schema_extra={"lily_index": "calcom_organizer"})
    #: Cal.com event type ids that belong to this tenant (wins over the organizer on shared accounts).
    event_type_ids: list[str] = Field(default_factory=list, json_schema_extra={"lily_index": "calcom_event_type"})
    #: Public booking page or embed URL, offered in messages ("Book a time: ...").
    booking_url: str | None = None
    #: This tenant's own webhook secret, when its Cal.com account posts to /webhooks/calcom[/<tenant>].
    webhook_secret: SecretStr | None = None

    @field_validator("organizer_emails", "event_type_ids", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_comma_list(value)

    @field_validator("organizer_emails")
    @classmethod
    def _check_emails(cls, value: list[str]) -> list[str]:
        return unique_emails(value, example="e.g. owner@example.com")

    @field_validator("event_type_ids")
    @classmethod
    def _check_ids(cls, value: list[str]) -> list[str]:
        ids: list[str] = []
        for item in value:
            text = item.strip()
            if not (text.isascii() and text.isdigit()):  # "²".isdigit() is true
                raise ValueError(f"event type id {item!r} must be a number (Cal.com shows it in the event type URL)")
            if text not in ids:
                ids.append(text)
        return ids

    @field_validator("booking_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("booking_url must be an http(s) URL, e.g. https://cal.com/acme/estimate")
        return value.strip()

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _blank_secret(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
