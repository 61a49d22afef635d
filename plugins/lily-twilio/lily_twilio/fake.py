"""A small local Twilio REST server speaking Twilio's wire format, for tests and a local sandbox.

Point the plugin at it with ``TWILIO_API_BASE=http://127.0.0.1:<port>``; the real SDK then talks
to it. It implements what Lily uses: ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (form
params, HTTP basic auth), ``GET .../Messages/{sid}.json``, ``GET /2010-04-01/Accounts/{sid}.json``,
and serves MMS media files (``add_media``) for other plugins' tests. Failures can be programmed:
N x 5xx, 429 with ``Retry-After``, Twilio error codes (21610 for a recipient who replied STOP),
and 401 for wrong credentials.

Run it by hand: ``python -m lily_twilio.fake --port 8099``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import email.utils
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lily_host.fakes import LocalHTTPServer, Reply, Request, json_reply

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "11" * 16
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"

_MESSAGES = re.compile(rf"^/{API_VERSION}/Accounts/(?P<sid>AC\w+)/Messages\.json$")
_MESSAGE = re.compile(rf"^/{API_VERSION}/Accounts/(?P<sid>AC\w+)/Messages/(?P<msid>(?:SM|MM)\w+)\.json$")
_ACCOUNT = re.compile(rf"^/{API_VERSION}/Accounts/(?P<sid>AC\w+)\.json$")
_MEDIA = re.compile(r"^/media/(?P<name>[\w.-]+)$")


@dataclass(frozen=True)
class Failure:
    """One programmed error answer to a Messages create."""

    status: int
    code: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    form: dict[str, list[str]]
    headers: dict[str, str]
    status: int


@dataclass(frozen=True)
class Media:
    content: bytes
    content_type: str
    requires_auth: bool


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's legacy error JSON, the shape the SDK turns into TwilioRestException."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class FakeTwilio(LocalHTTPServer):
    """The fake server. ``start()`` binds 127.0.0.1 on a free port; ``base_url`` says where.

    Starting, stopping, ``with`` and ``base_url`` come from :class:`lily_host.fakes.LocalHTTPServer`.
    """

    methods = ("GET", "POST", "DELETE")

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port, name="fake-twilio")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.account_status = "active"
        self._lock = threading.Lock()
        self._failures: collections.deque[Failure] = collections.deque()
        self._opted_out: set[str] = set()
        self._media: dict[str, Media] = {}
        self.messages: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []

    def env(self) -> dict[str, str]:
        """The environment that points lily-twilio at this server."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_API_BASE": self.base_url,
        }

    # --- programming failures ----------------------------------------------------------------------

    def fail_next(self, times: int = 1, *, status: int = 500, code: int | None = None, message: str = "") -> None:
        """The next ``times`` message creates answer ``status`` (default 500) with a Twilio error body."""
        failure = Failure(status, code if code is not None else 20000 + status, message or f"Fake error {status}")
        with self._lock:
            self._failures.extend([failure] * times)

    def rate_limit_next(self, times: int = 1, *, retry_after: int | None = 1) -> None:
        """The next ``times`` creates answer 429 / 20429, with ``Retry-After`` unless it is None."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        failure = Failure(429, 20429, "Too Many Requests", headers)
        with self._lock:
            self._failures.extend([failure] * times)

    def reject_next(self, code: int, message: str, *, status: int = 400) -> None:
        """The next create answers a Twilio error ``code`` (e.g. 21211 invalid 'To' number)."""
        with self._lock:
            self._failures.append(Failure(status, code, message))

    def opt_out(self, number: str) -> None:
        """From now on, texts to ``number`` fail with 21610, as after the recipient replied STOP."""
        with self._lock:
            self._opted_out.add(number)

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self._opted_out.clear()
            self.messages.clear()
            self.requests.clear()
            self.account_status = "active"

    # --- media for MMS tests ----------------------------------------------------------------------------

    def add_media(
        self, content: bytes, content_type: str, *, name: str | None = None, requires_auth: bool = False
    ) -> str:
        """Serve ``content`` like a Twilio MMS media URL; returns the URL."""
        media_name = name or f"ME{secrets.token_hex(16)}"
        with self._lock:
            self._media[media_name] = Media(content, content_type, requires_auth)
        return f"{self.base_url}/media/{media_name}"

    # --- request handling (called from the server threads) --------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token

    def handle_request(self, request: Request) -> Reply:
        return self.handle(request.method, request.path, request.form(), request.headers)

    def handle(self, method: str, path: str, form: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        answer = self._route(method, path, form, headers)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, form, headers, answer.status))
        return answer

    def _route(self, method: str, path: str, form: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        media = _MEDIA.match(path)
        if media and method == "GET":
            return self._serve_media(media["name"], headers)
        for pattern in (_MESSAGES, _MESSAGE, _ACCOUNT):
            match = pattern.match(path)
            if match:
                break
        else:
            return json_reply(404, error_body(404, 20404, f"The requested resource {path} was not found"))
        if not self._authorized(headers.get("authorization")) or match["sid"] != self.account_sid:
            return json_reply(401, error_body(401, 20003, "Authenticate"))
        if pattern is _ACCOUNT and method == "GET":
            return json_reply(200, self._account())
        if pattern is _MESSAGE and method == "GET":
            return self._fetch_message(match["msid"])
        if pattern is _MESSAGES and method == "POST":
            return self._create_message(form)
        return json_reply(405, error_body(405, 20004, "Method not allowed"))

    def _serve_media(self, name: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            media = self._media.get(name)
        if media is None:
            return json_reply(404, error_body(404, 20404, "The requested resource was not found"))
        if media.requires_auth and not self._authorized(headers.get("authorization")):
            return json_reply(401, error_body(401, 20003, "Authenticate"))
        return Reply(200, media.content, {"Content-Type": media.content_type})

    def _account(self) -> dict[str, Any]:
        now = email.utils.formatdate(usegmt=True)
        return {
            "auth_token": self.auth_token,
            "date_created": now,
            "date_updated": now,
            "friendly_name": "Lily fake account",
            "owner_account_sid": self.account_sid,
            "sid": self.account_sid,
            "status": self.account_status,
            "type": "Full",
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}.json",
        }

    def _create_message(self, form: dict[str, list[str]]) -> Reply:
        params = {name: values[0] for name, values in form.items() if values}
        to, sender, body = params.get("To", ""), params.get("From", ""), params.get("Body", "")
        media_urls = form.get("MediaUrl", [])
        if not to:
            return json_reply(400, error_body(400, 21604, "A 'To' phone number is required."))
        if not sender and not params.get("MessagingServiceSid"):
            return json_reply(400, error_body(400, 21603, "A 'From' phone number is required."))
        if not body and not media_urls:
            return json_reply(400, error_body(400, 21602, "Message body is required."))
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            opted_out = to in self._opted_out
        if failure is not None:
            return json_reply(
                failure.status, error_body(failure.status, failure.code, failure.message), failure.headers
            )
        if opted_out:
            return json_reply(400, error_body(400, 21610, "Attempt to send to unsubscribed recipient"))
        sid = ("MM" if media_urls else "SM") + secrets.token_hex(16)
        now = email.utils.formatdate(usegmt=True)
        message = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender or None,
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "num_media": str(len(media_urls)),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        with self._lock:
            self.messages.append(
                {**message, "status_callback": params.get("StatusCallback"), "media_url": media_urls, "at": time.time()}
            )
        return json_reply(201, message)

    def _fetch_message(self, message_sid: str) -> Reply:
        with self._lock:
            found = next((m for m in self.messages if m["sid"] == message_sid), None)
        if found is None:
            return json_reply(
                404, error_body(404, 20404, f"The requested resource Message {message_sid} was not found")
            )
        public = {key: value for key, value in found.items() if key not in ("status_callback", "media_url", "at")}
        return json_reply(200, public)


def main() -> None:
    parser = argparse.ArgumentParser(description="A local fake of the Twilio REST API for Lily")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    args = parser.parse_args()
    fake = FakeTwilio(args.account_sid, args.auth_token, port=args.port).start()
    fake.announce_and_serve("fake Twilio", fake.env())


if __name__ == "__main__":
    main()
