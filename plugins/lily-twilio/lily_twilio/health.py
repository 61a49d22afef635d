"""Health: can Lily use the Twilio account? (credentials valid and the account active)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

from lily_host import HealthResult, HealthState, track_api_call
from lily_twilio.client import make_client
from lily_twilio.settings import TwilioSettings

if TYPE_CHECKING:
    from lily_host import LilyHost


def account_check(settings: TwilioSettings) -> Callable[[LilyHost], Awaitable[HealthResult]]:
    async def check(host: LilyHost) -> HealthResult:
        def fetch() -> str:
            client, _http = make_client(settings)
            return str(client.api.v2010.accounts(settings.account_sid).fetch().status)

        try:
            with track_api_call("twilio", "accounts.fetch"):
                status = await asyncio.to_thread(fetch)
        except (TwilioRestException, TwilioServiceException) as error:
            if error.status in (401, 403):
                return HealthResult(
                    HealthState.FAILED,
                    "Twilio rejected the credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
                    {"http_status": error.status, "code": error.code},
                )
            if error.status >= 500:
                return HealthResult(HealthState.DEGRADED, f"Twilio answered {error.status}", {"code": error.code})
            return HealthResult(
                HealthState.FAILED, f"account fetch failed with HTTP {error.status}", {"code": error.code}
            )
        except (TwilioException, requests.RequestException) as error:
            return HealthResult(HealthState.DEGRADED, f"Twilio unreachable: {type(error).__name__}")
        if status != "active":
            return HealthResult(HealthState.FAILED, f"the Twilio account is {status}", {"account_status": status})
        return HealthResult(HealthState.OK, "account active", {"account_status": status})

    return check
