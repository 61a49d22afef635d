"""Console sign-in without a browser: the one-time link, session end on token rotation, no open
redirect, the console off without an admin token, and bad filters answered with one line."""

from __future__ import annotations

import re

from lily_host.console import signin_link
from lily_host.console.sessions import COOKIE, SIGNIN_COOKIE, load_session, open_session
from lily_host.testing import TEST_ADMIN_TOKEN, HarnessFactory


def _cookie(response: object, name: str) -> str:
    for header in response.headers.getlist("Set-Cookie"):  # type: ignore[attr-defined]
        if header.startswith(name + "="):
            return str(header.split(";", 1)[0].split("=", 1)[1])
    raise AssertionError(f"no {name} cookie set")


async def test_the_one_click_link_signs_in_once(lily_harness: HarnessFactory) -> None:
    async with lily_harness() as lily:
        link = await signin_link(lily.host, "http://127.0.0.1:8000")
        assert link.startswith("http://127.0.0.1:8000/console/signin/") and TEST_ADMIN_TOKEN not in link
        path = link.removeprefix("http://127.0.0.1:8000")
        first = await lily.client.get(path)
        assert first.status_code == 303 and first.headers["Location"].endswith("/console/")
        set_cookie = next(h for h in first.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "="))
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/console" in set_cookie
        assert "Secure" not in set_cookie  # only in production
        sid = _cookie(first, COOKIE)
        lily.client.cookie_jar = None  # type: ignore[attr-defined]
        page = await lily.client.get("/console/", headers={"Cookie": f"{COOKIE}={sid}"})
        assert page.status_code == 200 and "Overview" in await page.get_data(as_text=True)
        again = await lily.client.get(path)
        assert again.status_code == 403 and "used already or has expired" in await again.get_data(as_text=True)


async def test_rotating_the_admin_token_ends_sessions(lily_harness: HarnessFactory) -> None:
    async with lily_harness() as lily:
        sid, _session = await open_session(lily.host.redis, TEST_ADMIN_TOKEN)
        assert await load_session(lily.host.redis, sid, TEST_ADMIN_TOKEN) is not None
        assert await load_session(lily.host.redis, sid, "a-new-admin-token") is None
        assert await load_session(lily.host.redis, sid, TEST_ADMIN_TOKEN) is None  # gone for good


async def test_sign_in_goes_only_to_console_pages(lily_harness: HarnessFactory) -> None:
    async with lily_harness() as lily:
        lily.client.cookie_jar = None  # type: ignore[attr-defined]
        form_page = await lily.client.get("/console/signin?next=//evil.example/x")
        csrf = re.search(r'name="csrf" value="([^"]+)"', await form_page.get_data(as_text=True))
        assert csrf is not None
        answer = await lily.client.post(
            "/console/signin",
            form={"csrf": csrf.group(1), "token": TEST_ADMIN_TOKEN, "next": "//evil.example/x"},
            headers={"Cookie": f"{SIGNIN_COOKIE}={_cookie(form_page, SIGNIN_COOKIE)}"},
        )
        assert answer.status_code == 303 and answer.headers["Location"] == "/console/"
        # Without the sign-in form's own cookie the token is not even looked at.
        refused = await lily.client.post("/console/signin", form={"csrf": csrf.group(1), "token": TEST_ADMIN_TOKEN})
        assert refused.status_code == 403 and COOKIE + "=" not in str(refused.headers.getlist("Set-Cookie"))


async def test_the_console_is_off_without_an_admin_token(lily_harness: HarnessFactory) -> None:
    async with lily_harness(env={"LILY_ADMIN_TOKEN": ""}) as lily:
        answer = await lily.client.get("/console/")
        assert answer.status_code == 503 and "set LILY_ADMIN_TOKEN" in await answer.get_data(as_text=True)


async def test_a_bad_filter_is_one_line_and_changes_nothing(lily_harness: HarnessFactory) -> None:
    async with lily_harness() as lily:
        sid, _session = await open_session(lily.host.redis, TEST_ADMIN_TOKEN)
        answer = await lily.client.get("/console/webhooks?since=yesterday", headers={"Cookie": f"{COOKIE}={sid}"})
        text = await answer.get_data(as_text=True)
        assert answer.status_code == 400 and "since: " in text and "is not a time" in text
        missing = await lily.client.get("/console/tenants/nobody", headers={"Cookie": f"{COOKIE}={sid}"})
        assert missing.status_code == 404 and "No tenant nobody" in await missing.get_data(as_text=True)


async def test_in_production_the_cookie_is_secure_and_there_is_no_outbox(lily_harness: HarnessFactory) -> None:
    async with lily_harness(env={"LILY_ENV": "production"}) as lily:
        link = await signin_link(lily.host, "https://lily.test")
        signed_in = await lily.client.get(link.removeprefix("https://lily.test"))
        set_cookie = next(h for h in signed_in.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "="))
        assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
        lily.client.cookie_jar = None  # type: ignore[attr-defined]
        cookie = {"Cookie": f"{COOKIE}={_cookie(signed_in, COOKIE)}"}
        overview = await lily.client.get("/console/", headers=cookie)
        assert overview.status_code == 200 and "Outbox" not in await overview.get_data(as_text=True)
        assert (await lily.client.get("/console/outbox", headers=cookie)).status_code == 404
