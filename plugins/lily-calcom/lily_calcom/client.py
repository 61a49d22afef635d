"""The one Cal.com API call Lily makes: ``GET /v2/me``, to check the API key (health)."""

from __future__ import annotations

import httpx

from lily_calcom.settings import CalcomSettings
from lily_host import HealthResult, HealthState, track_api_call


async def check_api_key(settings: CalcomSettings) -> HealthResult:
    """ok when Cal.com accepts ``CALCOM_API_KEY``; auth_failed when it refuses it; degraded when unreachable."""
    if settings.api_key is None:
        return HealthResult(HealthState.NOT_CONFIGURED, "set CALCOM_API_KEY to check the Cal.com API")
    url = f"{settings.api_base}/v2/me"
    headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}", "Accept": "application/json"}
    try:
        with track_api_call("calcom", "me"):
            async with httpx.AsyncClient(timeout=settings.request_timeout) as client:
                response = await client.get(url, headers=headers)
    except httpx.HTTPError as error:
        # Cal.com being down must not make Lily look down: webhooks still arrive and are verified locally.
        return HealthResult(HealthState.DEGRADED, f"Cal.com API unreachable at {settings.api_base}: {error}")
    if response.status_code in (401, 403):
        return HealthResult(
            HealthState.AUTH_FAILED,
            f"Cal.com refused CALCOM_API_KEY (HTTP {response.status_code}): "
            "create a new key in Cal.com Settings → Developer → API keys",
        )
    if response.status_code != 200:
        return HealthResult(HealthState.DEGRADED, f"Cal.com API answered HTTP {response.status_code}")
    try:
        data = response.json().get("data") or {}
    except ValueError:
        return HealthResult(HealthState.DEGRADED, "Cal.com API answered with a body that is not JSON")
    email = data.get("email") if isinstance(data, dict) else None
    return HealthResult(
        HealthState.OK, f"API key accepted ({email or 'unknown user'})", {"api_base": settings.api_base}
    )
