"""The calendar capability against the fake Calendar API: exact bodies, idempotency, tokens, failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from lily_gcal.calendar import GoogleCalendar, event_id
from lily_gcal.fake import FakeGoogle
from lily_gcal.tokens import StoredTokens, TokenStore
from lily_host import BookingCalendarEvent, CalendarEvent, CalendarProvider, Defer, PermanentError, RetryLater
from lily_host.testing import Harness

EVENTS_PATH = "/calendar/v3/calendars/primary/events"
EVENT = BookingCalendarEvent(
    booking_uid="bk1",
    title="Pressure Washing Estimate \u2013 Jane Doe",
    description="Customer: Jane Doe\nPhone: +15551234567",
    start="2030-06-05T14:00:00+00:00",
    end="2030-06-05T14:30:00+00:00",
    timezone="America/New_York",
    location="12 Elm St, Springfield",
    attendee_email="jane@example.com",
    service_type="Pressure Washing Estimate",
)


def expected_body(start: str = "2030-06-05T10:00:00-04:00", end: str = "2030-06-05T11:30:00-04:00") -> dict[str, Any]:
    return {
        "summary": "Pressure Washing Estimate \u2013 Jane Doe",
        "description": "Customer: Jane Doe\nPhone: +15551234567",
        "start": {"dateTime": start, "timeZone": "America/New_York"},
        "end": {"dateTime": end, "timeZone": "America/New_York"},
        "attendees": [{"email": "jane@example.com"}],
        "status": "confirmed",
        "extendedProperties": {"private": {"lily_tenant": "acme", "lily_booking_uid": "bk1"}},
        "location": "12 Elm St, Springfield",
    }


@pytest.fixture
def provider(lily: Harness) -> GoogleCalendar:
    found = lily.host.capability("calendar")
    assert isinstance(found, GoogleCalendar)
    return found


async def connected(lily: Harness, google: FakeGoogle, tenant: str = "acme", **changes: Any) -> StoredTokens:
    """Store tokens as if the tenant had connected (the dance itself is tested in test_oauth)."""
    issued = google.issue_tokens()
    tokens = StoredTokens(
        token=issued["access_token"],
        refresh_token=issued["refresh_token"],
        expiry=(datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None),
        scopes=tuple(issued["scope"].split()),
        connected_at=0.0,
    )
    tokens = StoredTokens(**{**tokens.__dict__, **changes})
    await TokenStore(lily.host, lily.host.plugin_settings("gcal")).save(tenant, tokens)
    return tokens


async def load(lily: Harness, tenant: str = "acme") -> StoredTokens | None:
    return await TokenStore(lily.host, lily.host.plugin_settings("gcal")).load(tenant)


def event_requests(google: FakeGoogle) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in google.calendar_requests() if "/events" in r.path]


async def test_provider_implements_the_host_protocol(provider: GoogleCalendar) -> None:
    assert isinstance(provider, CalendarProvider)


async def test_create_sends_the_exact_event(lily: Harness, google: FakeGoogle, provider: GoogleCalendar) -> None:
    await connected(lily, google)
    tenant = await lily.host.tenants.require("acme")
    eid = await provider.upsert_event(tenant, EVENT)
    assert eid == event_id("acme", "bk1")
    assert len(eid) == 52 and set(eid) <= set("0123456789abcdefghijklmnopqrstuv")
    insert = google.calendar_requests()[-1]
    assert (insert.method, insert.path, insert.query) == ("POST", EVENTS_PATH, {"sendUpdates": "none", "alt": "json"})
    # 90 minutes: the tenant's duration for this service type, not the 30 the booking page offered.
    assert insert.json == {"id": eid, **expected_body()}
    assert google.events()[eid]["status"] == "confirmed"


async def test_default_duration_is_an_hour_and_plain_events_keep_their_end(
    lily: Harness, google: FakeGoogle, provider: GoogleCalendar
) -> None:
    await connected(lily, google)
    tenant = await lily.host.tenants.require("acme")
    other = BookingCalendarEvent(**{**EVENT.__dict__, "booking_uid": "bk9", "service_type": "Gutter Cleaning"})
    await provider.upsert_event(tenant, other)
    assert google.calendar_requests()[-1].json["end"]["dateTime"] == "2030-06-05T11:00:00-04:00"
    plain = CalendarEvent(**{k: v for k, v in EVENT.__dict__.items() if k != "service_type"} | {"booking_uid": "x1"})
    await provider.upsert_event(tenant, plain)
    assert google.calendar_requests()[-1].json["end"]["dateTime"] == "2030-06-05T10:30:00-04:00"


async def test_reschedule_patches_the_same_event(lily: Harness, google: FakeGoogle, provider: GoogleCalendar) -> None:
    await connected(lily, google)
    tenant = await lily.host.tenants.require("acme")
    await provider.upsert_event(tenant, EVENT)
    moved = BookingCalendarEvent(**{**EVENT.__dict__, "start": "2030-06-06T18:00:00Z", "end": "2030-06-06T18:30:00Z"})
    google.clear_requests()
    await provider.upsert_event(tenant, moved)
    eid = event_id("acme", "bk1")
    assert event_requests(google) == [("POST", EVENTS_PATH, 409), ("PATCH", f"{EVENTS_PATH}/{eid}", 200)]
    patch = google.calendar_requests()[-1]
    assert patch.json == expected_body("2030-06-06T14:00:00-04:00", "2030-06-06T15:30:00-04:00")
    assert list(google.events()) == [eid]
    assert google.events()[eid]["start"]["dateTime"] == "2030-06-06T14:00:00-04:00"


async def test_cancel_deletes_and_is_idempotent(lily: Harness, google: FakeGoogle, provider: GoogleCalendar) -> None:
    await connected(lily, google)
    tenant = await lily.host.tenants.require("acme")
    await provider.upsert_event(tenant, EVENT)
    await provider.cancel_event(tenant, "bk1")
    await provider.cancel_event(tenant, "bk1")
    await provider.cancel_event(tenant, "never-written")
    eid = event_id("acme", "bk1")
    deletes = [(r.path, r.query, r.status) for r in google.calendar_requests() if r.method == "DELETE"]
    assert deletes[:2] == [
        (f"{EVENTS_PATH}/{eid}", {"sendUpdates": "none"}, 204),
        (f"{EVENTS_PATH}/{eid}", {"sendUpdates": "none"}, 410),
    ]
    assert deletes[2][2] == 404
    assert google.events()[eid]["status"] == "cancelled"


async def test_a_cancelled_event_is_restored_not_duplicated(
    lily: Harness, google: FakeGoogle, provider: GoogleCalendar
) -> None:
    await connected(lily, google)
    tenant = await lily.host.tenants.require("acme")
    await provider.upsert_event(tenant, EVENT)
    await provider.cancel_event(tenant, "bk1")
    await provider.upsert_event(tenant, EVENT)
    eid = event_id("acme", "bk1")
    assert google.events()[eid]["status"] == "confirmed"
    assert google.calendar_requests()[-1].json["status"] == "confirmed"


async def test_retry_after_a_500_with_a_lost_answer_does_not_duplicate(
    lily: Harness, google: FakeGoogle, provider: GoogleCalendar
) -> None:
    await connected(lily, google)
    tenant = await lily.host.tenants.require("acme")
    google.fail_next("POST", "/events", status=500, after_write=True)
    with pytest.raises(HttpError):
        await provider.upsert_event(tenant, EVENT)
    assert list(google.events()) == [event_id("acme", "bk1")]
    await provider.upsert_event(tenant, EVENT)
    assert [status for _, _, status in event_requests(google)] == [500, 409, 200]
    assert len(google.events()) == 1


async def test_token_is_refreshed_before_it_expires_and_stored(
    lily: Harness, google: FakeGoogle, provider: GoogleCalendar
) -> None:
    old = await connected(lily, google, expiry=(datetime.now(UTC) + timedelta(seconds=60)).replace(tzinfo=None))
    tenant = await lily.host.tenants.require("acme")
    await provider.upsert_event(tenant, EVENT)
    refresh = google.token_requests()[-1].form
    assert (refresh["grant_type"], refresh["refresh_token"]) == ("refresh_token", old.refresh_token)
    new = await load(lily)
    assert new is not None and new.token != old.token and new.refresh_token == old.refresh_token
    assert new.expiry is not None and old.expiry is not None and new.expiry > old.expiry
    assert google.calendar_requests()[-1].headers["authorization"] == f"Bearer {new.token}"


async def test_rotated_refresh_token_is_persisted(lily: Harness, google: FakeGoogle, provider: GoogleCalendar) -> None:
    google.rotate_refresh_tokens = True
    old = await connected(lily, google, token=None)
    await provider.upsert_event(await lily.host.tenants.require("acme"), EVENT)
    new = await load(lily)
    assert new is not None and new.refresh_token != old.refresh_token
    google.expire_access_tokens()
    await provider.upsert_event(await lily.host.tenants.require("acme"), EVENT)
    assert google.token_requests()[-1].status == 200


async def test_access_token_rejected_by_the_api_is_refreshed_and_stored(
    lily: Harness, google: FakeGoogle, provider: GoogleCalendar
) -> None:
    old = await connected(lily, google)
    google.expire_access_tokens()
    await provider.upsert_event(await lily.host.tenants.require("acme"), EVENT)
    assert [r.status for r in google.calendar_requests()] == [401, 200]
    new = await load(lily)
    assert new is not None and new.token != old.token


async def test_revoked_grant_defers_and_marks_auth_failed(
    lily: Harness, google: FakeGoogle, provider: GoogleCalendar
) -> None:
    await connected(lily, google, token=None)
    google.revoke_all()
    tenant = await lily.host.tenants.require("acme")
    with pytest.raises(Defer) as deferred:
        await provider.upsert_event(tenant, EVENT)
    assert deferred.value.until == lily.clock.now() + 300
    assert "invalid_grant" in deferred.value.reason
    token_calls = len(google.token_requests())
    # While the tenant is auth_failed, calendar work waits without asking Google again.
    with pytest.raises(Defer):
        await provider.cancel_event(tenant, "bk1")
    assert len(google.token_requests()) == token_calls


async def test_not_connected_defers(lily: Harness, google: FakeGoogle, provider: GoogleCalendar) -> None:
    with pytest.raises(Defer) as deferred:
        await provider.upsert_event(await lily.host.tenants.require("bravo"), EVENT)
    assert "not connected" in deferred.value.reason
    assert "lily gcal connect bravo" in deferred.value.reason
    assert "link=" not in deferred.value.reason
    assert google.requests == []


async def test_rate_limits_retry_later(lily: Harness, google: FakeGoogle, provider: GoogleCalendar) -> None:
    await connected(lily, google)
    tenant = await lily.host.tenants.require("acme")
    google.fail_next("POST", "/events", status=429, retry_after=17)
    with pytest.raises(RetryLater) as later:
        await provider.upsert_event(tenant, EVENT)
    assert later.value.seconds == 17
    google.fail_next("POST", "/events", status=403)
    with pytest.raises(RetryLater):
        await provider.upsert_event(tenant, EVENT)


async def test_unknown_calendar_is_a_permanent_error(
    lily: Harness, google: FakeGoogle, provider: GoogleCalendar
) -> None:
    await connected(lily, google)
    await lily.host.tenants.set_plugin_settings("acme", "gcal", {"calendar_id": "missing@group.calendar.google.com"})
    with pytest.raises(PermanentError, match="calendar_id"):
        await provider.upsert_event(await lily.host.tenants.require("acme"), EVENT)


async def test_calendar_is_shared_with_exactly_the_team(
    lily: Harness, google: FakeGoogle, provider: GoogleCalendar
) -> None:
    await connected(lily, google)
    await lily.host.tenants.set_plugin_settings("acme", "gcal", {"share_with": ["Ann@acme.test", "bo@acme.test"]})
    await provider.upsert_event(await lily.host.tenants.require("acme"), EVENT)
    inserts = [r.json for r in google.calendar_requests() if r.path.endswith("/acl")]
    assert inserts == [
        {"role": "writer", "scope": {"type": "user", "value": "ann@acme.test"}},
        {"role": "writer", "scope": {"type": "user", "value": "bo@acme.test"}},
    ]
    google.clear_requests()
    await provider.upsert_event(await lily.host.tenants.require("acme"), EVENT)
    assert not [r for r in google.calendar_requests() if "/acl" in r.path]
    await lily.host.tenants.set_plugin_settings("acme", "gcal", {"share_with": ["ann@acme.test"]})
    await provider.upsert_event(await lily.host.tenants.require("acme"), EVENT)
    assert sorted(google.acl()) == ["user:ann@acme.test"]


async def test_sharing_failure_never_blocks_the_booking(
    lily: Harness, google: FakeGoogle, provider: GoogleCalendar
) -> None:
    await connected(lily, google)
    await lily.host.tenants.set_plugin_settings("acme", "gcal", {"share_with": ["ann@acme.test"]})
    google.fail_next("POST", "/acl", status=400)
    await provider.upsert_event(await lily.host.tenants.require("acme"), EVENT)
    assert event_id("acme", "bk1") in google.events()
