"""A tenant's Google tokens: stored encrypted, refreshed before they expire, and the reconnect state.

Storage:

- tenant secret ``gcal_tokens`` (encrypted by the host): ``{"token", "refresh_token", "expiry", "scopes",
  "connected_at"}``;
- ``lily:{t:<tenant>}:gcal:auth_failed``: why Google refused the tenant's refresh token, and since when.
  While it exists, calendar work for the tenant waits (``Defer``) instead of failing, and health
  says ``auth_failed`` with a reconnect link. A successful OAuth callback removes it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials

from lily_gcal.settings import SCOPES, GcalSettings
from lily_host import KeyNamespace, get_logger, track_api_call

if TYPE_CHECKING:
    from lily_host import LilyHost

TOKENS_SECRET = "gcal_tokens"
#: Refresh this long before the access token expires, so no call races the expiry.
REFRESH_MARGIN_SECONDS = 300

log = get_logger("lily.gcal")


class NotConnected(Exception):
    """The tenant never connected Google Calendar (no tokens)."""


class AuthFailed(Exception):
    """Google refused the tenant's refresh token: the tenant must reconnect."""


@dataclass(frozen=True)
class StoredTokens:
    token: str | None
    refresh_token: str
    #: Naive UTC, as google-auth keeps it.
    expiry: datetime | None
    scopes: tuple[str, ...]
    connected_at: float

    def to_json(self) -> str:
        return json.dumps(
            {
                "token": self.token,
                "refresh_token": self.refresh_token,
                "expiry": self.expiry.isoformat() if self.expiry else None,
                "scopes": list(self.scopes),
                "connected_at": self.connected_at,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StoredTokens:
        data: dict[str, Any] = json.loads(text)
        expiry = datetime.fromisoformat(data["expiry"]) if data.get("expiry") else None
        if expiry is not None and expiry.tzinfo is not None:
            expiry = expiry.astimezone(UTC).replace(tzinfo=None)
        return cls(
            token=data.get("token"),
            refresh_token=str(data["refresh_token"]),
            expiry=expiry,
            scopes=tuple(data.get("scopes") or SCOPES),
            connected_at=float(data.get("connected_at") or 0.0),
        )

    @classmethod
    def from_credentials(cls, credentials: Credentials, connected_at: float) -> StoredTokens:
        return cls(
            token=credentials.token,
            refresh_token=str(credentials.refresh_token),
            expiry=credentials.expiry,
            scopes=tuple(credentials.granted_scopes or credentials.scopes or SCOPES),
            connected_at=connected_at,
        )

    def expires_soon(self, now: float | None = None) -> bool:
        if self.token is None or self.expiry is None:
            return True
        # Token expiry is a real-world instant from Google: compare with real time, not the host's clock.
        current = time.time() if now is None else now
        return self.expiry.replace(tzinfo=UTC).timestamp() - current < REFRESH_MARGIN_SECONDS


def auth_failed_key(tenant_id: str) -> str:
    return KeyNamespace("gcal").tenant_key(tenant_id, "auth_failed")


class TokenStore:
    """Tokens and auth state of every tenant, for one host."""

    def __init__(self, host: LilyHost, settings: GcalSettings) -> None:
        self.host = host
        self.settings = settings

    # --- stored tokens ---------------------------------------------------------------------------------

    async def load(self, tenant_id: str) -> StoredTokens | None:
        raw = await self.host.tenants.get_secret(tenant_id, TOKENS_SECRET)
        return None if raw is None else StoredTokens.from_json(raw)

    async def save(self, tenant_id: str, tokens: StoredTokens) -> None:
        await self.host.tenants.put_secret(tenant_id, TOKENS_SECRET, tokens.to_json())

    def credentials(self, tokens: StoredTokens) -> Credentials:
        # google-auth's constructor and refresh() carry no annotations.
        return Credentials(  # type: ignore[no-untyped-call]
            token=tokens.token,
            refresh_token=tokens.refresh_token,
            token_uri=self.settings.token_uri,
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret.get_secret_value(),
            scopes=list(tokens.scopes),
            expiry=tokens.expiry,
        )

    # --- auth state ----------------------------------------------------------------------------------------

    async def auth_failure(self, tenant_id: str) -> dict[str, Any] | None:
        raw = await self.host.redis.get(auth_failed_key(tenant_id))
        if raw is None:
            return None
        failure: dict[str, Any] = json.loads(raw)
        return failure

    async def mark_auth_failed(self, tenant_id: str, reason: str) -> None:
        created = await self.host.redis.set(
            auth_failed_key(tenant_id), json.dumps({"reason": reason, "since": self.host.clock.now()}), nx=True
        )
        if created:
            log.warning(
                "google refused the tenant's credentials; calendar work waits until it reconnects",
                tenant=tenant_id,
                reason=reason,
            )

    async def clear_auth_failure(self, tenant_id: str) -> None:
        await self.host.redis.delete(auth_failed_key(tenant_id))

    # --- fresh credentials -------------------------------------------------------------------------------------

    async def fresh(self, tenant_id: str) -> tuple[Credentials, StoredTokens]:
        """Credentials whose access token is good for a while, refreshing (and storing) it if needed.

        NotConnected / AuthFailed when the tenant has no usable grant; a transient error of Google's
        token endpoint propagates as RefreshError(retryable) or TransportError (the task retries).
        """
        if await self.auth_failure(tenant_id) is not None:
            raise AuthFailed("Google refused this tenant's credentials earlier; reconnect Google Calendar")
        stored = await self.load(tenant_id)
        if stored is None:
            raise NotConnected("this tenant has not connected Google Calendar")
        if not stored.expires_soon():
            return self.credentials(stored), stored
        credentials = self.credentials(stored)
        try:
            await asyncio.to_thread(self._refresh, credentials)
        except RefreshError as error:
            if error.retryable:
                raise
            # Another worker may have refreshed (and Google rotated the refresh token) meanwhile.
            latest = await self.load(tenant_id)
            if latest is not None and latest.refresh_token != stored.refresh_token:
                return await self.fresh(tenant_id)
            await self.mark_auth_failed(tenant_id, _reason(error))
            raise AuthFailed(f"Google refused the refresh token: {_reason(error)}") from error
        updated = await self.persist(tenant_id, credentials, stored)
        return credentials, updated

    def _refresh(self, credentials: Credentials) -> None:
        with track_api_call("gcal", "token.refresh"):
            transport = google_auth_httplib2.Request(httplib2.Http(timeout=self.settings.request_timeout))
            credentials.refresh(transport)  # type: ignore[no-untyped-call]

    async def persist(self, tenant_id: str, credentials: Credentials, stored: StoredTokens) -> StoredTokens:
        """Store the credentials' token if it changed (a refresh, or a rotated refresh token)."""
        if credentials.token == stored.token and (credentials.refresh_token or stored.refresh_token) == (
            stored.refresh_token
        ):
            return stored
        updated = StoredTokens(
            token=credentials.token,
            refresh_token=str(credentials.refresh_token or stored.refresh_token),
            expiry=credentials.expiry,
            scopes=stored.scopes,
            connected_at=stored.connected_at,
        )
        await self.save(tenant_id, updated)
        log.info("google access token refreshed", tenant=tenant_id)
        return updated


def _reason(error: RefreshError) -> str:
    """``invalid_grant: Token has been expired or revoked.`` from google-auth's error."""
    details = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], dict) else None
    if details and details.get("error"):
        description = details.get("error_description")
        return f"{details['error']}: {description}" if description else str(details["error"])
    return str(error.args[0]) if error.args else "refresh failed"
