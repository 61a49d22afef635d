"""Connecting a tenant's Google Calendar: the OAuth web flow with PKCE.

``GET /auth/google/start`` (a tenant API key → JSON with the consent URL; or a one-time ``?link=``
from ``lily gcal connect`` → a redirect to it) remembers ``state`` and the PKCE ``code_verifier``
server-side for ten minutes. ``GET /auth/google/callback`` consumes that state (so a state works
once, and a callback with a state Lily did not issue is refused), exchanges the code with the
verifier, and stores the tenant's tokens encrypted. Google's consent screen is asked for offline
access and ``prompt=consent``, so it always returns a refresh token.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
from google_auth_oauthlib.flow import Flow
from markupsafe import escape
from oauthlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error
from quart import Blueprint, Response, jsonify, redirect, request

from lily_gcal.links import STATE_TTL_SECONDS, save_state, take_state, use_link
from lily_gcal.settings import SCOPES, GcalSettings
from lily_gcal.tokens import StoredTokens, TokenStore
from lily_host import Tenant, current_host, get_logger, tenant_or_refusal, track_api_call

if TYPE_CHECKING:
    from lily_host import LilyHost

EVENTS_SCOPE = SCOPES[0]
SHARE_TASK = "gcal.sync_sharing"

blueprint = Blueprint("lily_gcal", __name__)
log = get_logger("lily.gcal")


def make_flow(settings: GcalSettings, *, state: str | None = None, code_verifier: str | None = None) -> Flow:
    config = {
        "web": {
            "client_id": settings.client_id,
            "client_secret": settings.client_secret.get_secret_value(),
            "auth_uri": settings.auth_uri,
            "token_uri": settings.token_uri,
            "redirect_uris": [settings.redirect_uri],
        }
    }
    return Flow.from_client_config(
        config,
        scopes=list(SCOPES),
        redirect_uri=settings.redirect_uri,
        state=state,
        code_verifier=code_verifier,
        autogenerate_code_verifier=code_verifier is None,
    )


def consent_url(settings: GcalSettings, state: str) -> tuple[str, str]:
    """(Google consent URL, the PKCE code_verifier to keep for the callback)."""
    flow = make_flow(settings)
    url, _ = flow.authorization_url(prompt="consent", access_type="offline", state=state)
    return url, str(flow.code_verifier)


def exchange_code(settings: GcalSettings, state: str, code_verifier: str, code: str) -> dict[str, Any]:
    """The token response for ``code`` (blocking: run it in a thread)."""
    flow = make_flow(settings, state=state, code_verifier=code_verifier)
    with track_api_call("gcal", "token.exchange"):
        try:
            token = flow.fetch_token(code=code, timeout=settings.request_timeout)
        except Warning as changed:
            # oauthlib raises when Google grants other scopes than asked; what matters is checked below.
            token = changed.token  # type: ignore[attr-defined]
    return dict(token)


def tokens_from_response(token: dict[str, Any], now: float) -> StoredTokens:
    expires_in = token.get("expires_in")
    expiry = None
    if isinstance(expires_in, int | float):
        expiry = (datetime.now(UTC) + timedelta(seconds=float(expires_in))).replace(tzinfo=None)
    scope = token.get("scope") or []
    scopes = tuple(scope.split() if isinstance(scope, str) else scope)
    return StoredTokens(
        token=token.get("access_token"),
        refresh_token=str(token.get("refresh_token") or ""),
        expiry=expiry,
        scopes=scopes,
        connected_at=now,
    )


def _problem(status: int, error: str, message: str) -> Response:
    response = jsonify({"error": error, "message": message})
    response.status_code = status
    return response


def _settings(host: LilyHost) -> GcalSettings:
    settings = host.plugin_settings("gcal")
    assert isinstance(settings, GcalSettings)
    return settings


async def _tenant_from_api_key(host: LilyHost) -> str | Response:
    found = await tenant_or_refusal(
        "send Authorization: Bearer <tenant API key>, or open a link from `lily gcal connect <tenant>`"
    )
    if isinstance(found, Tenant):
        return found.id
    response: Response = found
    return response


@blueprint.get("/start")
async def start() -> Any:
    host = current_host()
    settings = _settings(host)
    link = request.args.get("link")
    if link is not None:
        tenant_id = await use_link(host, link)
        if tenant_id is None:
            return _problem(
                410,
                "link_expired",
                "this connect link was already used or has expired: run `lily gcal connect <tenant>`",
            )
    else:
        found = await _tenant_from_api_key(host)
        if isinstance(found, Response):
            return found
        tenant_id = found
    if await host.tenants.get(tenant_id) is None:
        return _problem(404, "unknown_tenant", f"tenant {tenant_id!r} no longer exists")
    state = secrets.token_urlsafe(32)
    try:
        url, verifier = consent_url(settings, state)
    except InsecureTransportError:
        return _problem(
            503,
            "not_configured",
            "GOOGLE_AUTH_URI and GOOGLE_TOKEN_URI must be https (for a local fake, set OAUTHLIB_INSECURE_TRANSPORT=1)",
        )
    await save_state(host, state, tenant_id, verifier)
    log.info("google consent started", tenant=tenant_id, via="link" if link is not None else "api_key")
    if link is not None:
        return redirect(url, 302)
    return jsonify({"authorization_url": url, "expires_in": STATE_TTL_SECONDS})


@blueprint.get("/callback")
async def callback() -> Any:
    host = current_host()
    settings = _settings(host)
    state = request.args.get("state", "")
    if not state:
        return _problem(400, "invalid", "the callback has no state: start the connection again")
    pending = await take_state(host, state)
    if pending is None:
        return _problem(
            400, "invalid_state", "unknown, expired or already used state: start the connection again from Lily"
        )
    tenant_id = str(pending["tenant"])
    if request.args.get("error"):
        return _problem(
            400,
            "access_denied",
            f"Google did not grant access ({request.args['error']}): start again and allow calendar access",
        )
    code = request.args.get("code", "")
    if not code:
        return _problem(400, "invalid", "the callback has no code: start the connection again")
    tenant = await host.tenants.get(tenant_id)
    if tenant is None:
        return _problem(404, "unknown_tenant", f"tenant {tenant_id!r} no longer exists")
    try:
        token = await asyncio.to_thread(exchange_code, settings, state, str(pending["code_verifier"]), code)
    except OAuth2Error as error:
        log.warning("google refused the authorization code", tenant=tenant_id, error=error.error)
        return _problem(
            400, "code_rejected", f"Google refused the authorization code ({error.error}): start the connection again"
        )
    except requests.RequestException as error:
        return _problem(502, "google_unreachable", f"could not reach Google's token endpoint ({error}); try again")
    tokens = TokenStore(host, settings)
    stored = tokens_from_response(token, host.clock.now())
    if EVENTS_SCOPE not in stored.scopes:
        return _problem(
            400,
            "scope_missing",
            "Lily needs permission to edit calendar events: connect again and keep that box ticked",
        )
    if not stored.refresh_token:
        previous = await tokens.load(tenant_id)
        if previous is None:
            return _problem(
                400,
                "no_refresh_token",
                "Google sent no refresh token: remove Lily at myaccount.google.com/permissions and connect again",
            )
        stored = StoredTokens(stored.token, previous.refresh_token, stored.expiry, stored.scopes, stored.connected_at)
    await tokens.save(tenant_id, stored)
    await tokens.clear_auth_failure(tenant_id)
    await host.schedule(SHARE_TASK, {}, tenant=tenant_id, dedupe_key=f"gcal:share:{tenant_id}")
    log.info("google calendar connected", tenant=tenant_id)
    page = (
        "<!doctype html><title>Google Calendar connected</title>"
        f"<p>Google Calendar is connected for <b>{escape(tenant.name)}</b>. "
        "New bookings will appear on the calendar. You can close this window.</p>"
    )
    return Response(page, status=200, content_type="text/html; charset=utf-8")
