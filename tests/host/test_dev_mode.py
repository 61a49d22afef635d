"""README's first command, `lily dev`, end to end: embedded Redis, demo tenant, simulations, outbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lily_host.dev.embedded_redis import free_port

PROVIDER_VARIABLES = ("TWILIO_", "STRIPE_", "CALCOM_", "GOOGLE_", "AWS_", "S3_", "REDIS_URL", "LILY_")


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], subprocess.Popen[str]]]:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(PROVIDER_VARIABLES)}
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
        yield base, {**env, "LILY_DATA_DIR": str(tmp_path / ".lily")}, process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()


def test_lily_dev_runs_everything_locally(dev_server: tuple[str, dict[str, str], subprocess.Popen[str]]) -> None:
    base, env, _process = dev_server
    shared = (Path(env["LILY_DATA_DIR"]) / "dev.env").read_text()
    assert "REDIS_URL=redis://127.0.0.1:" in shared, "an embedded Redis was started"
    health = httpx.get(base + "/health", timeout=10)
    assert health.status_code == 200, health.text
    plugins = health.json()["plugins"]
    for name in ("twilio", "stripe", "calcom", "gcal", "s3"):
        assert name in plugins, f"plugin {name} is not installed in this environment"
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
