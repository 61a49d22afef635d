"""Chatwoot's API as Lily calls it: send a reply, and read the profile behind a token (health).

Every call runs inside ``track_api_call`` and an answer maps to what the task queue understands:
429 → ``RetryLater`` after Retry-After, 5xx → an ordinary exception (retried with backoff), any
other 4xx → ``PermanentError`` (dead letters: a revoked token, a deleted conversation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from lily_chatwoot.settings import PLUGIN, ChatwootSettings, ChatwootTenantSettings
from lily_host import (
    HealthResult,
    HealthState,
    LilyHost,
    PermanentError,
    RetryLater,
    Tenant,
    parse_retry_after,
    track_api_call,
)

#: How long to wait when a 429 carries no usable Retry-After.
DEFAULT_RETRY_AFTER = 60.0


class ChatwootUnavailable(Exception):
    """Chatwoot answered 5xx: the task is retried with backoff."""


def raise_for_answer(response: httpx.Response, *, operation: str, now: float) -> None:
    """Nothing for a 2xx; otherwise the exception that tells the queue what to do."""
    status = response.status_code
    if status < 300:
        return
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"), now=now)
        raise RetryLater(f"Chatwoot rate-limited {operation}", seconds=DEFAULT_RETRY_AFTER if wait is None else wait)
    if status >= 500:
        raise ChatwootUnavailable(f"Chatwoot answered HTTP {status} to {operation}")
    raise PermanentError(f"Chatwoot refused {operation}: HTTP {status} {response.text[:200]}", code=f"http_{status}")


async def send_message(
    settings: ChatwootSettings, token: str, account: str, conversation: str, content: str
) -> httpx.Response:
    """``POST /api/v1/accounts/{account}/conversations/{conversation}/messages`` (a public, outgoing message).

    Chatwoot takes no idempotency key here: the reply task guards the call with ``host.once``.
    """
    url = f"{settings.api_base}/api/v1/accounts/{account}/conversations/{conversation}/messages"
    body = {"content": content, "message_type": "outgoing", "private": False}
    with track_api_call(PLUGIN, "send_message"):
        async with httpx.AsyncClient(timeout=settings.request_timeout) as client:
            return await client.post(url, json=body, headers={"api_access_token": token})


async def check_token(settings: ChatwootSettings, account: ChatwootTenantSettings) -> HealthState:
    """``GET /api/v1/profile``: ok when Chatwoot accepts the tenant's token, auth_failed when it refuses it."""
    assert account.api_access_token is not None
    headers = {"api_access_token": account.api_access_token.get_secret_value()}
    try:
        with track_api_call(PLUGIN, "profile"):
            async with httpx.AsyncClient(timeout=settings.request_timeout) as client:
                response = await client.get(f"{settings.api_base}/api/v1/profile", headers=headers)
    except httpx.HTTPError:
        return HealthState.DEGRADED
    if response.status_code in (401, 403):
        return HealthState.AUTH_FAILED
    return HealthState.OK if response.status_code == 200 else HealthState.DEGRADED


async def tenant_token(host: LilyHost, tenant: Tenant, settings: ChatwootSettings) -> dict[str, Any] | None:
    """One tenant's entry for the cached per-tenant check: its token against the profile endpoint.

    None when the tenant has no Chatwoot token (the check does not apply to it).
    """
    own = host.tenants.plugin_settings(tenant, PLUGIN)
    if not isinstance(own, ChatwootTenantSettings) or own.api_access_token is None:
        return None
    state = await check_token(settings, own)
    messages = {
        HealthState.OK: "token accepted",
        HealthState.AUTH_FAILED: "Chatwoot refused the api_access_token",
        HealthState.DEGRADED: f"Chatwoot unreachable or failing at {settings.api_base}",
    }
    return {"state": state.value, "message": messages.get(state, state.value)}


def summarize(entries: Mapping[str, Mapping[str, Any]]) -> HealthResult:
    """The plugin's state from the tenants' cached entries (tenant id → entry)."""
    by_tenant = {tenant: str(entry["state"]) for tenant, entry in entries.items()}
    if not by_tenant:
        return HealthResult(HealthState.OK, "no tenant has a Chatwoot api_access_token yet: nothing to check")
    refused = sorted(tenant for tenant, state in by_tenant.items() if state == HealthState.AUTH_FAILED.value)
    if refused:
        return HealthResult(
            HealthState.AUTH_FAILED,
            f"Chatwoot refused the api_access_token of tenant(s) {', '.join(refused)}: copy a new one from "
            "Chatwoot (Profile settings → Access Token) into `lily tenants set TENANT chatwoot.api_access_token=...`",
            by_tenant,
        )
    if any(state != HealthState.OK.value for state in by_tenant.values()):
        return HealthResult(HealthState.DEGRADED, "Chatwoot unreachable or failing for some tenants", by_tenant)
    return HealthResult(HealthState.OK, f"{len(by_tenant)} tenant token(s) accepted", by_tenant)
