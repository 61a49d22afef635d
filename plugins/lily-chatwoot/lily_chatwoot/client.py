"""The provider's API, as the plugin calls it: one note per event, and a health check per tenant.

Every call runs inside ``track_api_call`` (latency and failure metrics) and maps the provider's
answer to what the task queue understands: 429 → ``RetryLater`` (after Retry-After), 5xx → an
ordinary exception (retried with backoff), any other 4xx → ``PermanentError`` (dead letters).
"""

from __future__ import annotations

import asyncio

import httpx

from lily_host import (
    HealthResult,
    HealthState,
    LilyHost,
    PermanentError,
    RetryLater,
    parse_retry_after,
    track_api_call,
)
from lily_chatwoot.settings import PLUGIN, ChatwootSettings, ChatwootTenantSettings

#: How long to wait when a 429 carries no usable Retry-After.
DEFAULT_RETRY_AFTER = 30.0
#: At most this many tenants' credentials are checked by one health check.
HEALTH_TENANT_LIMIT = 50


class ProviderUnavailable(Exception):
    """The provider answered 5xx: retried with the task's backoff."""


def raise_for_answer(response: httpx.Response, *, operation: str, now: float) -> None:
    """Nothing for a 2xx; otherwise the exception that tells the queue what to do."""
    status = response.status_code
    if status < 300:
        return
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"), now=now)
        raise RetryLater(f"Chatwoot rate-limited {operation}", seconds=DEFAULT_RETRY_AFTER if wait is None else wait)
    if status >= 500:
        raise ProviderUnavailable(f"Chatwoot answered HTTP {status} to {operation}")
    raise PermanentError(f"Chatwoot refused {operation}: HTTP {status} {response.text[:200]}", code=f"http_{status}")


async def post_note(
    settings: ChatwootSettings, account: ChatwootTenantSettings, text: str
) -> httpx.Response:
    """``POST /v1/accounts/{account}/notes``: the provider has no idempotency key, see tasks.py."""
    assert account.account_id is not None and account.api_key is not None
    url = f"{settings.api_base}/v1/accounts/{account.account_id}/notes"
    headers = {"Authorization": f"Bearer {account.api_key.get_secret_value()}"}
    with track_api_call(PLUGIN, "post_note"):
        async with httpx.AsyncClient(timeout=settings.request_timeout) as client:
            return await client.post(url, json={"text": text}, headers=headers)


async def check_account(settings: ChatwootSettings, account: ChatwootTenantSettings) -> HealthState:
    """ok when the provider accepts the tenant's API key, auth_failed when it refuses it."""
    assert account.api_key is not None
    headers = {"Authorization": f"Bearer {account.api_key.get_secret_value()}"}
    try:
        with track_api_call(PLUGIN, "me"):
            async with httpx.AsyncClient(timeout=settings.request_timeout) as client:
                response = await client.get(f"{settings.api_base}/v1/me", headers=headers)
    except httpx.HTTPError:
        return HealthState.DEGRADED
    if response.status_code in (401, 403):
        return HealthState.AUTH_FAILED
    return HealthState.OK if response.status_code == 200 else HealthState.DEGRADED


async def health(host: LilyHost, settings: ChatwootSettings) -> HealthResult:
    """Check the API key of every tenant that has one (up to HEALTH_TENANT_LIMIT), concurrently."""
    accounts: dict[str, ChatwootTenantSettings] = {}
    for tenant in await host.tenants.all():
        own = host.tenants.plugin_settings(tenant, PLUGIN)
        if isinstance(own, ChatwootTenantSettings) and own.api_key is not None:
            accounts[tenant.id] = own
        if len(accounts) >= HEALTH_TENANT_LIMIT:
            break
    if not accounts:
        return HealthResult(HealthState.OK, "no tenant has a Chatwoot api_key yet: nothing to check")
    states = await asyncio.gather(*(check_account(settings, account) for account in accounts.values()))
    by_tenant = dict(zip(accounts, (state.value for state in states), strict=True))
    refused = sorted(tenant for tenant, state in by_tenant.items() if state == HealthState.AUTH_FAILED.value)
    if refused:
        return HealthResult(
            HealthState.AUTH_FAILED,
            f"Chatwoot refused the api_key of tenant(s) {', '.join(refused)}: set a new one with "
            "`lily tenants set TENANT chatwoot.api_key=...`",
            by_tenant,
        )
    if any(state != HealthState.OK for state in states):
        return HealthResult(HealthState.DEGRADED, f"Chatwoot API unreachable or failing at {settings.api_base}", by_tenant)
    return HealthResult(HealthState.OK, f"{len(accounts)} tenant account(s) accepted", by_tenant)
