"""Settings: the platform's Google OAuth client (environment) and each tenant's calendar (tenant settings)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lily_host import split_comma_list, unique_emails

#: What Lily asks Google for: write events, and share the calendar with the tenant's team.
SCOPES = (
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.acls",
)


def _http_url(value: str, name: str, example: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an http(s) URL, e.g. {example}")
    return value


class GcalSettings(BaseSettings):
    """The Google OAuth client (a "Web application" client in Google Cloud). Without the id and the
    secret the plugin is not configured and Lily runs without calendars."""

    model_config = SettingsConfigDict(env_prefix="GOOGLE_", extra="ignore")
    #: ``lily dev`` without GOOGLE_* settings starts a local fake Google (OAuth + Calendar API).
    lily_dev_standin: ClassVar[str] = "lily_gcal.fake:dev_standin"

    client_id: str = Field(min_length=3)
    client_secret: SecretStr
    #: Must be listed among the OAuth client's authorized redirect URIs.
    redirect_uri: str = "http://localhost:8000/auth/google/callback"
    #: Google's consent page; lily_gcal.fake serves one for a local sandbox.
    auth_uri: str = "https://accounts.google.com/o/oauth2/auth"
    token_uri: str = "https://oauth2.googleapis.com/token"
    #: Base of the Calendar API v3 (with ``/calendar/v3/``); lily_gcal.fake in tests.
    calendar_api_base: str = "https://www.googleapis.com/calendar/v3/"
    #: Seconds to wait for Google on each call.
    request_timeout: float = Field(default=20.0, gt=0)

    @field_validator("redirect_uri")
    @classmethod
    def _check_redirect(cls, value: str) -> str:
        return _http_url(value, "GOOGLE_REDIRECT_URI", "https://lily.example.com/auth/google/callback")

    @field_validator("auth_uri", "token_uri")
    @classmethod
    def _check_oauth(cls, value: str) -> str:
        return _http_url(value, "GOOGLE_AUTH_URI / GOOGLE_TOKEN_URI", "https://oauth2.googleapis.com/token")

    @field_validator("calendar_api_base")
    @classmethod
    def _check_api(cls, value: str) -> str:
        # The discovery document's paths are relative ("calendars/{calendarId}/events"): keep the slash.
        return _http_url(value, "GOOGLE_CALENDAR_API_BASE", "https://www.googleapis.com/calendar/v3/").rstrip("/") + "/"


class GcalTenantSettings(BaseModel):
    """Which calendar a tenant's bookings go to, how long they are, and who sees them."""

    model_config = ConfigDict(extra="forbid")

    calendar_id: str = Field(default="primary", min_length=1)
    #: Length of a booking's calendar event when its service type has no entry below.
    default_duration_minutes: int = Field(default=60, ge=5, le=24 * 60)
    #: Event length by service type (matched case-insensitively), e.g. {"Pressure Washing": 120}.
    service_durations: dict[str, int] = Field(default_factory=dict)
    #: Team members' Google accounts the calendar is shared with.
    share_with: list[str] = Field(default_factory=list)
    share_role: Literal["reader", "writer"] = "writer"

    @field_validator("service_durations")
    @classmethod
    def _check_durations(cls, value: dict[str, int]) -> dict[str, int]:
        for service, minutes in value.items():
            if not 5 <= minutes <= 24 * 60:
                raise ValueError(f"duration of {service!r} must be 5-1440 minutes, got {minutes}")
        return {service.strip(): minutes for service, minutes in value.items() if service.strip()}

    @field_validator("share_with", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_comma_list(value)

    @field_validator("share_with")
    @classmethod
    def _check_emails(cls, value: list[str]) -> list[str]:
        return unique_emails(value, example="a team member's Google account")

    def duration_minutes(self, service_type: str | None) -> int:
        if service_type:
            wanted = service_type.strip().lower()
            for service, minutes in self.service_durations.items():
                if service.lower() == wanted:
                    return minutes
        return self.default_duration_minutes
