"""Keep a tenant's plan and status in step with its Stripe subscription.

Stripe delivers events at least once and out of order, so an event's payload is never applied as
is. Every subscription event schedules ``stripe.sync_subscription``, which fetches the subscription
from Stripe and applies what Stripe says *now*. Three guards keep the result monotonic:

- one sync of a tenant runs at a time: a Redis lock spans the fetch and the write;
- each applied state is stamped with the time its fetch *started* (``billing.synced_at``, Redis
  time, so every web and worker process shares one clock); a fetch that started earlier than the
  applied one never overwrites it, even if it finishes later (say, after the lock expired);
- a task whose event was received before the last applied fetch started skips the fetch: that
  fetch already saw the change behind the event. A burst of events therefore costs one API call.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
import stripe
import structlog

from lily_host import IndexConflict, KeyNamespace, PermanentError, RetryLater, TaskContext, Tenant, awaited
from lily_stripe.errors import task_error
from lily_stripe.gateway import StripeGateway
from lily_stripe.settings import StripeSettings
from lily_stripe.subscription import (
    ENDED_STATUSES,
    KNOWN_STATUSES,
    UNKNOWN_PLAN,
    MalformedSubscription,
    SubscriptionState,
)

if TYPE_CHECKING:
    from lily_host import LilyHost

PLUGIN = "stripe"
SYNC_TASK = "stripe.sync_subscription"
#: Events of one change arrive within a second or two of each other; waiting lets one fetch serve them all.
SYNC_DELAY_SECONDS = 2.0
CUSTOMER_INDEX = "stripe_customer"
PAST_DUE_KEY = "lily:stripe:past_due"
#: A task waits up to ~3 s for another sync of its tenant, then retries later.
_LOCK_WAIT_STEPS = 150
_LOCK_WAIT_SECONDS = 0.02
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def redis_time(redis: aioredis.Redis) -> float:
    """Redis' clock: the one time source shared by every Lily process."""
    seconds, microseconds = await redis.time()
    return float(seconds) + float(microseconds) / 1_000_000


def sync_payload(
    *, subscription: str, customer: str, event_type: str, event_id: str, received_at: float
) -> dict[str, Any]:
    return {
        "subscription": subscription,
        "customer": customer,
        "event_type": event_type,
        "event_id": event_id,
        "received_at": received_at,
    }


def require_settings(host: LilyHost) -> StripeSettings:
    settings = host.plugin_settings(PLUGIN)
    if not isinstance(settings, StripeSettings):
        raise PermanentError("the stripe plugin is not configured (STRIPE_* settings missing)", code="not_configured")
    return settings


async def sync_subscription(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Task: fetch the subscription from Stripe and apply it to the tenant."""
    settings = require_settings(ctx.host)
    subscription_id = payload.get("subscription")
    customer = payload.get("customer")
    if ctx.tenant_id is None or not isinstance(subscription_id, str) or not isinstance(customer, str):
        raise PermanentError("sync_subscription needs a tenant, a subscription id and a customer id")
    tenant_id = ctx.tenant_id
    log = ctx.log.bind(subscription=subscription_id, stripe_event=payload.get("event_id"))
    received_at = float(payload.get("received_at") or 0.0)
    # One sync of a tenant at a time: a task that waited for another's fetch usually finds it
    # already covers its event and skips its own.
    async with _tenant_lock(ctx.host.redis, tenant_id, ttl_seconds=_fetch_budget(settings)):
        tenant = await ctx.host.tenants.get(tenant_id)
        if tenant is None:
            log.warning("tenant no longer exists; subscription not synced")
            return
        if tenant.billing.get("subscription_id") == subscription_id and _synced_at(tenant.billing) > received_at:
            log.info("subscription already synced by a later fetch")
            return
        fetched_at = await redis_time(ctx.host.redis)
        state = await _fetch(settings, subscription_id, customer, payload.get("event_type"), log)
        if state.tenant_id is not None and state.tenant_id != tenant_id:
            raise PermanentError(
                f"subscription {subscription_id} names tenant {state.tenant_id!r} in its metadata, not {tenant_id!r}",
                code="tenant_mismatch",
            )
        await _apply(ctx.host, settings, tenant_id, state, fetched_at=fetched_at, log=log)


async def _fetch(
    settings: StripeSettings,
    subscription_id: str,
    customer: str,
    event_type: Any,
    log: structlog.stdlib.BoundLogger,
) -> SubscriptionState:
    try:
        data = await StripeGateway(settings).retrieve_subscription(subscription_id)
    except stripe.InvalidRequestError as error:
        # Only a deletion may end in "no such subscription" (e.g. test data wiped): anything else
        # naming an unknown subscription must not cancel a tenant.
        if error.http_status != 404 or event_type != "customer.subscription.deleted":
            raise task_error(error) from error
        log.warning("Stripe no longer knows the deleted subscription; treating it as canceled")
        return SubscriptionState.gone(subscription_id, customer)
    except stripe.StripeError as error:
        raise task_error(error) from error
    try:
        return SubscriptionState.from_stripe(data)
    except MalformedSubscription as error:
        raise PermanentError(f"Stripe returned an unusable subscription: {error}") from error


async def apply_subscription(
    host: LilyHost,
    settings: StripeSettings,
    tenant_id: str,
    state: SubscriptionState,
    *,
    fetched_at: float,
    log: structlog.stdlib.BoundLogger,
) -> bool:
    """Write ``state`` (fetched at ``fetched_at``) to the tenant unless something newer is there already.

    Returns whether the tenant changed.
    """
    async with _tenant_lock(host.redis, tenant_id, ttl_seconds=_fetch_budget(settings)):
        return await _apply(host, settings, tenant_id, state, fetched_at=fetched_at, log=log)


async def _apply(
    host: LilyHost,
    settings: StripeSettings,
    tenant_id: str,
    state: SubscriptionState,
    *,
    fetched_at: float,
    log: structlog.stdlib.BoundLogger,
) -> bool:
    """apply_subscription, under the tenant's lock."""
    try:
        await host.tenants.claim_index(CUSTOMER_INDEX, state.customer, tenant_id)
    except IndexConflict as error:
        raise PermanentError(str(error), code="customer_conflict") from error
    if state.status not in KNOWN_STATUSES:
        log.warning("unfamiliar subscription status; automations stay paused for it", status=state.status)
    tenant = await host.tenants.get(tenant_id)
    if tenant is None:
        log.warning("tenant no longer exists; subscription not synced")
        return False
    reason = skip_reason(tenant, state, fetched_at)
    if reason is not None:
        log.info("subscription state not applied", reason=reason, status=state.status)
        return False
    previous = tenant.billing.get("subscription_id")
    if previous not in (None, state.id) and tenant.subscription_status not in ENDED_STATUSES:
        # Two checkouts completed before the first one synced: Stripe bills both until one is canceled.
        log.warning("tenant has two live subscriptions; following the newer", previous=previous)
    billing = {
        **tenant.billing,
        "customer_id": state.customer,
        "subscription_id": state.id,
        "price_id": state.price_id,
        "current_period_end": state.current_period_end,
        "cancel_at_period_end": state.cancel_at_period_end,
        "cancel_at": state.cancel_at,
        "created": state.created,
        "synced_at": fetched_at,
    }
    plan = state.plan(settings)
    await host.tenants.update(
        tenant_id, plan=plan, subscription_status=state.status, trial_end=state.trial_end, billing=billing
    )
    if state.status == "past_due":
        await awaited(host.redis.sadd(PAST_DUE_KEY, tenant_id))
    else:
        await awaited(host.redis.srem(PAST_DUE_KEY, tenant_id))
    if tenant.subscription_status != state.status or tenant.plan != plan:
        log.info(
            "subscription changed",
            status_from=tenant.subscription_status,
            status=state.status,
            plan_from=tenant.plan,
            plan=plan,
        )
    if plan == UNKNOWN_PLAN:
        log.warning("subscription price matches no STRIPE_PRICE_* setting", price=state.price_id)
    return True


def skip_reason(tenant: Tenant, state: SubscriptionState, fetched_at: float) -> str | None:
    """Why ``state`` must not overwrite the tenant's billing, or None to apply it."""
    billing = tenant.billing
    current = billing.get("subscription_id")
    if current is None:
        return None
    if current == state.id:
        if fetched_at < _synced_at(billing):
            return "a state fetched later is already applied"
        return None
    if not state.live:
        return f"{state.id} has ended and is not the tenant's current subscription ({current})"
    current_live = tenant.subscription_status not in ENDED_STATUSES
    if current_live and state.created <= float(billing.get("created") or 0.0):
        return f"the tenant's current subscription {current} is live and newer"
    return None


def _synced_at(billing: Mapping[str, Any]) -> float:
    value = billing.get("synced_at")
    return float(value) if isinstance(value, int | float) else 0.0


def _fetch_budget(settings: StripeSettings) -> float:
    """The longest one fetch may take, SDK retries included: the lock must outlive it."""
    return settings.timeout_seconds * (settings.max_network_retries + 1) + 10.0


@asynccontextmanager
async def _tenant_lock(redis: aioredis.Redis, tenant_id: str, *, ttl_seconds: float) -> AsyncIterator[None]:
    """Serialise fetch-compare-write of one tenant's billing across workers."""
    key = KeyNamespace("stripe").tenant_key(tenant_id, "lock")
    token = secrets.token_hex(8)
    for _ in range(_LOCK_WAIT_STEPS):
        if await redis.set(key, token, nx=True, px=int(ttl_seconds * 1000)):
            break
        await asyncio.sleep(_LOCK_WAIT_SECONDS)
    else:
        raise RetryLater("another sync of this tenant is running", seconds=5)
    try:
        yield
    finally:
        await awaited(redis.eval(_RELEASE_LUA, 1, key, token))


async def schedule_sync(host: LilyHost, tenant_id: str) -> str | None:
    """Queue a sync of the tenant's linked subscription now (after missed webhooks, or on demand)."""
    tenant = await host.tenants.require(tenant_id)
    subscription, customer = tenant.billing.get("subscription_id"), tenant.billing.get("customer_id")
    if not isinstance(subscription, str) or not isinstance(customer, str):
        raise PermanentError(f"tenant {tenant_id!r} has no Stripe subscription linked yet")
    payload = sync_payload(
        subscription=subscription,
        customer=customer,
        event_type="manual",
        event_id="manual",
        received_at=await redis_time(host.redis),
    )
    return await host.schedule(SYNC_TASK, payload, tenant=tenant_id)
