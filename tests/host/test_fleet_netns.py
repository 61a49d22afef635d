"""Many hosts: Lily as a small fleet, each machine its own network namespace (ip netns + veth).

Redis on one host, two `lily serve` hosts, two `lily worker` hosts, all on a bridge made (and
removed) by the test. Missed-call webhooks are driven at both serve hosts while one serve host and
one worker host are SIGKILLed and later restarted; a delivery that fails is retried like a provider
does (at the other serve host). At the end every accepted call got its text-back, exactly one per
caller: 0 tasks lost, 0 duplicate texts.

Needs root and a kernel that lets it make namespaces, veth pairs and a bridge; skipped otherwise,
with the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis
from twilio.request_validator import RequestValidator

from lily_host.config.host_settings import HostSettings
from lily_host.dev.embedded_redis import find_redis_server
from lily_host.web.app import build_host

PUBLIC_URL = "https://lily.fleet"
PATH = "/webhooks/twilio/voice"
AUTH_TOKEN = "fleet-auth-token-0123456789abcdef"
BUSINESS = "+15125550100"
SUBNET = "10.231.7"
PORT = 8000
#: A fixed delay before each text goes out: the kill lands while webhooks and text-back tasks are
#: in flight but before any text is being handed over (a SIGKILL between handing a text to the
#: channel and recording it would resend it: at-least-once, which is not what this test is about).
JITTER = "4-4"
CALLS = 60
TAG = f"lf{os.getpid() % 100000}"


def _ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", *(["netns", "exec", namespace, "ip"] if namespace else []), *args]
    subprocess.run(command, check=True, capture_output=True, text=True)


@dataclass
class Fleet:
    """A bridge and one namespace per host; ``address(name)`` is the host's address on the bridge."""

    names: list[str]
    bridge: str = f"{TAG}br"
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def namespace(self, name: str) -> str:
        return f"{TAG}-{name}"

    def address(self, name: str) -> str:
        return f"{SUBNET}.{self.names.index(name) + 2}"

    def build(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{SUBNET}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index, name in enumerate(self.names):
            namespace, outside, inside = self.namespace(name), f"{TAG}o{index}", f"{TAG}i{index}"
            _ip("netns", "add", namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("addr", "add", f"{self.address(name)}/24", "dev", inside, namespace=namespace)
            _ip("link", "set", inside, "up", namespace=namespace)
            _ip("link", "set", "lo", "up", namespace=namespace)

    def run(self, name: str, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.processes[name] = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace(name), *command],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=open(cwd / f"{name}.log", "ab"),  # noqa: SIM115  # the child owns it
            start_new_session=True,  # its own process group: hypercorn's children die with it
        )

    def kill(self, name: str, signum: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signum)
            process.wait(timeout=30)

    def teardown(self) -> None:
        for name in list(self.processes):
            try:
                self.kill(name, signal.SIGTERM)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                self.kill(name, signal.SIGKILL)
        for name in self.names:
            subprocess.run(["ip", "netns", "del", self.namespace(name)], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("the fleet test needs Linux, root and iproute2 (ip netns) to make network namespaces")
    built = Fleet(["redis", "serve1", "serve2", "worker1", "worker2"])
    try:
        built.build()
    except subprocess.CalledProcessError as error:
        built.teardown()
        pytest.skip(f"this kernel refuses network namespaces or veth/bridge links: {error.stderr.strip()}")
    try:
        yield built
    finally:
        built.teardown()


def wait_until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, redis.RedisError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def listening(address: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address, port)) == 0


def missed_call(index: int) -> tuple[bytes, str]:
    params = {
        "AccountSid": "AC" + "00" * 16,
        "CallSid": f"CAfleet{index:026d}",
        "CallStatus": "no-answer",
        "Direction": "inbound",
        "From": f"+1555301{index:04d}",
        "To": BUSINESS,
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + PATH, params)
    return urlencode(params).encode(), signature


async def post(address: str, body: bytes, signature: str) -> int:
    """One delivery on its own connection; 0 when the host is not there."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, PORT), timeout=2)
    except (OSError, TimeoutError):
        return 0
    try:
        writer.write(
            (
                f"POST {PATH} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\nConnection: close\r\n\r\n"
            ).encode()
            + body
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        return int(head[9:12])
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return 0
    finally:
        writer.close()


def midday_zone() -> str:
    """A fixed-offset zone where it is 13:00-13:59 now. The callers' numbers (555: no area code with a
    state rule) are texted in the tenant's zone, so the federal 8:00-21:00 window, which no setting
    turns off, stays open for the whole test at whatever hour it runs."""
    offset = (13 - time.gmtime().tm_hour + 12) % 24 - 12  # local = UTC + offset, in -12..11
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"  # Etc/GMT-5 is UTC+5


async def add_tenant(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The business whose number the calls go to (its quiet hours off, its day at noon: the test
    runs at any hour)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    host = build_host(HostSettings())
    try:
        await host.tenants.create(
            "fleet",
            "Fleet Wash",
            timezone=midday_zone(),
            quiet_hours_start="00:00",
            quiet_hours_end="00:00",
            plugins={"twilio": {"business_numbers": [BUSINESS]}},
        )
    finally:
        await host.redis.aclose()


def test_a_fleet_loses_nothing_and_texts_once_while_hosts_die(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_address = fleet.address("redis")
    fleet.run(
        "redis",
        [find_redis_server(), "--port", "6379", "--bind", redis_address, "--protected-mode", "no", "--save", ""],
        dict(os.environ),
        tmp_path,
    )
    wait_until(lambda: redis.Redis(host=redis_address, socket_timeout=1).ping(), "redis")
    env = {
        **os.environ,
        "REDIS_URL": f"redis://{redis_address}:6379/0",
        "LILY_ENV": "development",
        "LILY_PUBLIC_URL": PUBLIC_URL,
        "LILY_ADMIN_TOKEN": "fleet-admin",
        "LILY_SECRET_KEY": "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMDAwMDA=",
        "LILY_DATA_DIR": str(tmp_path / "data"),
        "LILY_LOG_LEVEL": "WARNING",
        "LILY_PLUGINS": "twilio",
        "LILY_JITTER_SECONDS": JITTER,
        "LILY_SMS_CHANNEL": "outbox",
        "TWILIO_ACCOUNT_SID": "AC" + "00" * 16,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    asyncio.run(add_tenant(env, monkeypatch))
    lily = [sys.executable, "-m", "lily_host.cli.main"]

    def serve(name: str) -> None:
        fleet.run(name, [*lily, "serve", "--bind", f"{fleet.address(name)}:{PORT}"], env, tmp_path)

    def work(name: str) -> None:
        fleet.run(name, [*lily, "worker", "--lease", "3", "--concurrency", "8"], env, tmp_path)

    for name in ("serve1", "serve2"):
        serve(name)
    for name in ("worker1", "worker2"):
        work(name)
    for name in ("serve1", "serve2"):
        wait_until(lambda name=name: listening(fleet.address(name), PORT), f"{name} to listen")

    client = redis.Redis(host=redis_address, decode_responses=True)
    accepted: set[int] = set()
    attempts: list[tuple[int, str, int]] = []

    async def deliver(indexes: range) -> None:
        """Every call until it is accepted, alternating serve hosts (a provider retries elsewhere)."""

        async def one(index: int) -> None:
            body, signature = missed_call(index)
            for attempt in range(60):
                host = ("serve1", "serve2")[(index + attempt) % 2]
                status = await post(fleet.address(host), body, signature)
                attempts.append((index, host, status))
                if 200 <= status < 300:
                    accepted.add(index)
                    return
                await asyncio.sleep(0.2)

        for start in range(indexes.start, indexes.stop, 8):
            await asyncio.gather(*(one(i) for i in range(start, min(start + 8, indexes.stop))))

    asyncio.run(deliver(range(0, CALLS // 3)))
    # Mid-stream (text-back tasks in flight, no text yet handed over): kill one host of each kind.
    assert client.llen("lily:outbox") == 0, "texts went out before the kill: the machine is too slow for JITTER"
    fleet.kill("serve1")
    fleet.kill("worker1")
    asyncio.run(deliver(range(CALLS // 3, 2 * CALLS // 3)))
    serve("serve1")
    work("worker1")
    wait_until(lambda: listening(fleet.address("serve1"), PORT), "serve1 to listen again")
    asyncio.run(deliver(range(2 * CALLS // 3, CALLS)))
    assert accepted == set(range(CALLS))
    assert any(status == 0 for _, host, status in attempts if host == "serve1"), "serve1 was never found dead"

    def every_text_sent() -> bool:
        return client.llen("lily:outbox") >= CALLS and client.zcard("lily:{q:default}:due") == 0

    wait_until(every_text_sent, "every text-back", timeout=60)
    time.sleep(1.0)  # anything sent twice would show up now
    texts = [json.loads(raw) for raw in client.lrange("lily:outbox", 0, -1)]
    callers = [text["to"] for text in texts]
    assert sorted(callers) == sorted(f"+1555301{index:04d}" for index in range(CALLS)), "lost or duplicate texts"
    assert client.zcard("lily:{q:default}:inflight") == 0
    assert client.zcard("lily:{q:default}:dead") == 0
