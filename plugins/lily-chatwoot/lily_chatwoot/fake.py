"""A local Chatwoot for tests and ``lily dev``: the parts of its API and webhooks Lily uses.

Served, with Chatwoot's ``api_access_token`` header:

- ``POST /api/v1/accounts/{account}/conversations/{conversation}/messages``: creates a message
  (recorded in :attr:`FakeChatwoot.messages`) and, like Chatwoot, fires ``message_created`` for
  it: the signed delivery is kept in :attr:`FakeChatwoot.deliveries` for a test to post to Lily.
- ``GET /api/v1/accounts/{account}/conversations/{conversation}/messages``: the conversation's
  messages (``{"meta": ..., "payload": [...]}``), to look at what Lily sent.
- ``GET /api/v1/profile``: the agent the token belongs to.

:func:`message_created` builds a webhook body in Chatwoot's format and :func:`signed` signs it as
Chatwoot does. ``python -m lily_chatwoot.fake`` serves it on a fixed port.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lily_chatwoot import signature
from lily_chatwoot.settings import ChatwootTenantSettings
from lily_host.fakes import LocalHTTPServer, Reply, Request, json_reply

DEV_PORT = 18091
DEV_ACCOUNT = str(ChatwootTenantSettings.lily_dev_tenant["account_id"])
DEV_TOKEN = str(ChatwootTenantSettings.lily_dev_tenant["api_access_token"])
DEV_WEBHOOK_SECRET = str(ChatwootTenantSettings.lily_dev_tenant["webhook_secret"])
#: The agent every token of the fake belongs to (Lily's replies are sent as this user).
AGENT = {"id": 1, "name": "Lily Bot", "email": "bot@lily.test", "type": "user"}


@dataclass(frozen=True)
class Message:
    id: int
    account: str
    conversation: str
    content: str
    message_type: str
    private: bool


class FakeChatwoot(LocalHTTPServer):
    """``accounts``: account id → the access token it accepts. ``webhook_secret``: signs deliveries."""

    methods = ("GET", "POST")

    def __init__(
        self,
        accounts: Mapping[str, str] | None = None,
        *,
        webhook_secret: str = DEV_WEBHOOK_SECRET,
        port: int = 0,
    ) -> None:
        super().__init__(port=port, name="fake-chatwoot")
        self.accounts = dict(accounts or {DEV_ACCOUNT: DEV_TOKEN})
        self.webhook_secret = webhook_secret
        self.messages: list[Message] = []
        #: ``message_created`` deliveries Chatwoot would send for the messages created: (body, headers).
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        self.requests: list[Request] = []
        self._failures: list[Reply] = []
        self._delays: list[float] = []
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()

    def fail_next(self, status: int, headers: Mapping[str, str] | None = None, *, times: int = 1) -> None:
        """Answer the next ``times`` message posts with ``status`` (and ``headers``, e.g. Retry-After)."""
        with self._lock:
            body = {"error": f"HTTP {status}"}
            self._failures.extend(json_reply(status, body, headers) for _ in range(times))

    def delay_next(self, seconds: float) -> None:
        """Create the next posted message, but answer only ``seconds`` later (a client that times
        out first cannot tell whether the message was created)."""
        with self._lock:
            self._delays.append(seconds)

    def sent(self) -> list[Message]:
        """The outgoing messages created through the API (what Lily replied)."""
        with self._lock:
            return [message for message in self.messages if message.message_type == "outgoing"]

    def handle_request(self, request: Request) -> Reply:
        with self._lock:
            reply = self._answer(request)
            delay = self._delays.pop(0) if self._delays and request.method == "POST" else 0.0
        if delay:
            time.sleep(delay)  # on this request's own server thread, outside the lock
        return reply

    def _answer(self, request: Request) -> Reply:
        self.requests.append(request)
        token = request.headers.get("api_access_token", "")
        owned = [account for account, accepted in self.accounts.items() if accepted == token]
        if not token or not owned:
            return json_reply(401, {"error": "Invalid Access Token"})
        parts = [part for part in request.path.split("/") if part]
        if parts == ["api", "v1", "profile"] and request.method == "GET":
            accounts = [{"id": int(account), "name": f"Account {account}", "role": "agent"} for account in owned]
            return json_reply(200, {**AGENT, "account_id": int(owned[0]), "accounts": accounts})
        if len(parts) == 7 and parts[:3] == ["api", "v1", "accounts"] and parts[4] == "conversations":
            account, conversation = parts[3], parts[5]
            if parts[6] != "messages":
                return json_reply(404, {"error": "Resource could not be found"})
            if account not in owned:
                return json_reply(401, {"error": "You are not authorized to access this account"})
            if request.method == "GET":
                listed = [
                    self._api_view(m) for m in self.messages if (m.account, m.conversation) == (account, conversation)
                ]
                return json_reply(200, {"meta": {}, "payload": listed})
            if self._failures:
                return self._failures.pop(0)
            return self._create(request, account, conversation)
        return json_reply(404, {"error": "Resource could not be found"})

    def _create(self, request: Request, account: str, conversation: str) -> Reply:
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("content"), str) or not body["content"].strip():
            return json_reply(422, {"message": "Content can't be blank"})
        message_type = body.get("message_type", "outgoing")
        if message_type not in ("outgoing", "incoming"):
            return json_reply(422, {"message": f"message_type {message_type!r} is not valid"})
        message = Message(
            next(self._ids), account, conversation, body["content"], message_type, body.get("private") is True
        )
        self.messages.append(message)
        # Chatwoot tells the account's webhooks about every message, its API's own included.
        payload = message_created(
            account=account,
            conversation=conversation,
            message_id=message.id,
            content=message.content,
            message_type=message.message_type,
            private=message.private,
            sender=AGENT,
        )
        self.deliveries.append(signed(payload, self.webhook_secret))
        return json_reply(200, self._api_view(message))

    @staticmethod
    def _api_view(message: Message) -> dict[str, Any]:
        return {
            "id": message.id,
            "content": message.content,
            "message_type": 1 if message.message_type == "outgoing" else 0,
            "content_type": "text",
            "private": message.private,
            "conversation_id": int(message.conversation),
            "account_id": int(message.account),
            "created_at": int(time.time()),
            "sender": AGENT,
        }


def message_created(
    *,
    account: str | int = DEV_ACCOUNT,
    conversation: str | int = 1,
    message_id: int = 1,
    content: str = "Hi, what's your price for a driveway?",
    message_type: str = "incoming",
    private: bool = False,
    sender: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``message_created`` webhook body as Chatwoot sends it (a contact's message unless told otherwise)."""
    contact = {"id": 42, "name": "Jane Customer", "email": "jane@example.com", "phone_number": None, "type": "contact"}
    return {
        "event": "message_created",
        "id": message_id,
        "content": content,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "message_type": message_type,
        "content_type": "text",
        "content_attributes": {},
        "source_id": None,
        "private": private,
        "sender": dict(sender) if sender is not None else contact,
        "contact": contact,
        "conversation": {
            "id": 90000 + int(conversation),
            "display_id": int(conversation),
            "inbox_id": 1,
            "status": "open",
            "channel": "Channel::WebWidget",
            "additional_attributes": {},
        },
        "account": {"id": int(account), "name": f"Account {account}"},
        "inbox": {"id": 1, "name": "Website"},
    }


def signed(
    payload: Mapping[str, Any] | bytes, secret: str, *, timestamp: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery signed as Chatwoot signs it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = str(int(time.time() if timestamp is None else timestamp))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "rest-client/2.1.0",
        signature.TIMESTAMP: sent,
        signature.SIGNATURE: signature.sign(secret, sent, body),
        signature.DELIVERY: str(uuid.uuid4()),
    }
    return body, headers


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
    conversation = f"{fake.base_url}/api/v1/accounts/{DEV_ACCOUNT}/conversations/1/messages"
    return DevStandIn(
        f"fake Chatwoot at {fake.base_url} (replies: curl -H 'api_access_token: {DEV_TOKEN}' {conversation})",
        {"CHATWOOT_API_BASE": fake.base_url},
        stop=fake.stop,
    )


def main() -> None:
    fake = FakeChatwoot(port=DEV_PORT).start()
    fake.announce_and_serve("fake Chatwoot", {"CHATWOOT_API_BASE": fake.base_url})


if __name__ == "__main__":
    main()
