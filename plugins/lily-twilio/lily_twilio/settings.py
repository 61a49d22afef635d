"""Settings: the Twilio account (environment) and each tenant's numbers (tenant settings)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lily_host import normalize_e164, split_comma_list

DEFAULT_API_BASE = "https://api.twilio.com"


#: Twilio numbers are E.164; the host's normaliser (with its fast path for canonical numbers) decides.
to_e164 = normalize_e164


class TwilioSettings(BaseSettings):
    """The Twilio account Lily uses. SID and token are required; without them the plugin is not configured."""

    model_config = SettingsConfigDict(env_prefix="TWILIO_", extra="ignore")

    #: ``lily dev``'s banner: with development credentials this plugin's texts go to the outbox.
    lily_sends_sms: ClassVar[bool] = True
    #: ``lily dev`` without credentials: webhooks verify with this token, texts go to the outbox.
    lily_dev_env: ClassVar[dict[str, str]] = {
        "TWILIO_ACCOUNT_SID": "AC" + "00" * 16,
        "TWILIO_AUTH_TOKEN": "lily-dev-twilio-auth-token",
    }

    account_sid: str = Field(min_length=2)
    auth_token: SecretStr
    #: Sender for tenants that have no number of their own.
    from_number: str | None = None
    #: Where the SDK sends REST calls; a local sandbox or lily_twilio.fake in tests.
    api_base: str = DEFAULT_API_BASE
    #: Secret of a Twilio webhook SharedKey, for requests signed with X-Twilio-Webhooks-Signature-Settings.
    webhook_shared_key: SecretStr | None = None
    #: Seconds the SDK waits for Twilio before the send is retried.
    request_timeout: float = Field(default=15.0, gt=0)

    @field_validator("from_number")
    @classmethod
    def _check_from(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else to_e164(value)

    @field_validator("api_base")
    @classmethod
    def _check_base(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("TWILIO_API_BASE must be an http(s) URL, e.g. https://api.twilio.com")
        return value.rstrip("/")


class TwilioTenantSettings(BaseModel):
    """A tenant's Twilio numbers. Inbound calls and texts to any of them resolve to the tenant."""

    model_config = ConfigDict(extra="forbid")

    #: The demo tenant of ``lily dev``: Twilio's magic test number.
    lily_dev_tenant: ClassVar[dict[str, list[str]]] = {"business_numbers": ["+15005550006"]}

    business_numbers: list[str] = Field(default_factory=list, json_schema_extra={"lily_index": "phone"})
    #: Sender for this tenant's texts; defaults to its first number, then TWILIO_FROM_NUMBER.
    from_number: str | None = None

    @field_validator("business_numbers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        # A comma list ("+1555..., +1555...") as everywhere else that takes several values.
        return split_comma_list(value)

    @field_validator("business_numbers")
    @classmethod
    def _check_numbers(cls, value: list[str]) -> list[str]:
        numbers: list[str] = []
        for item in value:
            number = to_e164(item)
            if number not in numbers:
                numbers.append(number)
        return numbers

    @field_validator("from_number")
    @classmethod
    def _check_from(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else to_e164(value)

    def sender(self, default: str | None) -> str | None:
        """The number this tenant's texts come from."""
        if self.from_number:
            return self.from_number
        if self.business_numbers:
            return self.business_numbers[0]
        return default
