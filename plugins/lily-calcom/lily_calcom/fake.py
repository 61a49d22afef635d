"""A small local Cal.com for tests and a local sandbox: the API key check and signed webhook deliveries.

The server speaks the part of Cal.com's API v2 that Lily calls: ``GET /v2/me`` with
``Authorization: Bearer <api key>`` (``{"status": "success", "data": {...}}``, or 401 with Cal.com's
error body). Point the plugin at it with ``CALCOM_API_BASE=http://127.0.0.1:<port>``.

The helpers build webhook bodies the way Cal.com does (``booking_delivery``) and sign them
(``signed``), so tests and ``python -m lily_calcom.fake deliver URL`` can play Cal.com's side.

Run the server by hand: ``python -m lily_calcom.fake serve --port 8098``.
"""

from __future__ import annotations

import argparse
import collections
import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from lily_calcom.signature import HEADER, sign
from lily_host import DevContext, DevStandIn
from lily_host.fakes import LocalHTTPServer, Reply, Request, json_reply

DEFAULT_API_KEY = "cal_test_fake_" + "0" * 24


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    status: int


def error_body(status: int, code: str, message: str, path: str) -> dict[str, Any]:
    """Cal.com API v2's error shape."""
    return {
        "status": "error",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "path": path,
        "error": {"code": code, "message": message, "details": {"statusCode": status}},
    }


class FakeCalcom(LocalHTTPServer):
    """The fake API server. ``start()`` binds 127.0.0.1 on a free port; ``base_url`` says where.

    Starting, stopping, ``with`` and ``base_url`` come from :class:`lily_host.fakes.LocalHTTPServer`.
    """

    methods = ("GET", "POST")

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        email: str = "owner@acme.test",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port, name="fake-calcom")
        self.api_keys = {api_key}
        self.api_key = api_key
        self.email = email
        self._lock = threading.Lock()
        self._failures: collections.deque[int] = collections.deque()
        self.requests: list[RecordedRequest] = []

    def env(self, webhook_secret: str | None = None) -> dict[str, str]:
        """The environment that points lily-calcom at this server."""
        env = {"CALCOM_API_KEY": self.api_key, "CALCOM_API_BASE": self.base_url}
        if webhook_secret is not None:
            env["CALCOM_WEBHOOK_SECRET"] = webhook_secret
        return env

    # --- programming ------------------------------------------------------------------------------

    def fail_next(self, times: int = 1, *, status: int = 500) -> None:
        """The next ``times`` API calls answer ``status``."""
        with self._lock:
            self._failures.extend([status] * times)

    def revoke(self, api_key: str) -> None:
        with self._lock:
            self.api_keys.discard(api_key)

    # --- handling (server threads) ------------------------------------------------------------------

    def handle_request(self, request: Request) -> Reply:
        return self.handle(request.method, request.path, request.headers)

    def handle(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        answer = self._route(method, path, headers)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, answer.status))
        return answer

    def _route(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            return json_reply(failure, error_body(failure, "InternalServerErrorException", "Fake failure", path))
        if path != "/v2/me":
            return json_reply(404, error_body(404, "NotFoundException", f"Cannot {method} {path}", path))
        if method != "GET":
            return json_reply(405, error_body(405, "MethodNotAllowedException", "Method not allowed", path))
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            known = token.strip() in self.api_keys
        if scheme.lower() != "bearer" or not known:
            return json_reply(401, error_body(401, "UnauthorizedException", "Invalid API Key", path))
        return json_reply(
            200,
            {
                "status": "success",
                "data": {
                    "id": 5,
                    "username": self.email.split("@", 1)[0],
                    "email": self.email,
                    "name": "Fake Organizer",
                    "timeFormat": 12,
                    "defaultScheduleId": 1,
                    "weekStart": "Monday",
                    "timeZone": "America/New_York",
                    "locale": "en",
                    "organizationId": None,
                },
            },
        )


# --- webhook deliveries, as Cal.com sends them ------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def booking_delivery(
    trigger: str = "BOOKING_CREATED",
    *,
    uid: str | None = None,
    start: datetime | None = None,
    minutes: int = 30,
    organizer_email: str = "owner@acme.test",
    organizer_timezone: str = "America/New_York",
    event_type_id: int = 7,
    event_title: str = "Pressure Washing Estimate",
    customer_name: str = "Jane Doe",
    customer_email: str | None = "jane@example.com",
    customer_phone: str | None = "+15551234567",
    customer_timezone: str = "America/New_York",
    address: str | None = "12 Elm St, Springfield",
    notes: str | None = None,
    reschedule_uid: str | None = None,
    cancellation_reason: str | None = None,
    created_at: datetime | None = None,
    extra_responses: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A webhook body shaped like Cal.com's (see its webhook docs' example payload)."""
    start = start or (datetime.now(UTC) + timedelta(days=2)).replace(hour=15, minute=0, second=0, microsecond=0)
    end = start + timedelta(minutes=minutes)
    responses: dict[str, Any] = {
        "name": {"label": "your_name", "value": customer_name},
        "email": {"label": "email_address", "value": customer_email or ""},
        "location": {
            "label": "location",
            "value": {"optionValue": address or "", "value": "attendeeInPerson" if address else "inPerson"},
        },
        "notes": {"label": "additional_notes", **({"value": notes} if notes else {})},
        "guests": {"label": "additional_guests"},
        "rescheduleReason": {"label": "reschedule_reason"},
    }
    if customer_phone:
        responses["attendeePhoneNumber"] = {"label": "phone_number", "value": customer_phone}
    responses.update(extra_responses or {})
    payload: dict[str, Any] = {
        "type": event_title.lower().replace(" ", "-"),
        "title": f"{event_title} between Acme and {customer_name}",
        "description": "",
        "additionalNotes": notes or "",
        "customInputs": {},
        "startTime": _iso(start),
        "endTime": _iso(end),
        "organizer": {
            "id": 5,
            "name": "Acme Owner",
            "email": organizer_email,
            "username": organizer_email.split("@", 1)[0],
            "timeZone": organizer_timezone,
            "language": {"locale": "en"},
            "timeFormat": "h:mma",
        },
        "responses": responses,
        "userFieldsResponses": {},
        "attendees": [
            {
                "email": customer_email or "",
                "name": customer_name,
                "timeZone": customer_timezone,
                "language": {"locale": "en"},
            }
        ],
        "location": address or "",
        "eventTypeId": event_type_id,
        "eventTitle": event_title,
        "eventDescription": "",
        "length": minutes,
        "bookingId": secrets.randbelow(10_000_000),
        "uid": uid or secrets.token_urlsafe(16),
        "metadata": {},
        "status": "CANCELLED" if trigger == "BOOKING_CANCELLED" else "ACCEPTED",
    }
    if reschedule_uid:
        payload["rescheduleUid"] = reschedule_uid
    if cancellation_reason:
        payload["cancellationReason"] = cancellation_reason
    return {"triggerEvent": trigger, "createdAt": _iso(created_at or datetime.now(UTC)), "payload": payload}


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def signed(body: Mapping[str, Any] | bytes, secret: str | None) -> tuple[bytes, dict[str, str]]:
    """(raw body, headers) of a delivery; ``secret=None`` sends ``no-secret-provided`` like Cal.com does."""
    raw = body if isinstance(body, bytes) else encode(body)
    headers = {
        "Content-Type": "application/json",
        "X-Cal-Webhook-Version": "2021-10-20",
        HEADER: sign(raw, secret) if secret is not None else "no-secret-provided",
    }
    return raw, headers


def deliver(url: str, body: Mapping[str, Any], secret: str | None, *, timeout: float = 10.0) -> httpx.Response:
    """POST a signed delivery to a running Lily (the sandbox's stand-in for Cal.com)."""
    raw, headers = signed(body, secret)
    return httpx.post(url, content=raw, headers=headers, timeout=timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description="A local fake of Cal.com for Lily")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the fake Cal.com API")
    serve.add_argument("--port", type=int, default=8098)
    serve.add_argument("--api-key", default=DEFAULT_API_KEY)
    send = commands.add_parser("deliver", help="send a signed booking webhook to a running Lily")
    send.add_argument("url", help="e.g. http://localhost:8000/webhooks/calcom")
    send.add_argument("--secret", required=True, help="the webhook secret Lily expects")
    send.add_argument("--trigger", default="BOOKING_CREATED", choices=["BOOKING_CREATED", "BOOKING_CANCELLED"])
    send.add_argument("--uid", default=None)
    send.add_argument("--organizer", default="owner@acme.test")
    send.add_argument("--phone", default="+15551234567")
    args = parser.parse_args()
    if args.command == "deliver":
        body = booking_delivery(args.trigger, uid=args.uid, organizer_email=args.organizer, customer_phone=args.phone)
        response = deliver(args.url, body, args.secret)
        print(response.status_code, response.text)
        return
    fake = FakeCalcom(args.api_key, port=args.port).start()
    fake.announce_and_serve("fake Cal.com", fake.env())


if __name__ == "__main__":
    main()


#: The webhook secret of ``lily dev`` (no Cal.com account): `lily simulate calcom.*` signs with it.
DEV_WEBHOOK_SECRET = "lily-dev-calcom-webhook-secret"


def dev_standin(context: DevContext) -> DevStandIn | None:
    if context.environ.get("CALCOM_WEBHOOK_SECRET"):
        return None
    return DevStandIn("a development webhook secret", {"CALCOM_WEBHOOK_SECRET": DEV_WEBHOOK_SECRET})
