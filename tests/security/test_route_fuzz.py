"""Fuzz every route of a running Lily: no 5xx, no hang, no half-done write.

The app has every plugin loaded (each against its provider's fake) and two tenants with API keys,
in development and in production settings. Hypothesis generates requests from the app's own
route table (so a new route is fuzzed the day it is added): methods, path parameters, query
strings, headers (credentials right, wrong and absent), content types, and bodies — random bytes,
JSON nested past any limit, JSON of the right shape with wrong types and unicode edge cases
(lone surrogates, NUL, bidi controls), forms — delivered in one or several pieces.

Each request is driven through the ASGI interface directly (the same entry hypercorn uses, front
door included), and must answer within ``HANG_SECONDS`` with a status below 500. A refused request
(4xx) must leave Redis exactly as it was (every key and serialized value); an accepted one may
change it, and the data set is put back before the next example.

The bounded run below is part of the normal suite; ``nox -s fuzz`` runs many more examples
(``LILY_FUZZ_EXAMPLES``) with fresh randomness.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlencode

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from world import (
    CALCOM_WEBHOOK_SECRET,
    CHATWOOT_ACCOUNT,
    CHATWOOT_TOKEN,
    CHATWOOT_WEBHOOK_SECRET,
    OTHER_NUMBER,
    STRIPE_WEBHOOK_SECRET,
    STRONG_ADMIN_TOKEN,
    TENANT_NUMBER,
    World,
)

from lily_calcom.signature import sign as calcom_sign
from lily_chatwoot.fake import signed as chatwoot_signed
from lily_host.config.host_settings import HostSettings
from lily_host.dev.embedded_redis import RedisServer
from lily_host.plugin_api.clock import ManualClock
from lily_host.runtime.registry import PluginRegistry, PluginState
from lily_host.web.app import create_app
from lily_stripe.signature import signature_header

T = TypeVar("T")

ALL_PLUGINS = ["twilio", "stripe", "calcom", "gcal", "s3", "chatwoot"]
EXAMPLES = int(os.environ.get("LILY_FUZZ_EXAMPLES", "120"))
#: The long run (nox -s fuzz) explores; the suite's bounded run is the same every time.
DERANDOMIZE = "LILY_FUZZ_EXAMPLES" not in os.environ
HANG_SECONDS = 15.0
#: Left out of snapshots: the rate counters, the one thing a refused request is meant to move (the
#: credential throttle's failure counts, the tenant API's per-key rate limit), and the records of what
#: was asked (the audit log, the webhook log and its console index record refused requests by design).
THROTTLE_KEYS = (b"lily:authfail:", b"lily:ratelimit:", b"lily:audit", b"lily:webhooks:log", b"lily:console:")
_SURROGATES = re.compile("[\ud800-\udfff]")


# --- the app under test, running on its own event loop thread ----------------------------------------


@dataclass
class Running:
    environment: str
    loop: asyncio.AbstractEventLoop
    app: Any
    redis: aioredis.Redis
    twilio_token: str = ""
    tenant_key: str = ""
    other_key: str = ""
    baseline: dict[bytes, Any] = field(default_factory=dict)
    dumps: dict[bytes, bytes] = field(default_factory=dict)
    routes: list[tuple[str, list[str]]] = field(default_factory=list)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = HANG_SECONDS + 5) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)


@pytest.fixture(scope="module", params=["development", "production"])
def running(request: pytest.FixtureRequest, world: World, redis_server: RedisServer) -> Iterator[Running]:
    environment: str = request.param
    env = {**world.env(environment), "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/3"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"fuzz-{environment}", daemon=True)
        thread.start()
        ready: Future[Running] = Future()
        stop = asyncio.Event()

        async def serve() -> None:
            try:
                settings_ = HostSettings()
                app = create_app(settings_, registry=PluginRegistry(settings_, only=ALL_PLUGINS), clock=ManualClock())
                async with app.test_app():
                    host = app.extensions["lily"]
                    running = Running(environment, loop, app, host.redis, twilio_token=world.twilio.auth_token)
                    await seed(running)
                    ready.set_result(running)
                    await stop.wait()
            except BaseException as error:
                if not ready.done():
                    ready.set_exception(error)
                raise

        served = asyncio.run_coroutine_threadsafe(serve(), loop)
        try:
            yield ready.result(60)
        finally:
            loop.call_soon_threadsafe(stop.set)
            served.result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


async def seed(running: Running) -> None:
    host = running.app.extensions["lily"]
    not_loaded = {name: record.state for name, record in host.registry.records.items() if name in ALL_PLUGINS}
    assert all(state == PluginState.LOADED for state in not_loaded.values()), not_loaded
    await running.redis.flushdb()
    await host.tenants.create(
        "acme",
        "Acme",
        plugins={
            "twilio": {"business_numbers": [TENANT_NUMBER]},
            "calcom": {"organizer_emails": ["owner@acme.test"], "webhook_secret": "acme-own-secret"},
            "chatwoot": {
                "account_id": CHATWOOT_ACCOUNT,
                "api_access_token": CHATWOOT_TOKEN,
                "webhook_secret": CHATWOOT_WEBHOOK_SECRET,
                "rules": [{"keyword": "price", "reply": "We'll send a quote today."}],
            },
        },
    )
    await host.tenants.create("bob", "Bob", plugins={"twilio": {"business_numbers": [OTHER_NUMBER]}})
    _, running.tenant_key = await host.tenants.mint_key("acme", "fuzz")
    _, running.other_key = await host.tenants.mint_key("bob", "fuzz")
    running.baseline = await snapshot(running.redis)
    running.dumps = {key: await running.redis.dump(key) async for key in running.redis.scan_iter()}
    running.routes = sorted(
        (rule.rule, sorted(rule.methods or ()))
        for rule in running.app.url_map.iter_rules()
        if not rule.rule.startswith("/static")
    )


async def snapshot(redis: aioredis.Redis) -> dict[bytes, Any]:
    """Every key with its value (whatever its type) and whether it expires; the throttle's counters left out."""
    keys = sorted([key async for key in redis.scan_iter(count=1000) if not key.startswith(THROTTLE_KEYS)])
    result: dict[bytes, Any] = {}
    for key in keys:
        kind = (await redis.type(key)).decode()
        if kind == "string":
            value: Any = await redis.get(key)
        elif kind == "hash":
            value = sorted((await redis.hgetall(key)).items())
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        elif kind == "zset":
            value = sorted(await redis.zrange(key, 0, -1, withscores=True))
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        else:
            value = await redis.dump(key)
        result[key] = (kind, await redis.pttl(key) >= 0, value)
    return result


async def restore(running: Running) -> None:
    """Put the data set back as the baseline had it (after an accepted request changed it)."""
    await running.redis.flushdb()
    for key, dumped in running.dumps.items():
        await running.redis.restore(key, 0, dumped, replace=True)
    running.app.extensions["lily"].tenants.forget_cached()


# --- requests ---------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    chunks: list[bytes]
    scheme: str
    client: str

    @property
    def raw_path(self) -> bytes:
        return quote(self.path, safe="/%", errors="surrogatepass").encode("ascii")

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: enough to replay it
        body = b"".join(self.chunks)
        return (
            f"{self.method} {self.scheme}://lily.test{self.raw_path.decode()}?{self.query.decode('latin-1')} "
            f"headers={self.headers!r} body[{len(body)}]={body[:300]!r} chunks={len(self.chunks)} "
            f"client={self.client}"
        )


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


async def drive(running: Running, attempt: Attempt) -> Answer:
    """One request through the app's ASGI entry, as hypercorn would make it."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(attempt.chunks) - 1}
        for index, chunk in enumerate(attempt.chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    answered = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": attempt.method,
        "scheme": attempt.scheme,
        # As hypercorn makes them: the raw path as sent, and its percent-decoding (invalid UTF-8 replaced).
        "path": unquote(attempt.raw_path.decode("ascii")),
        "raw_path": attempt.raw_path,
        "query_string": attempt.query,
        "root_path": "",
        "headers": [(b"host", b"lily.test"), *attempt.headers],
        "client": (attempt.client, 40000),
        "server": ("lily.test", 443 if attempt.scheme == "https" else 80),
        "extensions": {},
        "state": {},
    }
    await asyncio.wait_for(running.app(scope, receive, send), HANG_SECONDS)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return Answer(int(start["status"]), list(start.get("headers", [])), body)


# --- strategies -------------------------------------------------------------------------------------------

#: Text that has broken parsers before: lone surrogates, NUL, bidi and zero-width marks, superscript
#: and non-ASCII digits, a trailing newline, very long runs.
EDGE_TEXT = st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "\u202e", "\u200b", "²", "٣", "1\n", "acme\n", "-1", "1e309", "NaN", "x" * 5000]
)
TEXT = st.one_of(st.text(max_size=40), EDGE_TEXT)
IDS = st.one_of(st.sampled_from(["acme", "bob", "nobody", "J1", "q1", "p1", "k1", "ACME", "a" * 200]), TEXT)
FIELD_NAMES = st.sampled_from(
    [
        "id", "name", "plugins", "twilio", "calcom", "s3", "stripe", "gcal", "business_numbers", "from_number",
        "review_link", "contact_phone", "contact_email", "templates", "timezone", "quiet_hours_start",
        "review_delay_seconds", "retention_days", "label", "plan", "success_url", "cancel_url", "return_url",
        "content_type", "filename", "quote_id", "photo_id", "customer_name", "customer_phone", "service",
        "triggerEvent", "payload", "uid", "organizer", "email", "eventTypeId", "type", "data", "object",
        "customer", "subscription", "status", "metadata", "tenant_id", "allowed_types", "webhook_secret",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from([TENANT_NUMBER, OTHER_NUMBER, "https://acme.test/ok", "starter", "image/jpeg", "acme"]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.one_of(FIELD_NAMES, TEXT), children, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([65, 200, 1100, 5000]))
    if draw(st.booleans()):
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


FORM_NAMES = st.one_of(
    st.sampled_from(["From", "To", "Body", "CallSid", "MessageSid", "NumMedia", "MediaUrl0", "MessageStatus",
                     "CallStatus", "ErrorCode", "AccountSid", "DialCallStatus", "MediaContentType0"]),
    TEXT,
)  # fmt: skip
BODIES = st.one_of(
    st.binary(max_size=300),
    deep_json(),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6).map(lambda value: json.dumps(value).encode()),
    st.dictionaries(FORM_NAMES, TEXT, max_size=6).map(
        lambda value: urlencode(value, encoding="utf-8", errors="surrogatepass").encode()
    ),
    st.just(b"\377\376"),
    st.just(b""),
)
JSON_TYPE, FORM_TYPE = "application/json", "application/x-www-form-urlencoded"
#: Bodies with the content type they are written in.
TYPED_BODIES = st.one_of(
    deep_json().map(lambda body: (body, JSON_TYPE)),
    deep_json().map(lambda body: (body, JSON_TYPE)),
    JSON_VALUES.map(lambda value: (json.dumps(value).encode(), JSON_TYPE)),
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6).map(lambda value: (json.dumps(value).encode(), JSON_TYPE)),
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6).map(lambda value: (json.dumps(value).encode(), JSON_TYPE)),
    st.sampled_from([b"\377", b"\377\376{}", b'{"a": "\\ud800"}', b"NaN", b"1e999999", b"9" * 5000]).map(
        lambda body: (body, JSON_TYPE)
    ),
    st.dictionaries(FORM_NAMES, TEXT, max_size=6).map(
        lambda value: (urlencode(value, encoding="utf-8", errors="surrogatepass").encode(), FORM_TYPE)
    ),
    st.binary(max_size=300).map(lambda body: (body, None)),
    st.just((b"", None)),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/json; charset=utf-16",
            "APPLICATION/JSON",
            "",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=30),
)
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60)
EXTRA_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "x-forwarded-for",
                "x-forwarded-proto",
                "content-length",
                "stripe-signature",
                "x-twilio-signature",
                "x-cal-signature-256",
                "x-chatwoot-signature",
                "x-chatwoot-timestamp",
                "idempotency-key",
                "transfer-encoding",
                "x-random",
            ]
        ),
        st.one_of(HEADER_VALUES, st.sampled_from(["https", "²", "-1", "99999999999999999999", "t=1,v1=00"])),
    ),
    max_size=3,
)
#: Text every provider's signing code can encode (a lone surrogate cannot be signed, so cannot arrive signed).
SIGNABLE_TEXT = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from(["²", "٣", "1\n", "\x00", "\u202e", "-1", "", " ", "9" * 400]),
)
NUMBERS = st.sampled_from([TENANT_NUMBER, OTHER_NUMBER, "+15005550006", "+15557654321", "+1555", "5551234567"])
TWILIO_FORMS = st.dictionaries(
    st.one_of(FORM_NAMES.filter(lambda name: not _SURROGATES.search(name)), SIGNABLE_TEXT),
    st.one_of(SIGNABLE_TEXT, NUMBERS, st.sampled_from(["no-answer", "busy", "completed", "delivered", "failed",
                                                        "STOP", "START", "1", "10", "http://127.0.0.1:1/m.jpg"])),
    max_size=10,
)  # fmt: skip
STRIPE_EVENTS = st.fixed_dictionaries(
    {
        "id": st.one_of(st.just("evt_fuzz"), SIGNABLE_TEXT),
        "type": st.one_of(
            st.sampled_from(
                [
                    "checkout.session.completed",
                    "customer.subscription.created",
                    "customer.subscription.updated",
                    "customer.subscription.deleted",
                    "invoice.payment_failed",
                    "invoice.paid",
                ]
            ),
            SIGNABLE_TEXT,
        ),
        "data": st.fixed_dictionaries(
            {
                "object": st.dictionaries(FIELD_NAMES, st.one_of(JSON_VALUES, NUMBERS), max_size=8).map(
                    lambda obj: {"customer": "cus_fuzz", "metadata": {"tenant_id": "acme"}, **obj}
                )
            }
        ),
    },
    optional={"created": st.integers(), "livemode": st.booleans(), "api_version": TEXT},
)
CALCOM_DELIVERIES = st.fixed_dictionaries(
    {
        "triggerEvent": st.one_of(
            st.sampled_from(["BOOKING_CREATED", "BOOKING_CANCELLED", "BOOKING_RESCHEDULED", "MEETING_ENDED"]),
            SIGNABLE_TEXT,
        ),
        "payload": st.one_of(
            JSON_VALUES,
            st.dictionaries(FIELD_NAMES, st.one_of(JSON_VALUES, NUMBERS), max_size=8).map(
                lambda obj: {"uid": "u-fuzz", "organizer": {"email": "owner@acme.test"}, **obj}
            ),
        ),
    }
)

CHATWOOT_DELIVERIES = st.fixed_dictionaries(
    {
        # Mostly a real event of the seeded account (so handlers run), sometimes anything.
        "event": st.sampled_from(["message_created", "message_created", "conversation_created"]) | SIGNABLE_TEXT,
        "account": st.just({"id": int(CHATWOOT_ACCOUNT)}) | st.just({"id": CHATWOOT_ACCOUNT}) | JSON_VALUES,
        "id": st.integers(min_value=-5, max_value=10**12) | SIGNABLE_TEXT,
        "message_type": st.sampled_from(["incoming", "outgoing", 0, 1, 7, None]),
        "content": st.sampled_from(["price?", "What's the PRICE", ""]) | SIGNABLE_TEXT,
        "conversation": st.fixed_dictionaries({"display_id": st.integers(0, 99) | SIGNABLE_TEXT}) | JSON_VALUES,
        "sender": st.just({"type": "contact"}) | JSON_VALUES,
    }
)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


METHODS = st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS", "TRACE", "BREW"])
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@st.composite
def attempts(draw: st.DrawFn, running: Running) -> Attempt:
    rule, methods = draw(st.sampled_from(running.routes))
    path = _CONVERTER.sub(lambda _match: draw(IDS).replace("/", "%2F"), rule)
    if draw(st.integers(0, 9)) == 0:
        path = "/" + draw(st.text(max_size=20))  # off the route table entirely
    # Mostly the route's own methods (deeper), sometimes any method at all.
    method = draw(st.sampled_from(methods)) if draw(st.integers(0, 4)) else draw(METHODS)
    credentials = draw(
        st.sampled_from(
            [
                None,
                f"Bearer {STRONG_ADMIN_TOKEN}",
                f"Bearer {STRONG_ADMIN_TOKEN}",
                f"Bearer {running.tenant_key}",
                f"Bearer {running.tenant_key}",
                f"Bearer {running.other_key}",
                "Bearer wrong",
                "Basic YTpi",
                "Bearer ",
            ]
        )
    )
    headers: list[tuple[str, str]] = []
    if credentials is not None:
        headers.append(("authorization", credentials))
    query = draw(
        st.one_of(
            st.just(""),
            st.dictionaries(
                st.sampled_from(["limit", "expires_in", "tenant", "link", "state", "code", "error"]), TEXT, max_size=3
            ).map(lambda value: urlencode(value, encoding="utf-8", errors="surrogatepass")),
            st.text(max_size=30).map(lambda text: quote(text, safe="=&", errors="surrogatepass")),
        )
    )
    scheme = draw(st.sampled_from(["http", "https", "https"]))
    signed = path.startswith("/webhooks/") and draw(st.integers(0, 2)) > 0
    if signed:
        body, signature_headers = _signed_delivery(draw, running, path, query)
        headers.extend(signature_headers)
    else:
        body, natural_type = draw(TYPED_BODIES) if method not in ("GET", "HEAD") or draw(st.booleans()) else (b"", None)
        # Mostly the content type the body is written in (so parsers run), sometimes anything.
        content_type = natural_type if draw(st.integers(0, 3)) else draw(st.one_of(st.none(), CONTENT_TYPES))
        if content_type is not None:
            headers.append(("content-type", content_type))
    headers.extend(draw(EXTRA_HEADERS))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
    chunks = [body[start:end] for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return Attempt(
        method=method,
        path=path,
        query=query.encode("ascii"),
        headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        chunks=chunks,
        scheme=scheme,
        client=draw(st.sampled_from(["127.0.0.1", "203.0.113.5", "198.51.100.6", "2001:db8::7"])),
    )


def _signed_delivery(draw: st.DrawFn, running: Running, path: str, query: str) -> tuple[bytes, list[tuple[str, str]]]:
    """A body signed exactly as its provider would sign it, so the fuzz reaches parsing and handlers."""
    if path.startswith("/webhooks/twilio"):
        form = draw(TWILIO_FORMS)
        url = "https://lily.test" + path + (f"?{query}" if query else "")
        signature = RequestValidator(running.twilio_token).compute_signature(url, form)
        body = urlencode(form).encode()
        return body, [("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", str(signature))]
    if path.startswith("/webhooks/stripe"):
        body = draw(st.one_of(STRIPE_EVENTS.map(_json_bytes), BODIES))
        now = int(running.app.extensions["lily"].clock.now()) + draw(st.sampled_from([0, 0, -1000, 10**6]))
        header = signature_header(body, [STRIPE_WEBHOOK_SECRET], now)
        return body, [("content-type", "application/json"), ("stripe-signature", header)]
    if path.startswith("/webhooks/calcom"):
        body = draw(st.one_of(CALCOM_DELIVERIES.map(_json_bytes), BODIES))
        secret = draw(st.sampled_from([CALCOM_WEBHOOK_SECRET, "acme-own-secret"]))
        return body, [("content-type", "application/json"), ("x-cal-signature-256", calcom_sign(body, secret))]
    if path.startswith("/webhooks/chatwoot"):
        body = draw(st.one_of(CHATWOOT_DELIVERIES.map(_json_bytes), BODIES))
        body, headers = chatwoot_signed(body, CHATWOOT_WEBHOOK_SECRET)
        return body, [(name.lower(), value) for name, value in headers.items()]
    return draw(BODIES), [("content-type", "application/json")]


# --- the property ------------------------------------------------------------------------------------------


def test_the_fuzzer_reaches_every_plugin(running: Running) -> None:
    paths = {rule for rule, _methods in running.routes}
    webhooks = ("/webhooks/twilio/sms", "/webhooks/stripe", "/webhooks/calcom/<tenant_id>", "/webhooks/chatwoot")
    for expected in (*webhooks, "/api/uploads"):
        assert expected in paths
    assert {"/api/billing/checkout", "/auth/google/start", "/api/tenants", "/dev/outbox"} <= paths


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_route_answers_5xx_hangs_or_half_writes(running: Running, data: st.DataObject) -> None:
    attempt = data.draw(attempts(running), label="request")
    before = running.baseline
    changed = True
    try:
        answer = running.run(drive(running, attempt))
        event(f"{answer.status} {attempt.method} {_route_of(attempt.path)}")  # --hypothesis-show-statistics
        assert answer.status < 500, f"{answer.status} {answer.body[:500]!r}"
        after = running.run(snapshot(running.redis))
        changed = after != before
        if answer.status >= 400:
            assert after == before, f"a refused request ({answer.status}) changed: {_changed(before, after)}"
            if attempt.method != "HEAD" and answer.status != 405:
                # JSON with a message for programs, TwiML for Twilio, a page for people (a /q/ or /r/ link).
                readable = (b'"message"', b"<Response>", b"<!doctype html>")
                assert any(part in answer.body for part in readable), answer.body[:300]
    finally:
        # After an accepted write, or a failure (being shrunk), the next example starts from the baseline.
        if changed:
            running.run(restore(running))


def _route_of(path: str) -> str:
    parts = path.split("/")
    route = "/".join(parts[:3]) if len(parts) > 1 else path
    # A statistics label: hypothesis reports it as UTF-8, which a drawn lone surrogate is not.
    return route.encode("ascii", "backslashreplace").decode()


def _changed(before: dict[bytes, Any], after: dict[bytes, Any]) -> list[bytes]:
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
