"""The OAuth dance against the fake Google: consent URL, PKCE, state, token storage, one-time links."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lily_gcal.fake import FakeGoogle
from lily_gcal.links import connect_link
from lily_gcal.tokens import TOKENS_SECRET, TokenStore
from lily_host.testing import Harness

Consent = Callable[[str], Awaitable[dict[str, str]]]


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def start(lily: Harness, tenant: str = "acme") -> str:
    response = await lily.client.get("/auth/google/start", headers=await lily.tenant_headers(tenant))
    assert response.status_code == 200
    url: str = (await response.get_json())["authorization_url"]
    return url


async def stored_tokens(lily: Harness, tenant: str = "acme") -> Any:
    return await TokenStore(lily.host, lily.host.plugin_settings("gcal")).load(tenant)


async def test_consent_url_asks_for_offline_calendar_access_with_pkce(lily: Harness, google: FakeGoogle) -> None:
    url = await start(lily)
    assert url.startswith(f"{google.base_url}/o/oauth2/auth?")
    query = query_of(url)
    assert query["client_id"] == google.client_id
    assert query["redirect_uri"] == "https://lily.test/auth/google/callback"
    assert query["response_type"] == "code"
    assert query["scope"].split() == [
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.acls",
    ]
    assert (query["access_type"], query["prompt"], query["code_challenge_method"]) == ("offline", "consent", "S256")
    assert len(query["state"]) >= 32 and len(query["code_challenge"]) == 43


async def test_whole_dance_stores_encrypted_tokens(lily: Harness, google: FakeGoogle, consent_page: Consent) -> None:
    url = await start(lily)
    granted = await consent_page(url)
    done = await lily.client.get("/auth/google/callback", query_string=granted)
    assert done.status_code == 200
    assert "Acme Washing" in (await done.get_data(as_text=True))

    exchange = google.token_requests()[-1].form
    assert exchange["grant_type"] == "authorization_code"
    assert exchange["code"] == granted["code"]
    assert exchange["redirect_uri"] == "https://lily.test/auth/google/callback"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(exchange["code_verifier"].encode()).digest()).rstrip(b"=")
    assert challenge.decode() == query_of(url)["code_challenge"]

    tokens = await stored_tokens(lily)
    assert tokens.refresh_token.startswith("1//") and tokens.token.startswith("ya29.")
    raw = await lily.host.redis.hget("lily:{t:acme}:tenant_secret", TOKENS_SECRET)
    assert raw.startswith(b"enc:v1:") and b"1//" not in raw
    # Connecting schedules the team-sharing sync.
    assert [task.type for task in await lily.host.queue.list_tasks("due")] == ["gcal.sync_sharing"]


async def test_state_works_once(lily: Harness, consent_page: Consent) -> None:
    granted = await consent_page(await start(lily))
    assert (await lily.client.get("/auth/google/callback", query_string=granted)).status_code == 200
    again = await lily.client.get("/auth/google/callback", query_string=granted)
    assert again.status_code == 400
    assert (await again.get_json())["error"] == "invalid_state"


async def test_unknown_or_missing_state_is_rejected(lily: Harness, consent_page: Consent) -> None:
    granted = await consent_page(await start(lily))
    forged = await lily.client.get("/auth/google/callback", query_string={**granted, "state": "made-up"})
    assert forged.status_code == 400
    assert (await forged.get_json())["error"] == "invalid_state"
    missing = await lily.client.get("/auth/google/callback", query_string={"code": granted["code"]})
    assert missing.status_code == 400
    assert await stored_tokens(lily) is None


async def test_code_from_another_consent_fails_pkce(lily: Harness, google: FakeGoogle, consent_page: Consent) -> None:
    first = await start(lily)
    second = await start(lily)
    granted = await consent_page(first)
    # A code obtained with the first consent's challenge, returned with the second's state (and verifier).
    swapped = {**granted, "state": query_of(second)["state"]}
    response = await lily.client.get("/auth/google/callback", query_string=swapped)
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "code_rejected"
    assert google.token_requests()[-1].status == 400
    assert await stored_tokens(lily) is None


async def test_denied_consent_is_reported(lily: Harness, google: FakeGoogle, consent_page: Consent) -> None:
    google.deny_consent()
    denied = await consent_page(await start(lily))
    assert denied["error"] == "access_denied"
    response = await lily.client.get("/auth/google/callback", query_string=denied)
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "access_denied"


async def test_start_needs_a_tenant_key_or_a_link(lily: Harness) -> None:
    assert (await lily.client.get("/auth/google/start")).status_code == 401
    forged = await lily.client.get("/auth/google/start", headers={"Authorization": "Bearer nope"})
    assert forged.status_code == 403


async def test_one_time_link_redirects_to_consent_once(lily: Harness, google: FakeGoogle) -> None:
    link = await connect_link(lily.host, "bravo")
    assert link.startswith("https://lily.test/auth/google/start?link=")
    path = link.removeprefix("https://lily.test")
    first = await lily.client.get(path)
    assert first.status_code == 302
    assert first.headers["Location"].startswith(f"{google.base_url}/o/oauth2/auth?")
    again = await lily.client.get(path)
    assert again.status_code == 410
    assert "lily gcal connect" in (await again.get_json())["message"]


async def test_connecting_again_replaces_the_tokens(lily: Harness, connect: Any) -> None:
    first = await connect()
    second = await connect()
    assert second.refresh_token != first.refresh_token
    assert second.connected_at >= first.connected_at
