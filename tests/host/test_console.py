"""The operator console in a real browser: Playwright driving Debian's headless Chromium against Lily
served by hypercorn on loopback, with a real Redis and lily-twilio talking to its fake over HTTP.

Screenshots of every page go to the test's temporary folder; with LILY_CONSOLE_SCREENSHOTS=<dir>
(`nox -s screenshots`) the overview is also saved there as console-overview.png for README.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
import sample_echo_plugin
from live_server import LiveServer

from lily_host.console.sessions import COOKIE
from lily_host.testing import TEST_ADMIN_TOKEN, TEST_PUBLIC_URL, Harness, HarnessFactory
from lily_twilio.fake import FakeTwilio
from lily_twilio.testing import call_form, signed_headers

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ECHO_SECRET = "echo-secret"
BUSINESS = "+15551230000"
CALLER = "+15557654321"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="the console's browser tests need Debian's chromium at /usr/bin/chromium"
)


class Served(LiveServer):
    """The harness's app behind hypercorn on loopback (the harness already ran the app's startup)."""


@dataclass
class Scene:
    lily: Harness
    server: Served
    tenant_key: str
    call_sid: str
    failed_delivery: str
    dead_task: str
    doomed_task: str


@pytest.fixture
async def scene(lily_harness: HarnessFactory) -> AsyncIterator[Scene]:
    with FakeTwilio() as fake:
        env = {**fake.env(), "ECHO_SECRET": ECHO_SECRET}
        async with lily_harness(plugins=["twilio"], env=env, extra_modules={"echo": sample_echo_plugin}) as lily:
            await lily.create_tenant(
                "acme",
                name="Acme Washing",
                contact_phone="+15551239999",
                plugins={"twilio": {"business_numbers": [BUSINESS]}, "echo": {"numbers": [BUSINESS]}},
            )
            for index in range(3):
                await lily.create_tenant(f"tenant-{index}", name=f"Tenant {index}")
            _key_id, tenant_key = await lily.host.tenants.mint_key("acme", "console test")
            async with Served(lily) as server, httpx.AsyncClient(base_url=server.base) as client:
                # A simulated missed call, signed as Twilio signs it.
                form = call_form(caller=CALLER, to=BUSINESS)
                path = "/webhooks/twilio/voice"
                headers = signed_headers(fake.auth_token, TEST_PUBLIC_URL + path, form)
                assert (await client.post(path, content=urlencode(form), headers=headers)).status_code == 200
                # A delivery that failed: the handler's backend was down.
                await lily.host.redis.set("echo:broken", "1")
                body = json.dumps({"id": "evt-1", "to": BUSINESS, "text": "hello"}).encode()
                signature = hmac.new(ECHO_SECRET.encode(), body, hashlib.sha256).hexdigest()
                echo_headers = {"Content-Type": "application/json", "X-Echo-Signature": signature}
                answer = await client.post("/webhooks/echo/json", content=body, headers=echo_headers)
                assert answer.status_code == 500
                await lily.host.redis.delete("echo:broken")
                [failed], _ = await lily.host.webhook_log.list(tenant="acme", outcome="error")
                # A dead letter: a task whose provider refused its only attempt.
                await lily.host.redis.set("echo:record_broken", "1")
                dead_task = await lily.host.queue.schedule("echo.record", {"text": "x"}, tenant="acme", max_attempts=1)
                doomed = await lily.host.queue.schedule("echo.record", {"text": "y"}, tenant="acme", max_attempts=1)
                await lily.run_due()
                await lily.host.redis.delete("echo:record_broken")
                assert dead_task is not None and (await lily.host.queue.get(dead_task)).state == "dead"  # type: ignore[union-attr]
                assert doomed is not None
                yield Scene(lily, server, tenant_key, form["CallSid"], failed["id"], dead_task, doomed)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_operator_console_in_a_real_browser(scene: Scene, browser: Any, tmp_path: Path) -> None:
    base = scene.server.base
    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="America/Chicago")
    page = await context.new_page()
    page.set_default_timeout(10_000)

    async def shot(name: str) -> None:
        await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    # Signed out: the console sends us to sign in; a tenant key is refused there.
    await page.goto(f"{base}/console/")
    assert "/console/signin" in page.url
    await shot("signin")
    await page.fill("input[name=token]", scene.tenant_key)
    await page.click("button[type=submit]")
    assert "tenant API key" in await page.inner_text("main")
    await page.fill("input[name=token]", TEST_ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/console/")
    cookie = next(c for c in await context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # Secure in production

    # Overview: health per plugin and check, queue by type, webhooks of the last hour, local times.
    # The health report is made in the background (the page never waits for the providers): the
    # first view may say "checking"; a refresh shows the report.
    main = await page.inner_text("main")
    for _ in range(50):
        if "echo_api" in main:
            break
        assert "checking" in main
        await asyncio.sleep(0.2)
        await page.reload()
        main = await page.inner_text("main")
    assert "twilio" in main and "echo_api" in main and "echo.record" in main and "dead letters" in main
    assert "Webhooks, last hour" in main
    await shot("overview")
    if os.environ.get("LILY_CONSOLE_SCREENSHOTS"):
        target = Path(os.environ["LILY_CONSOLE_SCREENSHOTS"])
        await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copy, shots / "overview.png", target / "console-overview.png")

    # Webhooks: the missed call is in the log; its detail shows masked numbers; its trace a timeline.
    await page.click("nav >> text=Webhooks")
    row = page.locator("table.rows tbody tr", has_text="twilio").first
    assert "accepted" in await row.inner_text()
    await shot("webhooks")
    await row.locator("a.id").click()
    detail = await page.inner_text("main")
    assert scene.call_sid in detail and "+1******4321" in detail and CALLER not in detail
    assert "automations.missed_call" in detail  # the task the call created
    await shot("webhook")
    await page.click("a.button:has-text('Trace')")
    await page.wait_for_selector("ol.timeline li")
    timeline = await page.inner_text("ol.timeline")
    assert "twilio webhook accepted" in timeline and "automations.missed_call" in timeline
    assert "CST" in timeline or "CDT" in timeline  # times in the operator's zone
    await shot("trace")

    # The trace search takes a provider's id too.
    await page.goto(f"{base}/console/trace")
    await page.fill("input[name=id]", scene.call_sid)
    await page.click("button[type=submit]")
    assert "twilio webhook accepted" in await page.inner_text("ol.timeline")

    # Replay a failed delivery from its page.
    await page.goto(f"{base}/console/webhooks?outcome=error")
    await page.click(f"text={scene.failed_delivery}")
    assert "error" in await page.inner_text("dl.facts")
    await page.click("button:has-text('Replay')")
    await page.wait_for_selector("text=A replay of")
    assert "accepted" in await page.inner_text("dl.facts")
    await shot("replayed")
    replays, _ = await scene.lily.host.webhook_log.list(tenant="acme", replay_of=scene.failed_delivery)
    assert len(replays) == 1 and replays[0]["outcome"] == "accepted"

    # Bulk replay shows the count before anything is replayed.
    await page.goto(f"{base}/console/webhooks/replay?outcome=error&since=1h")
    assert await page.inner_text("#replay-count") == "1"
    await shot("bulk-replay")

    # Tasks: the dead letter with its error and attempts; Retry puts it back in the queue.
    await page.goto(f"{base}/console/tasks")
    row = page.locator("table.rows tbody tr", has_text=scene.dead_task)
    text = await row.inner_text()
    assert "echo provider refused the call" in text and "1/1" in text
    await shot("tasks")
    await row.locator("button:has-text('Retry')").click()
    await page.wait_for_selector("text=Retrying")
    task = await scene.lily.host.queue.get(scene.dead_task)
    assert task is not None and task.state == "due"
    await page.locator("table.rows tbody tr", has_text=scene.doomed_task).locator("button:has-text('Purge')").click()
    await page.wait_for_selector("text=Purged")
    assert await scene.lily.host.queue.get(scene.doomed_task) is None
    assert (await scene.lily.host.queue.stats()).dead == 0
    await page.goto(f"{base}/console/tasks/{scene.dead_task}")
    assert "echo provider refused the call" in await page.inner_text("main")
    await shot("task")

    # Tenants: a list with search, and a tenant's page with numbers and secrets masked.
    await page.goto(f"{base}/console/tenants?q=acm")
    assert await page.locator("table.rows tbody tr").count() == 1
    await shot("tenants")
    await page.click("text=acme")
    tenant_page = await page.inner_text("main")
    assert "Acme Washing" in tenant_page and "+1******0000" in tenant_page and BUSINESS not in tenant_page
    assert "suppressed numbers" in tenant_page
    await shot("tenant")

    # Audit: the console's own actions are there.
    await page.goto(f"{base}/console/audit?actor=console")
    audit = await page.inner_text("table.rows")
    assert (
        "POST /console/webhooks/<delivery_id>/replay" in audit and "POST /console/tasks/<path:task_id>/retry" in audit
    )
    await shot("audit")
    entries, _ = await scene.lily.host.audit.list(
        actor="console:admin:", action="POST /console/webhooks/<delivery_id>/replay"
    )
    assert entries and entries[0]["tenant"] == "acme" and entries[0]["outcome"] == "303"
    assert entries[0]["resource"] == {"delivery_id": scene.failed_delivery}
    # Outbox: a text whose recipient is in the middle of the night is listed as held, with why.
    now = scene.lily.clock.now()
    night = next(
        zone
        for zone in (f"Etc/GMT{offset:+d}" for offset in range(-12, 13))
        if 0 <= datetime.fromtimestamp(now, ZoneInfo(zone)).hour < 6
    )
    await scene.lily.host.messaging.queue_sms("acme", "+15557650000", template="missed_call", recipient_timezone=night)
    await scene.lily.run_due()
    await page.goto(f"{base}/console/outbox")
    held = await page.inner_text("#held")
    assert "quiet hours" in held and "+1******0000" in held and "Sorry we missed your call" in held
    await shot("outbox")

    # A state-changing request without the CSRF token is refused, even with the session cookie.
    answer = await page.request.post(f"{base}/console/tasks/retry-all", form={"x": "1"})
    assert answer.status == 403 and "CSRF" in await answer.text()
    answer = await page.request.post(f"{base}/console/tasks/retry-all", form={"csrf": "forged"})
    assert answer.status == 403

    # On a phone: the overview still reads.
    phone = await browser.new_context(
        viewport={"width": 390, "height": 844}, storage_state=await context.storage_state()
    )
    phone_page = await phone.new_page()
    await phone_page.goto(f"{base}/console/")
    assert await phone_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    await phone_page.screenshot(path=str(shots / "overview-phone.png"), full_page=True)
    await phone.close()

    # Sign out ends the session.
    await page.goto(f"{base}/console/")
    await page.click("text=Sign out")
    await page.wait_for_url("**/console/signin")
    await page.goto(f"{base}/console/tenants")
    assert "/console/signin" in page.url
    await context.close()

    # A tenant key in an Authorization header opens nothing either.
    keyed = await browser.new_context(extra_http_headers={"Authorization": f"Bearer {scene.tenant_key}"})
    keyed_page = await keyed.new_page()
    await keyed_page.goto(f"{base}/console/tenants/acme")
    assert "/console/signin" in keyed_page.url and "Acme Washing" not in await keyed_page.content()
    await keyed.close()
    assert sorted(path.name for path in shots.iterdir()) == sorted(
        f"{name}.png"
        for name in (
            "signin",
            "overview",
            "webhooks",
            "webhook",
            "trace",
            "replayed",
            "bulk-replay",
            "tasks",
            "task",
            "tenants",
            "tenant",
            "audit",
            "outbox",
            "overview-phone",
        )
    )
