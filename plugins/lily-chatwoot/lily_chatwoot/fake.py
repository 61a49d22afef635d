"""A local Chatwoot for tests and ``lily dev``: a small HTTP server speaking the provider's wire format.

Served: ``GET /v1/me`` (whose key is this?) and ``POST /v1/accounts/{account}/notes``, both with
``Authorization: Bearer <api key>``. Tests read what it received (:attr:`FakeChatwoot.notes`) and
make it fail on purpose (:meth:`FakeChatwoot.fail_next`). ``python -m lily_chatwoot.fake`` serves
it on a fixed port for trying the plugin by hand.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lily_host.fakes import LocalHTTPServer, Reply, Request, json_reply
from lily_chatwoot.settings import ChatwootTenantSettings
from lily_chatwoot.webhooks import SIGNATURE_HEADER, signature

DEV_PORT = 18090
DEV_ACCOUNT = ChatwootTenantSettings.lily_dev_tenant["account_id"]
DEV_API_KEY = ChatwootTenantSettings.lily_dev_tenant["api_key"]
DEV_WEBHOOK_SECRET = ChatwootTenantSettings.lily_dev_tenant["webhook_secret"]


@dataclass(frozen=True)
class Note:
    account: str
    text: str


class FakeChatwoot(LocalHTTPServer):
    methods = ("GET", "POST")

    def __init__(self, accounts: Mapping[str, str] | None = None, *, port: int = 0) -> None:
        super().__init__(port=port, name="fake-chatwoot")
        #: account id → the API key it accepts.
        self.accounts = dict(accounts or {DEV_ACCOUNT: DEV_API_KEY})
        self.notes: list[Note] = []
        self.requests: list[Request] = []
        self._failures: list[Reply] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def fail_next(self, status: int, headers: Mapping[str, str] | None = None, *, times: int = 1) -> None:
        """Answer the next ``times`` note posts with ``status`` (and ``headers``, e.g. Retry-After)."""
        with self._lock:
            self._failures.extend(json_reply(status, {"error": f"HTTP {status}"}, headers) for _ in range(times))

    def handle_request(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            owner = next((account for account, key in self.accounts.items() if key == token), None)
            if owner is None:
                return json_reply(401, {"error": "invalid api key"})
            parts = [part for part in request.path.split("/") if part]
            if request.method == "GET" and parts == ["v1", "me"]:
                return json_reply(200, {"account": owner})
            if request.method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "accounts"] and parts[3] == "notes":
                if parts[2] != owner:
                    return json_reply(403, {"error": "this key belongs to another account"})
                if self._failures:
                    return self._failures.pop(0)
                body = request.json()
                if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                    return json_reply(422, {"error": "text is required"})
                self.notes.append(Note(owner, body["text"]))
                return json_reply(201, {"id": f"note_{next(self._ids)}", "text": body["text"]})
            return json_reply(404, {"error": f"no route {request.method} {request.path}"})


def signed_event(
    secret: str, *, account: str, event_id: str = "evt_1", event_type: str = "contact.created"
) -> tuple[bytes, dict[str, str]]:
    """A webhook body as the provider sends it, and its headers (signed with ``secret``)."""
    body = json.dumps({"id": event_id, "account": account, "type": event_type}).encode()
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, body)}


@dataclass
class DevStandIn:
    """What ``lily dev`` reads from a stand-in: a line for its banner, variables, and how to stop."""

    description: str
    env: dict[str, str]
    stop: Callable[[], None] = field(default=lambda: None)


def dev_standin(context: Any) -> DevStandIn | None:
    """``lily dev`` without CHATWOOT_API_BASE: this fake, with the demo tenant's development account."""
    if context.environ.get("CHATWOOT_API_BASE"):
        return None
    fake = FakeChatwoot().start()
    return DevStandIn(f"fake Chatwoot at {fake.base_url}", {"CHATWOOT_API_BASE": fake.base_url}, stop=fake.stop)


def main() -> None:
    fake = FakeChatwoot(port=DEV_PORT).start()
    fake.announce_and_serve("fake Chatwoot", {"CHATWOOT_API_BASE": fake.base_url})


if __name__ == "__main__":
    main()
