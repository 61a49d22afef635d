"""Every provider's fake running on loopback, and the environment that points all six plugins at them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from lily_calcom.fake import FakeCalcom
from lily_chatwoot.fake import FakeChatwoot
from lily_gcal.fake import FakeGoogle
from lily_host.testing import TEST_SECRET_KEY
from lily_s3.fake import MotoS3
from lily_stripe.fake import FakeStripe
from lily_twilio.fake import FakeTwilio

BUCKET = "lily-security-photos"
STRIPE_WEBHOOK_SECRET = "whsec_security_test"
CALCOM_WEBHOOK_SECRET = "calcom-security-secret"
CHATWOOT_ACCOUNT = "7"
CHATWOOT_TOKEN = "chatwoot-security-token"
CHATWOOT_WEBHOOK_SECRET = "chatwoot-security-secret"
#: Long enough for production's admin token rule.
STRONG_ADMIN_TOKEN = "admin-security-token-0123456789abcdef0123456789"
TENANT_NUMBER = "+15550001111"
OTHER_NUMBER = "+15550002222"


@dataclass
class World:
    twilio: FakeTwilio
    stripe: FakeStripe
    calcom: FakeCalcom
    google: FakeGoogle
    s3: MotoS3
    chatwoot: FakeChatwoot

    def env(self, environment: str) -> dict[str, str]:
        """Every plugin configured; ``environment`` is LILY_ENV (development or production)."""
        return {
            "LILY_ENV": environment,
            "LILY_PUBLIC_URL": "https://lily.test",
            "LILY_ADMIN_TOKEN": STRONG_ADMIN_TOKEN,
            "LILY_SECRET_KEY": TEST_SECRET_KEY,
            "LILY_LOG_LEVEL": "WARNING",
            "STRIPE_MAX_NETWORK_RETRIES": "0",
            **self.twilio.env(),
            "TWILIO_FROM_NUMBER": "+15005550006",
            **self.stripe.sandbox_env(STRIPE_WEBHOOK_SECRET),
            **self.calcom.env(CALCOM_WEBHOOK_SECRET),
            **self.google.env(),
            **self.s3.env(BUCKET),
            "CHATWOOT_API_BASE": self.chatwoot.base_url,
        }


@contextmanager
def provider_fakes() -> Iterator[World]:
    with ExitStack() as stack:
        twilio = stack.enter_context(FakeTwilio())
        stripe = stack.enter_context(FakeStripe())
        calcom = stack.enter_context(FakeCalcom())
        google = stack.enter_context(FakeGoogle())
        chatwoot = stack.enter_context(
            FakeChatwoot({CHATWOOT_ACCOUNT: CHATWOOT_TOKEN}, webhook_secret=CHATWOOT_WEBHOOK_SECRET)
        )
        s3 = MotoS3().start()
        stack.callback(s3.stop)
        s3.create_bucket(BUCKET)
        yield World(twilio, stripe, calcom, google, s3, chatwoot)
