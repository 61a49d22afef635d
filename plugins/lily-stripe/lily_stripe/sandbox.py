"""The local sandbox's well-known values, shared by the fake Stripe API and ``lily dev``."""

from __future__ import annotations

SANDBOX_PORT = 12111
SANDBOX_API_KEY = "sk_test_lily_fake"
SANDBOX_WEBHOOK_SECRET = "whsec_lily_sandbox"
#: Plan → price id the fake knows by default.
SANDBOX_PRICES = {"starter": "price_lily_starter", "pro": "price_lily_pro", "growth": "price_lily_growth"}


def sandbox_env(api_base: str, webhook_secret: str = SANDBOX_WEBHOOK_SECRET) -> dict[str, str]:
    """The STRIPE_* settings that point Lily at a fake Stripe API at ``api_base``."""
    return {
        "STRIPE_SECRET_KEY": SANDBOX_API_KEY,
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_PRICE_STARTER": SANDBOX_PRICES["starter"],
        "STRIPE_PRICE_PRO": SANDBOX_PRICES["pro"],
        "STRIPE_PRICE_GROWTH": SANDBOX_PRICES["growth"],
        "STRIPE_API_BASE": api_base,
    }
