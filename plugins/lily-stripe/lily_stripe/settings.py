"""The plugin's settings, from ``STRIPE_*`` environment variables."""

from __future__ import annotations

from typing import ClassVar

import stripe
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_BASE = "https://api.stripe.com"
#: The plans a tenant can buy, in the order the API names them.
PLANS: tuple[str, ...] = ("starter", "pro", "growth")


class StripeSettings(BaseSettings):
    """Secret key, webhook secret(s), one price per plan, and the trial length.

    Every field without a default is required: while one is missing the plugin is
    ``not_configured`` and its routes answer 503 naming the variable.
    """

    model_config = SettingsConfigDict(env_prefix="STRIPE_", extra="ignore")

    #: ``lily dev`` without STRIPE_* settings starts the local fake Stripe API and points the plugin at it.
    lily_dev_standin: ClassVar[str] = "lily_stripe.fake:dev_standin"

    secret_key: SecretStr
    #: One secret, or several separated by commas while Stripe rolls the endpoint secret.
    webhook_secret: SecretStr
    price_starter: str
    price_pro: str
    price_growth: str
    trial_days: int = Field(default=14, ge=0, le=730)
    #: False: a card-less trial (Checkout asks for a card only if needed; the subscription pauses
    #: when the trial ends without one, and the tenant adds a card in the portal).
    trial_requires_card: bool = True
    api_base: str = DEFAULT_API_BASE
    max_network_retries: int = Field(default=2, ge=0, le=10)
    timeout_seconds: float = Field(default=20.0, gt=0, le=120)

    _client: stripe.StripeClient | None = PrivateAttr(default=None)

    @field_validator("secret_key", "webhook_secret")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("price_starter", "price_pro", "price_growth")
    @classmethod
    def _price_id(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must be a Stripe price id (price_...)")
        return value

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL, e.g. https://api.stripe.com")
        return value

    @model_validator(mode="after")
    def _distinct_prices(self) -> StripeSettings:
        # A price maps back to exactly one plan when a subscription syncs.
        if len(set(self.prices.values())) != len(PLANS):
            raise ValueError("STRIPE_PRICE_STARTER, STRIPE_PRICE_PRO and STRIPE_PRICE_GROWTH must be different prices")
        return self

    @property
    def webhook_secrets(self) -> list[str]:
        return [part.strip() for part in self.webhook_secret.get_secret_value().split(",") if part.strip()]

    @property
    def prices(self) -> dict[str, str]:
        """Plan name → Stripe price id."""
        return {"starter": self.price_starter, "pro": self.price_pro, "growth": self.price_growth}

    def plan_for_price(self, price_id: str | None) -> str | None:
        for plan, price in self.prices.items():
            if price == price_id:
                return plan
        return None

    def client(self) -> stripe.StripeClient:
        """The one StripeClient of this configuration (its HTTP sessions are reused across calls)."""
        if self._client is None:
            self._client = stripe.StripeClient(
                self.secret_key.get_secret_value(),
                base_addresses={"api": self.api_base},
                max_network_retries=self.max_network_retries,
                http_client=stripe.RequestsClient(timeout=self.timeout_seconds),
            )
        return self._client
