"""`lily dev` runs lily-chatwoot with its local stand-in: the simulation gets a reply from the fake Chatwoot."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lily_host.dev.embedded_redis import free_port

PROVIDER_VARIABLES = ("TWILIO_", "STRIPE_", "CALCOM_", "GOOGLE_", "AWS_", "S3_", "CHATWOOT_", "REDIS_URL", "LILY_")


def test_lily_dev_starts_the_fake_chatwoot_and_the_simulation_is_answered(tmp_path: Path) -> None:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(PROVIDER_VARIABLES)}
    env["CHATWOOT_REPLY_JITTER"] = "0-0"  # the reply at once: the test does not wait 10-45 s
    log_path = tmp_path / "dev.log"
    lily = [sys.executable, "-m", "lily_host.cli.main"]
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [*lily, "dev", "--port", str(port)], cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while "Lily is running" not in log_path.read_text():
                assert process.poll() is None, f"lily dev exited:\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"lily dev did not start:\n{log_path.read_text()}"
                time.sleep(0.2)
            banner = log_path.read_text()
            found = re.search(
                r"chatwoot +fake Chatwoot at (http://127\.0\.0\.1:\d+) \(replies: curl -H '([^']+)' (\S+)\)", banner
            )
            assert found, banner
            fake_url, header, conversation_url = found.groups()
            assert "lily simulate chatwoot.message_created --tenant demo" in banner
            sent = subprocess.run(
                [*lily, "simulate", "chatwoot.message_created", "--tenant", "demo", "--url", base],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert sent.returncode == 0, sent.stdout + sent.stderr
            assert '"replied": true' in sent.stdout
            name, _, value = header.partition(": ")
            replies: list[dict[str, object]] = []
            deadline = time.monotonic() + 20
            while not replies and time.monotonic() < deadline:
                replies = httpx.get(conversation_url, headers={name: value}, timeout=5).json()["payload"]
                time.sleep(0.2)
            assert conversation_url.startswith(fake_url)
            assert replies and "quote" in str(replies[0]["content"]), "the demo tenant's 'price' rule answered"
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
