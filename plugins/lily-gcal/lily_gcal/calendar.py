"""The ``calendar`` capability on Google Calendar: idempotent booking events, one per booking chain.

Event ids are ours (base32hex of a hash of tenant + booking uid), so a retried insert cannot create
a second event: Google answers 409 and the event is patched instead; an event that was deleted keeps
its id with ``status: cancelled`` and is patched back to ``confirmed``. Every Google call runs in a
thread (httplib2 blocks and is not thread-safe, so each call gets a fresh authorized http).

A tenant that has not connected Google, or whose grant Google revoked, makes calls raise ``Defer``:
the task waits and tries again later instead of failing towards the dead letters.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from lily_gcal.links import reconnect_hint
from lily_gcal.settings import GcalSettings, GcalTenantSettings
from lily_gcal.tokens import AuthFailed, NotConnected, TokenStore, _reason
from lily_host import CalendarEvent, Defer, KeyNamespace, PermanentError, RetryLater, get_logger, track_api_call

if TYPE_CHECKING:
    from lily_host import LilyHost, Tenant

PLUGIN = "gcal"
#: How long calendar work waits before looking again at a tenant that is not (or no longer) connected.
WAIT_SECONDS = 300
#: Google does not email attendees about our writes: Cal.com already told the customer.
SEND_UPDATES = "none"
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})

T = TypeVar("T")
log = get_logger("lily.gcal")


def event_id(tenant_id: str, booking_uid: str) -> str:
    """Google event id for a booking: base32hex ([0-9a-v]), 52 chars, the same on every retry."""
    digest = hashlib.sha256(f"lily:{tenant_id}:{booking_uid}".encode()).digest()
    return base64.b32hexencode(digest).decode().rstrip("=").lower()


def event_body(tenant_id: str, event: CalendarEvent, settings: GcalTenantSettings) -> dict[str, Any]:
    """The Calendar API event resource for ``event`` (without the id).

    Booking events (``service_type`` set) last as long as the tenant says that service takes;
    other events keep their own end.
    """
    zone = ZoneInfo(event.timezone)
    start = datetime.fromisoformat(event.start).astimezone(zone)
    service_type: str | None = getattr(event, "service_type", None)
    if service_type is not None:
        end = start + timedelta(minutes=settings.duration_minutes(service_type))
    else:
        end = datetime.fromisoformat(event.end).astimezone(zone)
    body: dict[str, Any] = {
        "summary": event.title,
        "description": event.description,
        "start": {"dateTime": start.isoformat(), "timeZone": event.timezone},
        "end": {"dateTime": end.isoformat(), "timeZone": event.timezone},
        "attendees": [{"email": event.attendee_email}] if event.attendee_email else [],
        "status": "confirmed",
        "extendedProperties": {"private": {"lily_tenant": tenant_id, "lily_booking_uid": event.booking_uid}},
    }
    if event.location:
        body["location"] = event.location
    return body


def _error_reason(error: HttpError) -> str:
    try:
        data = json.loads(error.content.decode("utf-8"))
        return str(data["error"]["errors"][0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError):
        return ""


def _retry_after(error: HttpError, default: float) -> float:
    value = error.resp.get("retry-after") if error.resp is not None else None
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def shared_key(tenant_id: str) -> str:
    """What calendar sharing was last applied for the tenant."""
    return KeyNamespace("gcal").tenant_key(tenant_id, "shared")


class GoogleCalendar:
    """CalendarProvider for lily_host.plugin_api.capabilities. ``attach(host)`` is called by the host at startup."""

    name = PLUGIN

    def __init__(self, settings: GcalSettings) -> None:
        self.settings = settings
        self._host: LilyHost | None = None

    def attach(self, host: LilyHost) -> None:
        self._host = host

    @property
    def host(self) -> LilyHost:
        if self._host is None:
            raise RuntimeError("the Google Calendar provider is used before the host attached it")
        return self._host

    @property
    def tokens(self) -> TokenStore:
        return TokenStore(self.host, self.settings)

    def tenant_settings(self, tenant: Tenant) -> GcalTenantSettings:
        found = self.host.tenants.plugin_settings(tenant, PLUGIN)
        return found if isinstance(found, GcalTenantSettings) else GcalTenantSettings()

    # --- CalendarProvider -------------------------------------------------------------------------------

    async def upsert_event(self, tenant: Tenant, event: CalendarEvent) -> str:
        settings = self.tenant_settings(tenant)
        try:
            await self.sync_sharing(tenant, settings)
        except PermanentError as error:
            # Sharing is a convenience; it must never keep a booking off the calendar.
            log.warning("calendar could not be shared with the team", tenant=tenant.id, reason=error.reason)
        eid = event_id(tenant.id, event.booking_uid)
        body = event_body(tenant.id, event, settings)
        calendar = settings.calendar_id

        def write(service: Any) -> str:
            try:
                with track_api_call(PLUGIN, "events.insert"):
                    created = (
                        service.events()
                        .insert(calendarId=calendar, body={"id": eid, **body}, sendUpdates=SEND_UPDATES)
                        .execute()
                    )
                return str(created["id"])
            except HttpError as error:
                # 409: a previous attempt created it (its answer was lost) or the booking moved: update in place.
                if error.status_code != 409:
                    raise
            with track_api_call(PLUGIN, "events.patch"):
                updated = (
                    service.events()
                    .patch(calendarId=calendar, eventId=eid, body=body, sendUpdates=SEND_UPDATES)
                    .execute()
                )
            return str(updated["id"])

        return await self._call(tenant, "write the booking event", write)

    async def cancel_event(self, tenant: Tenant, booking_uid: str) -> None:
        calendar = self.tenant_settings(tenant).calendar_id
        eid = event_id(tenant.id, booking_uid)

        def delete(service: Any) -> None:
            try:
                with track_api_call(PLUGIN, "events.delete"):
                    service.events().delete(calendarId=calendar, eventId=eid, sendUpdates=SEND_UPDATES).execute()
            except HttpError as error:
                # 404: never written; 410: already deleted. Either way the booking has no event now.
                if error.status_code not in (404, 410):
                    raise

        await self._call(tenant, "cancel the booking event", delete)

    # --- sharing with the team ---------------------------------------------------------------------------

    async def sync_sharing(self, tenant: Tenant, settings: GcalTenantSettings | None = None) -> None:
        """Share the calendar with exactly the team members listed in the tenant's settings.

        What was last applied is remembered in Redis, so a booking write costs no ACL call unless the
        list (or the calendar) changed.
        """
        settings = settings or self.tenant_settings(tenant)
        key = shared_key(tenant.id)
        wanted = {"calendar": settings.calendar_id, "role": settings.share_role, "members": settings.share_with}
        raw = await self.host.redis.get(key)
        applied: dict[str, Any] = json.loads(raw) if raw else {"calendar": settings.calendar_id, "members": []}
        if applied == wanted:
            return
        previous = applied.get("members", []) if applied.get("calendar") == settings.calendar_id else []
        removed = [member for member in previous if member not in settings.share_with]
        calendar, role, members = settings.calendar_id, settings.share_role, settings.share_with
        if not members and not removed:
            await self.host.redis.set(key, json.dumps(wanted))
            return

        def share(service: Any) -> None:
            for member in members:
                rule = {"role": role, "scope": {"type": "user", "value": member}}
                with track_api_call(PLUGIN, "acl.insert"):
                    service.acl().insert(calendarId=calendar, body=rule, sendNotifications=False).execute()
            for member in removed:
                try:
                    with track_api_call(PLUGIN, "acl.delete"):
                        service.acl().delete(calendarId=calendar, ruleId=f"user:{member}").execute()
                except HttpError as error:
                    if error.status_code not in (404, 410):
                        raise

        await self._call(tenant, "share the calendar with the team", share)
        await self.host.redis.set(key, json.dumps(wanted))
        log.info("calendar shared with the team", tenant=tenant.id, members=len(members), removed=len(removed))

    # --- health -----------------------------------------------------------------------------------------------

    async def probe(self, tenant: Tenant, http_timeout: float) -> None:
        """Read one event of the tenant's calendar: proves the grant works and the calendar exists."""
        calendar = self.tenant_settings(tenant).calendar_id

        def read(service: Any) -> None:
            with track_api_call(PLUGIN, "events.list"):
                service.events().list(calendarId=calendar, maxResults=1).execute()

        await self._call(tenant, "read the calendar", read, http_timeout=http_timeout)

    # --- the call machinery --------------------------------------------------------------------------------------

    async def _call(
        self, tenant: Tenant, what: str, work: Callable[[Any], T], *, http_timeout: float | None = None
    ) -> T:
        tokens = self.tokens
        try:
            credentials, stored = await tokens.fresh(tenant.id)
        except (NotConnected, AuthFailed) as error:
            raise await self._deferral(tenant, what, str(error)) from error
        try:
            return await asyncio.to_thread(self._run, credentials, work, http_timeout or self.settings.request_timeout)
        except RefreshError as error:
            if error.retryable:
                raise
            await tokens.mark_auth_failed(tenant.id, _reason(error))
            raise await self._deferral(tenant, what, f"Google refused the refresh token: {_reason(error)}") from error
        except HttpError as error:
            raise await self._translate(tenant, what, error) from error
        finally:
            # The authorized http refreshes by itself on a 401: keep whatever token it ended with.
            await tokens.persist(tenant.id, credentials, stored)

    def _run(self, credentials: Credentials, work: Callable[[Any], T], timeout: float) -> T:
        http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))
        service = build(
            "calendar",
            "v3",
            http=http,
            cache_discovery=False,
            static_discovery=True,
            client_options={"api_endpoint": self.settings.calendar_api_base},
        )
        try:
            return work(service)
        finally:
            service.close()

    async def _deferral(self, tenant: Tenant, what: str, reason: str) -> Defer:
        hint = reconnect_hint(self.host, tenant.id)
        log.warning(
            "calendar work waits for the tenant's Google connection",
            tenant=tenant.id,
            work=what,
            reason=reason,
            retry_in=WAIT_SECONDS,
            fix=hint,
        )
        return Defer(f"cannot {what}: {reason}; to connect: {hint}", until=self.host.clock.now() + WAIT_SECONDS)

    async def _translate(self, tenant: Tenant, what: str, error: HttpError) -> Exception:
        status, reason = error.status_code, _error_reason(error)
        message = f"Google Calendar refused to {what} (HTTP {status} {reason or error.reason})"
        if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
            return RetryLater(message, seconds=_retry_after(error, 60.0))
        if status == 401:
            await self.tokens.mark_auth_failed(tenant.id, f"HTTP 401 {reason}".strip())
            return await self._deferral(tenant, what, "Google no longer accepts this tenant's token")
        if status in (400, 403, 404):
            hint = " (check the tenant's gcal calendar_id and that the connected account can edit it)"
            return PermanentError(message + hint, code=f"gcal_{status}")
        # Anything else (5xx, timeouts in the API) is retried with backoff as it is.
        unchanged: Exception = error
        return unchanged
