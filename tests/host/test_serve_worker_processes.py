"""`lily serve`, `lily worker` and the CLI as real processes on the test Redis (a three-primary
cluster under LILY_TEST_REDIS=cluster, noxfile.py's CLUSTER_TESTS): a tenant made with the CLI, a
signed Twilio text over real HTTP to `lily serve`, the reply sent by `lily worker` (the outbox), the
tenant deleted and its texts erased by the worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from lily_host.dev.embedded_cluster import RedisClusterGroup
from lily_host.dev.embedded_redis import RedisServer, free_port
from lily_host.testing import HARNESS_ENV, flush, on_cluster, redis_env

T = TypeVar("T")
NUMBER = "+15005550006"


def lily(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lily_host.cli.main", *args], env=env, capture_output=True, text=True)


def wait_for(probe: Callable[[], T | None], what: str, seconds: float = 30.0) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {seconds:.0f} s")


@pytest.fixture
def env(redis_server: RedisServer | RedisClusterGroup, tmp_path: Path) -> Iterator[dict[str, str]]:
    flush(redis_server)
    port = free_port()
    base = {name: value for name, value in os.environ.items() if not name.startswith(("LILY_", "TWILIO_", "REDIS_"))}
    yield {
        **base,
        **HARNESS_ENV,
        **redis_env(redis_server),
        "LILY_PLUGINS": "twilio",
        "LILY_DEV_CREDENTIALS": "1",  # Twilio's development values: texts go to the outbox
        "LILY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "LILY_DATA_DIR": str(tmp_path / ".lily"),
        "PORT": str(port),
    }
    flush(redis_server)


@pytest.fixture
def processes(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`lily serve` and `lily worker`, started and stopped (SIGTERM); the server's base URL."""
    base = env["LILY_PUBLIC_URL"]
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("serve", "worker")}
    commands = {"serve": ["serve", "--bind", f"127.0.0.1:{env['PORT']}"], "worker": ["worker"]}
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "lily_host.cli.main", *command],
            env=env,
            stdout=logs[name],
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        for name, command in commands.items()
    }

    def answering() -> bool:
        for name, process in started.items():
            if process.poll() is not None:
                raise AssertionError(f"lily {name} exited:\n{(tmp_path / f'{name}.log').read_text()}")
        try:
            return httpx.get(base + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answering, "lily serve answering", 60)
        yield base
    finally:
        for process in started.values():
            process.send_signal(signal.SIGTERM)
        for process in started.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()


def message_keys(env: dict[str, str], tenant: str) -> list[bytes]:
    async def scan() -> list[bytes]:
        url = env["REDIS_URL"]
        client: Any = RedisCluster.from_url(url) if on_cluster() else Redis.from_url(url)
        try:
            return [key async for key in client.scan_iter(match=f"lily:{{t:{tenant}}}:sms:message:*")]
        finally:
            await client.aclose()

    return asyncio.run(scan())


def test_serve_worker_and_the_cli_run_a_tenants_texts_and_its_erasure(env: dict[str, str], processes: str) -> None:
    added = lily(env, "tenants", "add", "acme", "--name", "Acme")
    assert added.returncode == 0, added.stdout + added.stderr
    numbered = lily(env, "tenants", "set", "acme", f"twilio.business_numbers={NUMBER}")
    assert numbered.returncode == 0, numbered.stdout + numbered.stderr

    sent = lily(env, "simulate", "twilio.sms_help", "--tenant", "acme", "--url", processes)
    assert sent.returncode == 0, sent.stdout + sent.stderr

    def replied() -> list[dict[str, Any]]:
        listed = lily(env, "outbox", "--json")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        data = json.loads(listed.stdout)
        messages = data["messages"] if isinstance(data, dict) else data
        return [message for message in messages if "STOP" in str(message.get("body", ""))]

    wait_for(replied, "the worker's HELP reply in the outbox")
    assert message_keys(env, "acme"), "the reply's message record"

    deleted = lily(env, "tenants", "delete", "acme", "--yes")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    wait_for(lambda: not message_keys(env, "acme"), "the worker erasing the tenant's texts")
    listed = lily(env, "tenants", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
