"""Health checks: the secret key works; which tenants are past due."""

from __future__ import annotations

from typing import TYPE_CHECKING

import stripe

from lily_host import HealthCheck, HealthResult, HealthState, awaited
from lily_stripe.gateway import StripeGateway
from lily_stripe.settings import StripeSettings
from lily_stripe.sync import PAST_DUE_KEY, PLUGIN

if TYPE_CHECKING:
    from lily_host import LilyHost

#: Past-due tenants listed by name in the health message; the rest are counted.
LISTED_TENANTS = 10


class ApiCheck:
    """Retrieve the balance: the cheapest call that proves the key is accepted.

    The answer is reused for ``CACHE_SECONDS`` so a load balancer polling /health does not turn
    into a stream of Stripe calls (nor, with a revoked key, a stream of 401s).
    """

    CACHE_SECONDS = 30.0

    def __init__(self) -> None:
        self._cached: tuple[float, HealthResult] | None = None

    async def __call__(self, host: LilyHost) -> HealthResult:
        now = host.clock.now()
        if self._cached is not None and now - self._cached[0] < self.CACHE_SECONDS:
            return self._cached[1]
        result = await self._check(host)
        self._cached = (now, result)
        return result

    async def _check(self, host: LilyHost) -> HealthResult:
        settings = host.plugin_settings(PLUGIN)
        if not isinstance(settings, StripeSettings):
            return HealthResult(HealthState.NOT_CONFIGURED, "set STRIPE_SECRET_KEY and the other STRIPE_* settings")
        details = {"api_base": settings.api_base, "mode": _mode(settings)}
        try:
            await StripeGateway(settings).retrieve_balance()
        except (stripe.AuthenticationError, stripe.PermissionError) as error:
            return HealthResult(
                HealthState.FAILED,
                f"Stripe rejected STRIPE_SECRET_KEY ({error.http_status}): check the key in the Stripe dashboard",
                {**details, "reason": "auth"},
            )
        except stripe.StripeError as error:
            return HealthResult(
                HealthState.FAILED,
                f"Stripe call failed: {type(error).__name__} ({error.http_status or 'no response'})",
                {**details, "reason": "unreachable"},
            )
        return HealthResult(HealthState.OK, "secret key accepted", details)


async def check_subscriptions(host: LilyHost) -> HealthResult:
    """Past-due tenants keep their automations, but someone should chase the payment."""
    past_due: list[str] = []
    for member in sorted(await awaited(host.redis.smembers(PAST_DUE_KEY))):
        tenant_id = member.decode() if isinstance(member, bytes) else str(member)
        tenant = await host.tenants.get(tenant_id)
        if tenant is not None and tenant.subscription_status == "past_due":
            past_due.append(tenant_id)
    if not past_due:
        return HealthResult(HealthState.OK, "no tenant is past due")
    listed = ", ".join(past_due[:LISTED_TENANTS]) + (" ..." if len(past_due) > LISTED_TENANTS else "")
    return HealthResult(
        HealthState.DEGRADED,
        f"{len(past_due)} tenant(s) past due, automations still running: {listed}",
        {"past_due": past_due},
    )


def _mode(settings: StripeSettings) -> str:
    key = settings.secret_key.get_secret_value()
    return "live" if key.startswith(("sk_live_", "rk_live_")) else "test"


def health_checks() -> list[HealthCheck]:
    return [
        HealthCheck("api", ApiCheck(), timeout=10.0),
        HealthCheck("subscriptions", check_subscriptions, timeout=5.0),
    ]
