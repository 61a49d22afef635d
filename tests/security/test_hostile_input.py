"""Each finding of the hostile-input review, reproduced: every one is now a 4xx that changes nothing.

The app runs with every plugin configured (each against its provider's fake) and two tenants;
"changes nothing" is checked on the whole Redis data set (every key and its serialized value),
apart from the failure counters of the credential throttle.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from world import OTHER_NUMBER, STRIPE_WEBHOOK_SECRET, STRONG_ADMIN_TOKEN, TENANT_NUMBER

from lily_calcom.signature import HEADER as CALCOM_HEADER
from lily_calcom.signature import sign as calcom_sign
from lily_host.plugin_api.auth_throttle import FAILURE_LIMIT
from lily_host.testing import Harness
from lily_stripe.signature import compute_signature

DEEP_JSON = b"[" * 1100 + b"]" * 1100
ADMIN = {"Authorization": f"Bearer {STRONG_ADMIN_TOKEN}"}
JSON = {"Content-Type": "application/json"}
#: Keys that record requests rather than hold data (see snapshot).
NOT_DATA = (b"lily:authfail:", b"lily:ratelimit:", b"lily:audit", b"lily:webhooks:log", b"lily:console:")


async def snapshot(lily: Harness) -> dict[bytes, bytes]:
    """Every key and its DUMP (type and value), except the rate counters a request is meant to move (the
    credential throttle's failure counts and the tenant API's per-key rate limit) and the records of
    what was asked (the audit log, the webhook log and its console index record refused requests by design)."""
    redis = lily.host.redis
    keys = [key async for key in redis.scan_iter(count=1000) if not key.startswith(NOT_DATA)]
    return {key: await redis.dump(key) for key in sorted(keys)}


async def assert_refused_and_unchanged(lily: Harness, send: Any, status: int | tuple[int, ...] = 400) -> Any:
    before = await snapshot(lily)
    response = await send()
    allowed = (status,) if isinstance(status, int) else status
    assert response.status_code in allowed, (response.status_code, await response.get_data())
    body = await response.get_json()
    assert isinstance(body, dict) and body.get("message"), body  # one clear line, never a traceback
    assert await snapshot(lily) == before
    return body


# --- unauthenticated webhooks ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/webhooks/stripe", "/webhooks/calcom", "/webhooks/calcom/acme"])
async def test_deeply_nested_json_to_a_webhook_is_400(lily: Harness, path: str) -> None:
    await assert_refused_and_unchanged(lily, lambda: lily.client.post(path, data=DEEP_JSON, headers=JSON))


async def test_a_signed_stripe_event_with_a_huge_timestamp_is_refused(lily: Harness) -> None:
    subscription = {"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active"}
    event = {"id": "evt_huge_t", "type": "customer.subscription.updated", "data": {"object": subscription}}
    body = json.dumps(event).encode()
    timestamp = int("9" * 3000)
    header = f"t={timestamp},v1={compute_signature(body, STRIPE_WEBHOOK_SECRET, timestamp)}"
    await assert_refused_and_unchanged(
        lily,
        lambda: lily.client.post("/webhooks/stripe", data=body, headers={**JSON, "Stripe-Signature": header}),
        status=401,
    )


async def test_cal_com_answers_an_unknown_tenant_exactly_as_a_known_one_with_a_wrong_signature(
    lily_in: Any,
) -> None:
    """CALCOM_WEBHOOK_SECRET is unset: acme has its own secret, bob none, and nobody does not exist."""
    body = json.dumps({"triggerEvent": "BOOKING_CREATED", "payload": {"uid": "u1"}}).encode()
    async with lily_in("development", CALCOM_WEBHOOK_SECRET="") as lily:
        for signature in (calcom_sign(body, "a-guess"), None):
            headers = {**JSON, **({CALCOM_HEADER: signature} if signature else {})}
            answers = []
            for tenant in ("acme", "nobody", "bob"):
                response = await lily.client.post(f"/webhooks/calcom/{tenant}", data=body, headers=headers)
                answers.append((response.status_code, await response.get_json()))
            assert answers[0] == answers[1] == answers[2]
            assert answers[0][0] in (401, 403)


async def test_a_non_digit_content_length_is_400_not_500(lily: Harness) -> None:
    """``"²".isdigit()`` is true; the front door must not hand it to ``int()``."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/webhooks/twilio/sms",
        "raw_path": b"/webhooks/twilio/sms",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", "²".encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    await lily.app.asgi_app(scope, receive, send)
    assert sent[0]["status"] == 400


# --- tenant-key routes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/jobs/J1/complete", "/api/uploads", "/api/uploads/complete", "/api/billing/checkout", "/api/billing/portal"],
)
async def test_deeply_nested_json_to_a_tenant_route_is_400(lily: Harness, path: str) -> None:
    headers = {**(await lily.tenant_headers("acme")), **JSON}
    await assert_refused_and_unchanged(lily, lambda: lily.client.post(path, data=DEEP_JSON, headers=headers))


@pytest.mark.parametrize("path", ["/api/uploads", "/api/jobs/J1/complete", "/api/billing/checkout"])
async def test_a_body_that_is_not_utf8_is_400(lily: Harness, path: str) -> None:
    headers = {**(await lily.tenant_headers("acme")), **JSON}
    await assert_refused_and_unchanged(lily, lambda: lily.client.post(path, data=b"\377", headers=headers))


@pytest.mark.parametrize("query", ["/api/quotes?limit=%C2%B2", "/api/quotes/q1/photos?expires_in=%C2%B2"])
async def test_a_superscript_digit_in_a_query_is_400(lily: Harness, query: str) -> None:
    headers = await lily.tenant_headers("acme")
    await assert_refused_and_unchanged(lily, lambda: lily.client.get(query, headers=headers))


async def test_a_lone_surrogate_in_checkout_is_400(lily: Harness) -> None:
    headers = {**(await lily.tenant_headers("acme")), **JSON}
    body = b'{"plan": "starter", "success_url": "https://acme.test/\\ud800", "cancel_url": "https://acme.test/"}'
    await assert_refused_and_unchanged(
        lily, lambda: lily.client.post("/api/billing/checkout", data=body, headers=headers)
    )


async def test_a_job_id_with_a_trailing_newline_is_refused(lily: Harness) -> None:
    headers = {**(await lily.tenant_headers("acme")), **JSON}
    body = json.dumps({"customer_name": "Dana", "customer_phone": "+15550003333"})
    await assert_refused_and_unchanged(
        lily, lambda: lily.client.post("/api/jobs/J-nl%0A/complete", data=body, headers=headers)
    )


async def test_a_quote_id_with_a_trailing_newline_never_becomes_a_key(lily: Harness) -> None:
    headers = {**(await lily.tenant_headers("acme")), **JSON}
    body = json.dumps({"content_type": "image/jpeg", "quote_id": "q_nl\n"})
    await assert_refused_and_unchanged(lily, lambda: lily.client.post("/api/uploads", data=body, headers=headers))


# --- the admin API -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/tenants"), ("patch", "/api/tenants/acme"), ("post", "/api/tenants/acme/keys")],
)
@pytest.mark.parametrize("body", [DEEP_JSON, b"\377", b'{"name": "\\ud800", "id": "surrogate"}'])
async def test_hostile_admin_bodies_are_400(lily: Harness, method: str, path: str, body: bytes) -> None:
    send = getattr(lily.client, method)
    await assert_refused_and_unchanged(lily, lambda: send(path, data=body, headers={**ADMIN, **JSON}))


@pytest.mark.parametrize("label", [["crm"], {"a": 1}, 5, "x" * 101])
async def test_a_key_label_that_is_not_short_text_mints_nothing(lily: Harness, label: Any) -> None:
    body = json.dumps({"label": label}).encode()
    await assert_refused_and_unchanged(
        lily, lambda: lily.client.post("/api/tenants/acme/keys", data=body, headers={**ADMIN, **JSON})
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"plugins": {"twilio": 1.5}},
        {"plugins": ["twilio"]},
        {"plugins": {"twilio": {"business_numbers": [OTHER_NUMBER]}}},  # bob's number
        {"plugins": {"nosuchplugin": {}}},
        {"templates": {"review_request": "\ud800"}},
        {"review_link": "notaurl"},
        {"review_link": "javascript:alert(1)"},
        {"contact_phone": "call me"},
        {"id": "fz-nl\n"},
    ],
    ids=repr,
)
async def test_a_refused_tenant_is_not_created(lily: Harness, fields: dict[str, Any]) -> None:
    body = json.dumps({"id": "carol", "name": "Carol", **fields}).encode()
    await assert_refused_and_unchanged(
        lily, lambda: lily.client.post("/api/tenants", data=body, headers={**ADMIN, **JSON}), status=(400, 409)
    )
    assert await lily.host.tenants.get("carol") is None
    # ... so that a corrected retry is a plain 201, not a 409 "already exists".
    retry = await lily.client.post("/api/tenants", json={"id": "carol", "name": "Carol"}, headers=ADMIN)
    assert retry.status_code == 201


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Acme Renamed", "plugins": {"twilio": {"business_numbers": [OTHER_NUMBER]}}},
        {"name": "Acme Renamed", "plugins": {"twilio": {"business_numbers": ["+15550009999"]}, "calcom": 7}},
        {"name": "Acme Renamed", "review_link": "notaurl"},
        {"name": "Acme Renamed", "plugins": {"twilio": {"business_numbers": ["+15550009999"]}, "s3": {"x": 1}}},
    ],
    ids=repr,
)
async def test_a_refused_update_changes_nothing(lily: Harness, fields: dict[str, Any]) -> None:
    body = json.dumps(fields).encode()
    await assert_refused_and_unchanged(
        lily, lambda: lily.client.patch("/api/tenants/acme", data=body, headers={**ADMIN, **JSON}), status=(400, 409)
    )
    tenant = await lily.host.tenants.resolve("phone", TENANT_NUMBER)
    assert tenant is not None and tenant.id == "acme" and tenant.name == "Acme"


async def test_what_is_texted_to_customers_is_checked_and_number_lists_take_commas(lily: Harness) -> None:
    created = await lily.client.post(
        "/api/tenants",
        json={
            "id": "dana",
            "name": "Dana",
            "review_link": " https://g.page/r/dana/review ",
            "contact_phone": "+1 (555) 000-4444",
            "plugins": {"twilio": {"business_numbers": "+15550004444, +15550005555"}},
        },
        headers=ADMIN,
    )
    assert created.status_code == 201, await created.get_data()
    view = await created.get_json()
    assert view["review_link"] == "https://g.page/r/dana/review"
    assert view["contact_phone"] == "+15550004444"
    assert view["plugins"]["twilio"]["business_numbers"] == ["+15550004444", "+15550005555"]
    changed = await lily.client.patch(
        "/api/tenants/dana", json={"plugins": {"s3": {"allowed_types": "image/jpeg, image/png"}}}, headers=ADMIN
    )
    assert changed.status_code == 200, await changed.get_data()
    assert (await changed.get_json())["plugins"]["s3"]["allowed_types"] == ["image/jpeg", "image/png"]


# --- throttling of wrong credentials ---------------------------------------------------------------------


async def test_wrong_tenant_keys_are_throttled_per_address(lily: Harness) -> None:
    good = await lily.tenant_headers("acme")
    me = {"client": ("203.0.113.7", 40000)}
    for _ in range(FAILURE_LIMIT):
        wrong = await lily.client.get("/api/tenant", headers={"Authorization": "Bearer lily_nope"}, scope_base=me)
        assert wrong.status_code == 403
    throttled = await lily.client.get("/api/tenant", headers={"Authorization": "Bearer lily_nope"}, scope_base=me)
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["Retry-After"]) <= 300
    # Even the right key waits (or the answer would tell a guesser it found one) ...
    assert (await lily.client.get("/api/tenant", headers=good, scope_base=me)).status_code == 429
    # ... while another address is not slowed down.
    other = {"client": ("198.51.100.8", 40000)}
    assert (await lily.client.get("/api/tenant", headers=good, scope_base=other)).status_code == 200


async def test_wrong_admin_tokens_are_throttled_per_address_also_behind_a_proxy(lily: Harness) -> None:
    proxy = {"client": ("127.0.0.1", 40000)}  # a trusted proxy (LILY_TRUSTED_PROXIES' default)
    guesser = {"Authorization": "Bearer guess", "X-Forwarded-For": "203.0.113.9"}
    for _ in range(FAILURE_LIMIT):
        assert (await lily.client.get("/api/plugins", headers=guesser, scope_base=proxy)).status_code == 403
    assert (await lily.client.get("/api/plugins", headers=guesser, scope_base=proxy)).status_code == 429
    right = {**ADMIN, "X-Forwarded-For": "203.0.113.9"}
    assert (await lily.client.get("/api/plugins", headers=right, scope_base=proxy)).status_code == 429
    # Someone else behind the same proxy is a different client.
    neighbour = {**ADMIN, "X-Forwarded-For": "198.51.100.1"}
    assert (await lily.client.get("/api/plugins", headers=neighbour, scope_base=proxy)).status_code == 200


# --- secrets out of key names, the dev outbox --------------------------------------------------------------


async def test_google_oauth_state_is_hashed_in_its_key_name(lily: Harness) -> None:
    started = await lily.client.get("/auth/google/start", headers=await lily.tenant_headers("acme"))
    assert started.status_code == 200, await started.get_data()
    url = (await started.get_json())["authorization_url"]
    state = url.split("state=")[1].split("&")[0]
    assert [key async for key in lily.host.redis.scan_iter(match="lily:gcal:oauth:*")]
    assert not [key async for key in lily.host.redis.scan_iter() if state.encode() in key]


async def test_the_dev_outbox_wants_the_admin_token_outside_lily_dev(lily: Harness) -> None:
    anonymous = await lily.client.get("/dev/outbox")
    assert anonymous.status_code == 401
    assert (await lily.client.get("/dev/outbox", headers=ADMIN)).status_code == 200


async def test_the_dev_outbox_does_not_exist_in_production(lily_in: Any) -> None:
    async with lily_in("production") as lily:
        assert (await lily.client.get("/dev/outbox", headers=ADMIN)).status_code == 404
