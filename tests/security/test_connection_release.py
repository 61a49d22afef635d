"""An early answer releases its connection whatever the client does with its body.

Found in review: a POST with a chunked body of a dozen small chunks, answered 415 (or 403 "must be
https" in production) before the body was read, left the server's socket open for good: hypercorn
keeps only a few body pieces queued for the app, so its read loop blocked and never saw the client
leave. These tests run the real `hypercorn` in its own process and count that process's descriptors.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from world import STRONG_ADMIN_TOKEN, World

from lily_host.dev.embedded_redis import RedisServer, free_port

#: Requests answered before their body is read: every fixed webhook path (the front door), a path
#: with a converter and an admin route (the Quart door), each with an unacceptable content type.
EARLY_ANSWERS = [
    "/webhooks/twilio/sms",
    "/webhooks/twilio/voice",
    "/webhooks/twilio/status",
    "/webhooks/stripe",
    "/webhooks/calcom",
    "/webhooks/calcom/acme",
    "/api/tenants",
]
CONNECTIONS_PER_PATH = 12


class Server:
    """`hypercorn lily_host.web.asgi:app` in its own process (no worker processes: its pid is the server)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hypercorn",
                "--workers",
                "0",
                "-b",
                f"127.0.0.1:{self.port}",
                "lily_host.web.asgi:app",
            ],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while self.get("/healthz") != 200:
            assert self.process.poll() is None, "hypercorn exited"
            assert time.monotonic() < deadline, "hypercorn did not answer /healthz within 60 s"
            time.sleep(0.1)

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def settled_descriptors(self, baseline: int) -> int:
        """The descriptor count once it stops falling (closing is asynchronous), at most 5 s."""
        deadline = time.monotonic() + 5
        count = self.descriptors()
        while count > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
            count = self.descriptors()
        return count

    def get(self, path: str) -> int | None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: lily.test\r\nConnection: close\r\n\r\n".encode())
                return int(sock.recv(64)[9:12])
        except (OSError, ValueError):
            return None

    def early_answer(self, path: str, *, close_without_reading: bool = False) -> int | None:
        """POST a dozen 1-byte chunks as text/plain; read the answer (or not) and close normally."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: lily.test\r\nContent-Type: text/plain\r\n"
            f"Authorization: Bearer {STRONG_ADMIN_TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(head.encode() + b"1\r\na\r\n" * 12)  # no last chunk: the body never ends
            if close_without_reading:
                return None
            return read_answer(sock)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def read_answer(sock: socket.socket) -> int:
    """Read one whole answer (head and Content-Length body), so that closing afterwards is a normal FIN.

    (Closing with unread bytes would send a reset, which the server notices whatever it does.)
    """
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(4096)
    return int(head[9:12])


@pytest.fixture(scope="module", params=["development", "production"])
def server(request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per environment for the module: each test measures against its own baseline."""
    tmp_path = tmp_path_factory.mktemp(f"served-{request.param}")
    redis = RedisServer(tmp_path / "redis").start()
    env = {
        **world.env(request.param),
        "REDIS_URL": redis.url,
        "LILY_DATA_DIR": str(tmp_path / "data"),
        # Every request here is refused on purpose, from one address: the load shedder's per-source
        # limit of rejected webhooks would soon answer 429 instead (tests/host/test_load_shedding.py).
        "LILY_BAD_REQUEST_BURST": "0",
        # The webhook log's appends ride the queue's group commit, which may open a second pooled Redis
        # connection mid-test: the descriptor count would read it as a leaked client connection.
        "LILY_WEBHOOK_LOG": "false",
    }
    served = Server(env)
    try:
        yield served
    finally:
        served.stop()
        redis.stop()


def test_early_answers_release_their_connections(server: Server) -> None:
    baseline = server.descriptors()
    statuses = set()
    for path in EARLY_ANSWERS:
        for _ in range(CONNECTIONS_PER_PATH):
            statuses.add(server.early_answer(path))
    # 415 in development; in production the webhooks answer 403 (not https) first.
    assert statuses <= {403, 415}, statuses
    assert server.settled_descriptors(baseline) <= baseline
    assert server.get("/healthz") == 200


def test_a_body_announced_too_large_releases_its_connection(server: Server) -> None:
    """413 on the announced length, answered while the (never-ending) body is still arriving."""
    baseline = server.descriptors()
    for path in ("/webhooks/stripe", "/webhooks/twilio/sms", "/webhooks/calcom/acme"):
        for _ in range(CONNECTIONS_PER_PATH):
            head = (
                f"POST {path} HTTP/1.1\r\nHost: lily.test\r\nX-Forwarded-Proto: https\r\n"
                "Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n"
            )
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(head.encode() + b"{" * 64)
                assert read_answer(sock) == 413
    assert server.settled_descriptors(baseline) <= baseline
    assert server.get("/healthz") == 200


def test_a_client_that_closes_without_reading_the_answer_is_released_too(server: Server) -> None:
    baseline = server.descriptors()
    for path in EARLY_ANSWERS:
        for _ in range(CONNECTIONS_PER_PATH):
            server.early_answer(path, close_without_reading=True)
    assert server.settled_descriptors(baseline) <= baseline
    assert server.get("/healthz") == 200


def test_a_client_that_keeps_its_connection_open_is_closed_by_the_server(server: Server) -> None:
    """The server, not the client, ends a request whose body it will not read: no half-open socket."""
    head = (
        "POST /webhooks/twilio/sms HTTP/1.1\r\nHost: lily.test\r\nContent-Type: text/plain\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode() + b"1\r\na\r\n" * 12)
        received = b""
        while chunk := sock.recv(4096):  # ends only when the server closes its side
            received += chunk
    assert int(received[9:12]) in (403, 415)
