"""A small local Google: OAuth consent + token endpoint and the Calendar API v3, over real HTTP.

What it implements, in Google's wire format:

- ``GET /o/oauth2/auth``: the consent screen, auto-approved: 302 to ``redirect_uri`` with ``code`` and
  ``state`` (or ``error=access_denied`` after ``deny_consent()``). Codes are bound to the client, the
  redirect URI and the PKCE ``code_challenge`` (S256 or plain).
- ``POST /token``: ``authorization_code`` (checks the client, the redirect URI and the PKCE
  ``code_verifier``; a code works once) and ``refresh_token`` (``invalid_grant`` once revoked).
  Client authentication by HTTP Basic or by form fields, as Google accepts both.
- ``/calendar/v3/calendars/{calendarId}/events`` insert / list, ``.../events/{eventId}`` get / patch /
  delete, and ``.../acl`` insert / list / delete, with Bearer access tokens that expire. Insert with an
  existing id answers 409 ``duplicate``; deleted events keep their id with ``status: cancelled`` (get
  returns them, delete again answers 410, patch can restore them).

Failures can be programmed (``fail_next``), including a 500 that is answered *after* the write
happened (a lost response), and every request is recorded with its exact body.

Point lily-gcal at it with ``FakeGoogle.env()``. Run it by hand: ``python -m lily_gcal.fake --port 8097``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from lily_host import DevContext, DevStandIn
from lily_host.fakes import LocalHTTPServer, Reply, Request, json_reply

if TYPE_CHECKING:
    from lily_host import LilyHost

DEFAULT_CLIENT_ID = "fake-client-id.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "fake-client-secret"
DEFAULT_OWNER = "owner@acme.test"
EVENTS_SCOPE = "https://www.googleapis.com/auth/calendar.events"
ACL_SCOPE = "https://www.googleapis.com/auth/calendar.acls"

_EVENTS = re.compile(r"^/calendar/v3/calendars/(?P<cal>[^/]+)/events$")
_EVENT = re.compile(r"^/calendar/v3/calendars/(?P<cal>[^/]+)/events/(?P<event>[^/]+)$")
_ACLS = re.compile(r"^/calendar/v3/calendars/(?P<cal>[^/]+)/acl$")
_ACL = re.compile(r"^/calendar/v3/calendars/(?P<cal>[^/]+)/acl/(?P<rule>[^/]+)$")
_EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}


@dataclass
class Failure:
    """A programmed error: requests whose method and path match answer ``status`` ``times`` times."""

    method: str
    path_contains: str
    status: int
    times: int
    after_write: bool = False
    retry_after: int | None = None


@dataclass
class _Grant:
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    method: str
    expires_at: float
    used: bool = False


@dataclass
class _Calendar:
    id: str
    time_zone: str = "America/New_York"
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    acl: dict[str, dict[str, Any]] = field(default_factory=dict)


def _json(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Reply:
    return json_reply(status, payload, headers, content_type="application/json; charset=UTF-8")


def api_error(status: int, reason: str, message: str) -> dict[str, Any]:
    """Google APIs' error body (what googleapiclient's HttpError parses)."""
    statuses = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        409: "ALREADY_EXISTS",
        410: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
            "status": statuses.get(status, "UNKNOWN"),
        }
    }


def _oauth_error(status: int, error: str, description: str) -> Reply:
    return _json(status, {"error": error, "error_description": description})


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """Google's patch semantics: objects merge field by field, arrays and scalars are replaced."""
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeGoogle(LocalHTTPServer):
    """The fake server. ``start()`` binds 127.0.0.1 on a free port; ``base_url`` says where.

    Starting, stopping, ``with`` and ``base_url`` come from :class:`lily_host.fakes.LocalHTTPServer`.
    """

    def __init__(
        self,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        *,
        owner: str = DEFAULT_OWNER,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token_lifetime: int = 3600,
    ) -> None:
        super().__init__(host=host, port=port, name="fake-google")
        self.clients = {client_id: client_secret}
        self.client_id = client_id
        self.client_secret = client_secret
        self.owner = owner
        self.access_token_lifetime = access_token_lifetime
        #: When True, each refresh also issues a new refresh token and retires the old one.
        self.rotate_refresh_tokens = False
        self._lock = threading.Lock()
        self._deny_consent = False
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, tuple[str, float]] = {}
        self.calendars: dict[str, _Calendar] = {owner: _Calendar(owner)}
        self._failures: list[Failure] = []
        self.requests: list[RecordedRequest] = []

    def env(self, redirect_uri: str = "https://lily.test/auth/google/callback") -> dict[str, str]:
        """The environment that points lily-gcal at this server.

        oauthlib refuses plain-http token endpoints unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set; the
        fake is plain http on loopback, so its environment sets it.
        """
        return {
            "GOOGLE_CLIENT_ID": self.client_id,
            "GOOGLE_CLIENT_SECRET": self.client_secret,
            "GOOGLE_REDIRECT_URI": redirect_uri,
            "GOOGLE_AUTH_URI": f"{self.base_url}/o/oauth2/auth",
            "GOOGLE_TOKEN_URI": f"{self.base_url}/token",
            "GOOGLE_CALENDAR_API_BASE": f"{self.base_url}/calendar/v3/",
            "OAUTHLIB_INSECURE_TRANSPORT": "1",
        }

    # --- programming ------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_contains: str,
        *,
        status: int = 500,
        times: int = 1,
        after_write: bool = False,
        retry_after: int | None = None,
    ) -> None:
        """The next ``times`` matching requests answer ``status``; ``after_write`` applies the request first."""
        with self._lock:
            self._failures.append(Failure(method.upper(), path_contains, status, times, after_write, retry_after))

    def deny_consent(self, deny: bool = True) -> None:
        with self._lock:
            self._deny_consent = deny

    def revoke_all(self) -> None:
        """The user removed the app's access: every refresh and access token stops working."""
        with self._lock:
            for grant in self._grants.values():
                grant.revoked = True
            self._access.clear()

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access = {token: (grant, 0.0) for token, (grant, _) in self._access.items()}

    def issue_tokens(self, scope: str = f"{EVENTS_SCOPE} {ACL_SCOPE}") -> dict[str, Any]:
        """Tokens as if a consent had just happened (for tests that start already connected)."""
        with self._lock:
            return self._issue(self.client_id, scope, new_refresh=True)

    def events(self, calendar_id: str | None = None) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._calendar(calendar_id or self.owner).events)  # type: ignore[union-attr]

    def acl(self, calendar_id: str | None = None) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._calendar(calendar_id or self.owner).acl)  # type: ignore[union-attr]

    def calendar_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/calendar/v3/")]

    def token_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == "/token"]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- handling (server threads) ------------------------------------------------------------------

    def handle_request(self, request: Request) -> Reply:
        return self.handle(request.method, request.target, request.headers, request.body)

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        split = urlsplit(raw_path)
        path = split.path
        query = {key: values[0] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        failure = self._take_failure(method, path)
        if failure is not None and not failure.after_write:
            answer = self._failure_answer(failure)
        else:
            answer = self._route(method, path, query, headers, body)
            if failure is not None:
                answer = self._failure_answer(failure)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, headers, body, answer.status))
        return answer

    def _take_failure(self, method: str, path: str) -> Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == method and failure.path_contains in path and failure.times > 0:
                    failure.times -= 1
                    if failure.times == 0:
                        self._failures.remove(failure)
                    return failure
        return None

    @staticmethod
    def _failure_answer(failure: Failure) -> Reply:
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        reason = "rateLimitExceeded" if failure.status in (403, 429) else "backendError"
        return _json(failure.status, api_error(failure.status, reason, f"Fake failure {failure.status}"), headers)

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        if path == "/o/oauth2/auth" and method == "GET":
            return self._consent(query)
        if path == "/token" and method == "POST":
            return self._token(headers, body)
        if path.startswith("/calendar/v3/"):
            return self._calendar_api(method, path, query, headers, body)
        return _json(404, api_error(404, "notFound", f"no route {method} {path}"))

    # --- OAuth --------------------------------------------------------------------------------------

    def _consent(self, query: dict[str, str]) -> Reply:
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        if client_id not in self.clients:
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if query.get("response_type") != "code" or not redirect_uri:
            return _oauth_error(400, "invalid_request", "response_type=code and redirect_uri are required")
        state = query.get("state")
        with self._lock:
            deny = self._deny_consent
            if not deny:
                code = "4/" + secrets.token_urlsafe(24)
                self._codes[code] = _Code(
                    client_id=client_id,
                    redirect_uri=redirect_uri,
                    scope=query.get("scope", ""),
                    challenge=query.get("code_challenge"),
                    method=query.get("code_challenge_method", "plain"),
                    expires_at=time.time() + 600,
                )
        params = {"error": "access_denied"} if deny else {"code": code, "scope": query.get("scope", "")}
        if state is not None:
            params["state"] = state
        location = redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(params)
        return Reply(302, b"", {"Location": location})

    def _client_from(self, headers: dict[str, str], form: dict[str, str]) -> str | None:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            client_id, client_secret = unquote(user), unquote(password)
        if client_id is None or self.clients.get(client_id) != client_secret:
            return None
        return client_id

    def _token(self, headers: dict[str, str], body: bytes) -> Reply:
        form = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
        client_id = self._client_from(headers, form)
        if client_id is None:
            return _oauth_error(401, "invalid_client", "Unauthorized")
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                return self._exchange_code(client_id, form)
            if grant_type == "refresh_token":
                return self._refresh(client_id, form)
        return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _exchange_code(self, client_id: str, form: dict[str, str]) -> Reply:
        code = self._codes.get(form.get("code", ""))
        if code is None or code.used or code.expires_at < time.time() or code.client_id != client_id:
            return _oauth_error(400, "invalid_grant", "Malformed auth code.")
        if form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
        if code.challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                return _oauth_error(400, "invalid_grant", "Missing code verifier.")
            if code.method == "S256":
                computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            else:
                computed = verifier
            if computed != code.challenge:
                return _oauth_error(400, "invalid_grant", "Invalid code verifier.")
        code.used = True
        return _json(200, self._issue(client_id, code.scope, new_refresh=True))

    def _refresh(self, client_id: str, form: dict[str, str]) -> Reply:
        token = form.get("refresh_token", "")
        grant = self._grants.get(token)
        if grant is None or grant.revoked or grant.client_id != client_id:
            return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        issued = self._issue(client_id, grant.scope, new_refresh=self.rotate_refresh_tokens, refresh_token=token)
        if self.rotate_refresh_tokens:
            grant.revoked = True
        return _json(200, issued)

    def _issue(
        self, client_id: str, scope: str, *, new_refresh: bool, refresh_token: str | None = None
    ) -> dict[str, Any]:
        if new_refresh:
            refresh_token = "1//" + secrets.token_urlsafe(32)
            self._grants[refresh_token] = _Grant(client_id, scope)
        assert refresh_token is not None
        access_token = "ya29." + secrets.token_urlsafe(32)
        self._access[access_token] = (refresh_token, time.time() + self.access_token_lifetime)
        answer: dict[str, Any] = {
            "access_token": access_token,
            "expires_in": self.access_token_lifetime,
            "scope": scope,
            "token_type": "Bearer",
        }
        if new_refresh:
            answer["refresh_token"] = refresh_token
        return answer

    # --- Calendar API ---------------------------------------------------------------------------------

    def _calendar(self, calendar_id: str) -> _Calendar | None:
        return self.calendars.get(self.owner if calendar_id == "primary" else calendar_id)

    def _scopes_of(self, headers: dict[str, str]) -> set[str] | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        entry = self._access.get(token.strip())
        if entry is None or entry[1] < time.time():
            return None
        grant = self._grants.get(entry[0])
        if grant is None or grant.revoked:
            return None
        return set(grant.scope.split())

    def _calendar_api(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Reply:
        with self._lock:
            scopes = self._scopes_of(headers)
            if scopes is None:
                return _json(
                    401,
                    api_error(401, "authError", "Request had invalid authentication credentials."),
                    {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                )
            for pattern, handler in (
                (_EVENTS, self._events_collection),
                (_EVENT, self._event_item),
                (_ACLS, self._acl_collection),
                (_ACL, self._acl_item),
            ):
                match = pattern.match(path)
                if match is None:
                    continue
                needed = ACL_SCOPE if pattern in (_ACLS, _ACL) else EVENTS_SCOPE
                if needed not in scopes:
                    return _json(403, api_error(403, "insufficientPermissions", "Insufficient Permission"))
                calendar = self._calendar(unquote(match["cal"]))
                if calendar is None:
                    return _json(404, api_error(404, "notFound", "Not Found"))
                try:
                    payload = json.loads(body) if body else None
                except ValueError:
                    return _json(400, api_error(400, "parseError", "Parse Error"))
                return handler(method, calendar, {k: unquote(v) for k, v in match.groupdict().items()}, query, payload)
        return _json(404, api_error(404, "notFound", "Not Found"))

    def _events_collection(
        self, method: str, calendar: _Calendar, parts: dict[str, str], query: dict[str, str], payload: Any
    ) -> Reply:
        if method == "GET":
            limit = int(query.get("maxResults", "250"))
            items = [e for e in calendar.events.values() if e["status"] != "cancelled"][:limit]
            return _json(
                200,
                {
                    "kind": "calendar#events",
                    "summary": calendar.id,
                    "timeZone": calendar.time_zone,
                    "updated": _now_rfc3339(),
                    "items": items,
                },
            )
        if method != "POST":
            return _json(405, api_error(405, "httpMethodNotAllowed", "Method Not Allowed"))
        if not isinstance(payload, dict):
            return _json(400, api_error(400, "required", "Missing event body."))
        event_id = payload.get("id") or secrets.token_hex(13)
        if not _EVENT_ID.match(str(event_id)):
            return _json(400, api_error(400, "invalid", "Invalid resource id value."))
        if event_id in calendar.events:
            return _json(409, api_error(409, "duplicate", "The requested identifier already exists."))
        for edge in ("start", "end"):
            if not isinstance(payload.get(edge), dict) or not (
                payload[edge].get("dateTime") or payload[edge].get("date")
            ):
                return _json(400, api_error(400, "required", f"Missing {edge} time."))
        now = _now_rfc3339()
        event = copy.deepcopy(payload)
        event.update(
            {
                "kind": "calendar#event",
                "id": event_id,
                "etag": f'"{secrets.randbelow(10**15)}"',
                "status": payload.get("status", "confirmed"),
                "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
                "created": now,
                "updated": now,
                "creator": {"email": self.owner, "self": True},
                "organizer": {"email": calendar.id, "self": True},
                "iCalUID": f"{event_id}@google.com",
                "sequence": 0,
                "reminders": payload.get("reminders", {"useDefault": True}),
                "eventType": "default",
            }
        )
        calendar.events[event_id] = event
        return _json(200, event)

    def _event_item(
        self, method: str, calendar: _Calendar, parts: dict[str, str], query: dict[str, str], payload: Any
    ) -> Reply:
        event = calendar.events.get(parts["event"])
        if event is None:
            return _json(404, api_error(404, "notFound", "Not Found"))
        if method == "GET":
            return _json(200, event)
        if method == "PATCH":
            if not isinstance(payload, dict):
                return _json(400, api_error(400, "required", "Missing event body."))
            _merge(event, {key: value for key, value in payload.items() if key != "id"})
            event["updated"] = _now_rfc3339()
            event["sequence"] = int(event.get("sequence", 0)) + 1
            event["etag"] = f'"{secrets.randbelow(10**15)}"'
            return _json(200, event)
        if method == "DELETE":
            if event["status"] == "cancelled":
                return _json(410, api_error(410, "deleted", "Resource has been deleted"))
            event["status"] = "cancelled"
            event["updated"] = _now_rfc3339()
            return Reply(204, b"", {})
        return _json(405, api_error(405, "httpMethodNotAllowed", "Method Not Allowed"))

    def _acl_collection(
        self, method: str, calendar: _Calendar, parts: dict[str, str], query: dict[str, str], payload: Any
    ) -> Reply:
        if method == "GET":
            return _json(200, {"kind": "calendar#acl", "items": list(calendar.acl.values())})
        if method != "POST":
            return _json(405, api_error(405, "httpMethodNotAllowed", "Method Not Allowed"))
        scope = payload.get("scope") if isinstance(payload, dict) else None
        if not isinstance(scope, dict) or payload.get("role") not in (
            "none",
            "freeBusyReader",
            "reader",
            "writer",
            "owner",
        ):
            return _json(400, api_error(400, "invalid", "Invalid scope or role."))
        rule_id = f"{scope.get('type')}:{scope.get('value')}"
        rule = {
            "kind": "calendar#aclRule",
            "etag": f'"{secrets.randbelow(10**15)}"',
            "id": rule_id,
            "scope": scope,
            "role": payload["role"],
        }
        calendar.acl[rule_id] = rule
        return _json(200, rule)

    def _acl_item(
        self, method: str, calendar: _Calendar, parts: dict[str, str], query: dict[str, str], payload: Any
    ) -> Reply:
        rule = calendar.acl.get(parts["rule"])
        if rule is None:
            return _json(404, api_error(404, "notFound", "Not Found"))
        if method == "GET":
            return _json(200, rule)
        if method == "DELETE":
            del calendar.acl[parts["rule"]]
            return Reply(204, b"", {})
        return _json(405, api_error(405, "httpMethodNotAllowed", "Method Not Allowed"))


def main() -> None:
    parser = argparse.ArgumentParser(description="A local fake of Google OAuth and the Calendar API for Lily")
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--redirect-uri", default="http://localhost:8000/auth/google/callback")
    args = parser.parse_args()
    fake = FakeGoogle(port=args.port).start()
    fake.announce_and_serve("fake Google", fake.env(args.redirect_uri))


if __name__ == "__main__":
    main()


def dev_standin(context: DevContext) -> DevStandIn | None:
    """``lily dev`` without GOOGLE_* settings: this fake, with the demo tenant's calendar connected."""
    if context.environ.get("GOOGLE_CLIENT_ID"):
        return None
    fake = FakeGoogle(port=0).start()

    async def connect(host: LilyHost, tenant_id: str) -> None:
        # The fake forgets its grants when it stops: connect afresh on every start.
        from lily_gcal.oauth import tokens_from_response
        from lily_gcal.settings import GcalSettings
        from lily_gcal.tokens import TokenStore

        settings = host.plugin_settings("gcal")
        if isinstance(settings, GcalSettings):
            store = TokenStore(host, settings)
            await store.save(tenant_id, tokens_from_response(fake.issue_tokens(), host.clock.now()))
            await store.clear_auth_failure(tenant_id)

    redirect = context.public_url.rstrip("/") + "/auth/google/callback"
    return DevStandIn(
        f"fake Google Calendar at {fake.base_url}, demo tenant connected",
        fake.env(redirect),
        stop=fake.stop,
        prepare_tenant=connect,
    )
