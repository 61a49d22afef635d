"""Settings: where Chatwoot lives and how soon a reply goes (``CHATWOOT_*`` variables), and each
tenant's Chatwoot account, tokens and keyword → reply rules (tenant settings)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The plugin's name: its entry point's name in pyproject.toml.
PLUGIN = "chatwoot"
#: Chatwoot Cloud; a self-hosted Chatwoot has its own URL.
DEFAULT_API_BASE = "https://app.chatwoot.com"
#: Most rules a tenant may have (first match wins, so a long list is mostly dead rules).
MAX_RULES = 100
#: Chatwoot keeps longer messages, but an automated reply this long is a mistake.
MAX_REPLY_CHARS = 2000


def parse_jitter(text: str) -> tuple[float, float]:
    """``"10-45"`` → (10.0, 45.0): seconds, 0 <= low <= high."""
    low_text, sep, high_text = text.partition("-")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        low = high = -1.0
    if not sep or low < 0 or high < low:
        raise ValueError(f"CHATWOOT_REPLY_JITTER must look like '10-45' (seconds, low <= high), got {text!r}")
    return low, high


class ChatwootSettings(BaseSettings):
    """Every field has a default: the plugin is configured as soon as it is installed; each
    tenant connects its own Chatwoot account in its tenant settings."""

    model_config = SettingsConfigDict(env_prefix="CHATWOOT_", extra="ignore")

    #: ``lily dev`` without CHATWOOT_API_BASE starts lily_chatwoot.fake and points the plugin at it.
    lily_dev_standin: ClassVar[str] = "lily_chatwoot.fake:dev_standin"

    #: Chatwoot's URL (``CHATWOOT_API_BASE``): Chatwoot Cloud, a self-hosted instance, or the fake.
    api_base: str = DEFAULT_API_BASE
    #: Seconds to wait for Chatwoot's API.
    request_timeout: float = Field(default=10.0, gt=0, le=120)
    #: How long after the customer's message the reply goes, at random in this range (seconds):
    #: an instant answer reads as a bot.
    reply_jitter: str = "10-45"

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"CHATWOOT_API_BASE must be an http(s) URL, e.g. {DEFAULT_API_BASE}")
        return value

    @field_validator("reply_jitter")
    @classmethod
    def _jitter(cls, value: str) -> str:
        parse_jitter(value)
        return value.strip()

    @property
    def jitter(self) -> tuple[float, float]:
        return parse_jitter(self.reply_jitter)


class ReplyRule(BaseModel):
    """When a customer's message contains ``keyword`` as a whole word (any case), answer ``reply``."""

    model_config = ConfigDict(extra="forbid")

    keyword: str
    reply: str

    @field_validator("keyword")
    @classmethod
    def _keyword(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value or len(value) > 100:
            raise ValueError("a rule's keyword must be 1-100 characters, e.g. 'price'")
        return value

    @field_validator("reply")
    @classmethod
    def _reply(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > MAX_REPLY_CHARS:
            raise ValueError(f"a rule's reply must be 1-{MAX_REPLY_CHARS} characters")
        return value


class ChatwootTenantSettings(BaseModel):
    """One tenant's Chatwoot account. Secrets are encrypted at rest and come back decrypted as
    ``tenant.plugin_settings`` in ``verify`` and in the reply task."""

    model_config = ConfigDict(extra="forbid")

    #: ``lily dev``'s demo tenant (the fake Chatwoot's development account accepts this token).
    lily_dev_tenant: ClassVar[dict[str, Any]] = {
        "account_id": "1",
        "api_access_token": "dev-chatwoot-token",
        "webhook_secret": "dev-chatwoot-webhook-secret",
        "rules": [
            {"keyword": "price", "reply": "Thanks! We'll send you a quote today: what's the address?"},
            {"keyword": "hours", "reply": "We're open Monday to Saturday, 8am to 6pm."},
        ],
    }

    #: The tenant's Chatwoot account id (in Chatwoot's URLs: /app/accounts/<id>/...). Indexed: a
    #: webhook from that account belongs to this tenant.
    account_id: str | None = Field(default=None, json_schema_extra={"lily_index": "chatwoot_account"})
    #: An access token of a Chatwoot agent (or bot) of the account: Profile settings → Access Token.
    api_access_token: SecretStr | None = None
    #: The secret Chatwoot shows for the account's webhook; it signs every delivery.
    webhook_secret: SecretStr | None = None
    #: Keyword → reply rules, tried in order; the first whole-word, case-insensitive match answers.
    rules: list[ReplyRule] = Field(default_factory=list)
    #: The reply when no rule matches; None (the default): no reply.
    default_reply: str | None = None

    @field_validator("account_id", mode="before")
    @classmethod
    def _account(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `lily tenants set` reads 12 as a number
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            if not (value.isascii() and value.isdigit()):  # "²".isdigit() is true
                raise ValueError("account_id is the number in Chatwoot's URLs (/app/accounts/<id>/...), e.g. 12")
        return value

    @field_validator("api_access_token", "webhook_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        if isinstance(value, dict):  # {"price": "...", "hours": "..."}: keyword → reply, in order
            value = [{"keyword": keyword, "reply": reply} for keyword, reply in value.items()]
        if isinstance(value, list) and len(value) > MAX_RULES:
            raise ValueError(f"at most {MAX_RULES} rules")
        return value

    @field_validator("default_reply", mode="before")
    @classmethod
    def _default_reply(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if len(value) > MAX_REPLY_CHARS:
                raise ValueError(f"default_reply must be at most {MAX_REPLY_CHARS} characters")
            return value or None
        return value
