"""Settings: the provider's API for the whole platform (``CHATWOOT_*`` variables), and each
tenant's own account at the provider (tenant settings, set with ``lily tenants set``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The plugin's name: its entry point's name in pyproject.toml.
PLUGIN = "chatwoot"
#: Where the provider's API lives (replace it with your provider's); the fake in tests.
DEFAULT_API_BASE = "https://api.chatwoot.example"


class ChatwootSettings(BaseSettings):
    """Every field has a default, so the plugin is configured out of the box. A field without a
    default is required: while its variable is unset the plugin is ``not_configured`` and its routes
    answer 503 naming the variable; the rest of Lily runs."""

    model_config = SettingsConfigDict(env_prefix="CHATWOOT_", extra="ignore")

    #: ``lily dev`` without CHATWOOT_API_BASE starts lily_chatwoot.fake and points the plugin at it.
    lily_dev_standin: ClassVar[str] = "lily_chatwoot.fake:dev_standin"

    #: The provider's API (``CHATWOOT_API_BASE``): a self-hosted instance, or lily_chatwoot.fake.
    api_base: str = DEFAULT_API_BASE
    #: Seconds to wait for the provider's API.
    request_timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"CHATWOOT_API_BASE must be an http(s) URL, e.g. {DEFAULT_API_BASE}")
        return value


class ChatwootTenantSettings(BaseModel):
    """One tenant's account at the provider. Secrets (``SecretStr``) are encrypted at rest and come
    back decrypted as ``tenant.plugin_settings`` in ``verify``, tasks and webhooks."""

    model_config = ConfigDict(extra="forbid")

    #: ``lily dev``'s demo tenant gets these (they match lily_chatwoot.fake's development account).
    lily_dev_tenant: ClassVar[dict[str, str]] = {
        "account_id": "dev-account",
        "api_key": "dev-chatwoot-key",
        "webhook_secret": "dev-chatwoot-webhook-secret",
    }

    #: The tenant's account id at the provider. Indexed: a webhook naming it resolves to this tenant.
    account_id: str | None = Field(default=None, json_schema_extra={"lily_index": "chatwoot_account"})
    #: The tenant's API key at the provider (tasks call the API with it).
    api_key: SecretStr | None = None
    #: The secret the provider signs this tenant's webhooks with.
    webhook_secret: SecretStr | None = None

    @field_validator("account_id", "api_key", "webhook_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # `lily tenants set` reads 123 as a number
        return None if isinstance(value, str) and not value.strip() else value
