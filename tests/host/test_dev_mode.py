"""README's first command, `lily dev`, end to end: embedded Redis, demo tenant, simulations, outbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest

from lily_host.dev.embedded_redis import free_port

T = TypeVar("T")

PROVIDER_VARIABLES = ("TWILIO_", "STRIPE_", "CALCOM_", "GOOGLE_", "AWS_", "S3_", "REDIS_URL", "LILY_")


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], subprocess.Popen[str]]]:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(PROVIDER_VARIABLES)}
    # The missed-call text waits 10-45 s by default; the flows below should not.
    env["LILY_JITTER_SECONDS"] = "0-1"
    log_path = tmp_path / "dev.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "lily_host.cli.main", "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"lily dev exited:\n{log_path.read_text()}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("lily dev did not answer within 60 s")
        time.sleep(0.2)
    try:
        yield base, {**env, "LILY_DATA_DIR": str(tmp_path / ".lily"), "DEV_LOG": str(log_path)}, process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()


def test_lily_dev_runs_everything_locally(
    dev_server: tuple[str, dict[str, str], subprocess.Popen[str]], tmp_path: Path
) -> None:
    base, env, _process = dev_server
    shared = (Path(env["LILY_DATA_DIR"]) / "dev.env").read_text()
    assert "REDIS_URL=redis://127.0.0.1:" in shared, "an embedded Redis was started"
    assert httpx.get(base + "/health", timeout=10).json() == {"status": "ok"}  # anonymous: the status only
    admin = {"Authorization": "Bearer dev-admin-token"}
    health = httpx.get(base + "/health", headers=admin, timeout=10)
    assert health.status_code == 200, health.text
    plugins = health.json()["plugins"]
    for name in ("twilio", "stripe", "calcom", "gcal", "s3"):
        assert name in plugins, f"plugin {name} is not installed in this environment"
    # dev credentials say so, instead of "ok"
    assert plugins["twilio"]["state"] == "development"
    assert health.json()["queue"]["workers"]["live"] == 1, "lily dev's embedded worker registers"
    # The banner's one-click console link signs in, once.
    banner = (tmp_path / "dev.log").read_text()
    link = next(line.split()[1] for line in banner.splitlines() if line.strip().startswith("Console:"))
    assert link.startswith(base + "/console/signin/") and "dev-admin-token" not in link
    signed_in = httpx.get(link, timeout=10)
    assert signed_in.status_code == 303 and "lily_console" in signed_in.cookies
    overview = httpx.get(base + "/console/", cookies=signed_in.cookies, timeout=10)
    assert overview.status_code == 200 and "Overview" in overview.text and "twilio" in overview.text
    assert httpx.get(link, timeout=10).status_code == 403
    listing = subprocess.run(
        [sys.executable, "-m", "lily_host.cli.main", "simulate"], env=env, capture_output=True, text=True
    )
    assert "twilio.sms_help" in listing.stdout
    sent = subprocess.run(
        [sys.executable, "-m", "lily_host.cli.main", "simulate", "twilio.sms_help", "--tenant", "demo", "--url", base],
        env=env,
        capture_output=True,
        text=True,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    deadline = time.monotonic() + 20
    messages: list[dict[str, str]] = []
    while time.monotonic() < deadline and not messages:
        messages = httpx.get(base + "/dev/outbox", timeout=5).json()["messages"]
        time.sleep(0.2)
    assert messages, "the HELP reply reached the outbox"
    assert "STOP" in messages[0]["body"]
    outbox = subprocess.run(
        [sys.executable, "-m", "lily_host.cli.main", "outbox"], env=env, capture_output=True, text=True
    )
    assert "STOP" in outbox.stdout
    # The reminder and quote flows (their texts are checked on a manual clock in test_flow_simulations.py:
    # here the real clock may be inside quiet hours, where the pipeline holds them for the morning).
    assert "lily.reminder_flow" in listing.stdout and "lily.quote_flow" in listing.stdout
    for flow in ("lily.reminder_flow", "lily.quote_flow"):
        ran = subprocess.run(
            [sys.executable, "-m", "lily_host.cli.main", "simulate", flow, "--tenant", "demo", "--url", base],
            env=env,
            capture_output=True,
            text=True,
        )
        assert ran.returncode == 0 and "-> 202" in ran.stdout, ran.stdout + ran.stderr


def lily(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lily_host.cli.main", *args], env=env, capture_output=True, text=True, timeout=60
    )


def wait_for(check: Callable[[], T | None], what: str, seconds: float = 20) -> T:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def outbox_to(base: str, number: str, words: str, *, reply: bool = False) -> Callable[[], dict[str, str] | None]:
    """The text to ``number`` containing ``words``: sent, or (inside quiet hours) held for the morning.

    A ``reply`` (the answer to STOP/START/HELP) goes at once, day or night."""

    def check() -> dict[str, str] | None:
        outbox = httpx.get(base + "/dev/outbox", timeout=5).json()
        for message in outbox["messages"] + outbox["held"]:
            if message["to"] == number and words in message["body"]:
                expected = "held" if in_demo_quiet_hours() and not reply else "sent"
                assert message["status"] == expected or near_a_window_edge(), message
                if message["status"] == "held":
                    assert message["reason"] == "quiet hours" and message["until"] > time.time(), message
                return dict(message)
        return None

    return check


def demo_local_hour(at: float) -> float:
    moment = datetime.fromtimestamp(at, ZoneInfo("America/New_York"))
    return moment.hour + moment.minute / 60


def in_demo_quiet_hours() -> bool:
    """The demo tenant's default quiet hours, 21:00-09:00 New York (stricter than the federal 8-21)."""
    hour = demo_local_hour(time.time())
    return hour >= 21 or hour < 9


def near_a_window_edge() -> bool:
    """Within two minutes of 09:00 or 21:00 New York, the text may have been judged on either side."""
    hour = demo_local_hour(time.time())
    return min(abs(hour - 9), abs(hour - 21)) < 2 / 60


def said_duplicate(result: subprocess.CompletedProcess[str]) -> bool:
    return any(line.startswith("duplicate: ") for line in result.stdout.splitlines())


def printed_commands(log: str) -> list[list[str]]:
    """The `lily simulate ...` lines of the banner, as argument lists (without the leading `lily`)."""
    commands = []
    for line in log.splitlines():
        command = line.split("#", 1)[0].split()
        if len(command) > 1 and command[1] == "simulate":
            commands.append(command[1:])
    return commands


def test_every_printed_flow_works_with_no_accounts(
    dev_server: tuple[str, dict[str, str], subprocess.Popen[str]],
) -> None:
    base, env, _process = dev_server
    log = Path(env["DEV_LOG"])
    banner = wait_for(lambda: log.read_text() if "lily outbox" in log.read_text() else None, "the banner")
    assert "outbox)" not in banner.split("stripe", 1)[1].split("\n", 1)[0], "no outbox claim for Stripe"
    commands = {command[1]: command for command in printed_commands(banner)}
    for flow in (
        "twilio.missed_call",
        "twilio.sms_stop",
        "calcom.booking_created",
        "stripe.checkout",
        "twilio.mms_photo",
        "jobs.done",
    ):
        assert flow in commands, f"lily dev offers {flow}"

    def run(name: str) -> str:
        result = lily(env, *commands[name])  # exactly as printed: no --url, the dev folder's Lily
        assert result.returncode == 0, result.stdout + result.stderr
        assert not said_duplicate(result), "a fresh id each run"
        return result.stdout

    # Missed call → text-back; then STOP → suppressed with one confirmation.
    run("twilio.missed_call")
    wait_for(outbox_to(base, "+15555550123", "Demo Pressure Washing"), "the missed-call text")
    run("twilio.sms_stop")
    wait_for(outbox_to(base, "+15555550123", "unsubscribed", reply=True), "the STOP confirmation")

    # Booking → a confirmation to the customer (not the tenant's own phone) and a calendar event.
    run("calcom.booking_created")
    wait_for(outbox_to(base, "+15555550142", "confirmed"), "the booking confirmation to the customer")
    assert outbox_to(base, "+15555550100", "confirmed")() is None, "never texted to the tenant's own phone"
    wait_for(lambda: "calendar event written" in log.read_text(), "the calendar event (fake Google)")

    # Checkout in the fake Stripe → the tenant's plan.
    run("stripe.checkout")
    admin = {"Authorization": "Bearer dev-admin-token"}

    def plan() -> str | None:
        tenant = httpx.get(base + "/api/tenants/demo", headers=admin, timeout=5).json()
        return str(tenant.get("plan")) if tenant.get("plan") == "starter" else None

    wait_for(plan, "plan starter after checkout")

    # MMS photo → an object in the local S3 (moto).
    run("twilio.mms_photo")
    shared = dict(line.split("=", 1) for line in (Path(env["LILY_DATA_DIR"]) / "dev.env").read_text().splitlines())
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=shared["AWS_ENDPOINT_URL"],
        aws_access_key_id=shared["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=shared["AWS_SECRET_ACCESS_KEY"],
        region_name=shared["AWS_REGION"],
    )
    wait_for(
        lambda: s3.list_objects_v2(Bucket=shared["S3_BUCKET_NAME"], Prefix="tenants/demo/").get("KeyCount"),
        "the photo in S3",
    )

    # Job done → a review request scheduled a day out; `lily tasks run-now` sends it now.
    run("jobs.done")

    def review_task() -> str | None:
        listing = lily(env, "tasks", "list").stdout
        return next((line.split()[0] for line in listing.splitlines() if "reviews.send_request:" in line), None)

    task_id = wait_for(review_task, "the scheduled review request")
    ran = lily(env, "tasks", "run-now", task_id)
    assert ran.returncode == 0, ran.stderr
    wait_for(outbox_to(base, "+15555550167", "review"), "the review request text")

    # The same id twice: the second answer says duplicate.
    first = lily(env, "simulate", "twilio.sms", "--id", "SMsame0001")
    again = lily(env, "simulate", "twilio.sms", "--id", "SMsame0001")
    assert not said_duplicate(first) and said_duplicate(again)


def test_a_second_lily_dev_here_touches_nothing(
    dev_server: tuple[str, dict[str, str], subprocess.Popen[str]],
) -> None:
    base, env, process = dev_server
    shared = Path(env["LILY_DATA_DIR"]) / "dev.env"
    before = shared.read_text()
    port = base.rsplit(":", 1)[1]
    second = subprocess.run(
        [sys.executable, "-m", "lily_host.cli.main", "dev", "--port", str(free_port())],
        cwd=Path(env["LILY_DATA_DIR"]).parent,
        env={name: value for name, value in env.items() if name not in ("LILY_DATA_DIR", "DEV_LOG")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = second.stdout + second.stderr
    assert second.returncode == 1 and "Traceback" not in output
    assert output.strip() == (
        f"Error: Lily dev is already running here (pid {process.pid}, port {port}); "
        "use it, or stop it first (Ctrl-C in its terminal)"
    )
    assert shared.read_text() == before
    assert lily(env, "outbox").returncode == 0, "the first one still answers its CLI"
