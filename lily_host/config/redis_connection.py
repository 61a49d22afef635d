"""The one place Lily makes its Redis client: a plain URL, a Sentinel-managed primary, or a Cluster.

Every process (``lily serve``, ``lily worker``, the CLI, ``lily dev``) builds its client with
:func:`redis_client` from the host settings, so they all follow the same configuration:

- ``REDIS_URL=redis://host:6379/0``: one Redis (``rediss://`` for TLS, ``unix://`` for a socket).
- ``REDIS_SENTINELS=h1:26379,h2:26379,h3:26379`` + ``REDIS_SENTINEL_SERVICE=lily``: the primary
  that these sentinels name. Or the same in one URL: ``redis+sentinel://h1:26379,h2:26379/lily/0``.

- ``REDIS_CLUSTER=1`` + ``REDIS_URL=redis://node:6379``: a Redis Cluster, found from that seed
  node; or ``redis+cluster://h1:6379,h2:6379`` (several seeds). See docs/operations.md for the
  slot layout: the task queue lives in one slot per queue.

With Sentinel the client asks the sentinels for the primary when it connects, and again when a
connection breaks or the server it reached turns out to be a replica (after a failover the old
primary comes back as one): every process follows a failover by itself, without a restart.

The client creates no connection here; the first command connects. Whether the configured Redis
answers is checked here too (:func:`check_redis`, :func:`require_redis`, :func:`ensure_redis`), with
the one-line messages of :mod:`lily_host.config.redis_url`, for every kind of target.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from lily_host.config.redis_url import EXAMPLE_URL, REACH_TIMEOUT, check_redis_url, display_url, ensure_reachable
from lily_host.plugin_api.errors import ConfigurationError
from lily_host.plugin_api.key_slots import close_node_clients

if TYPE_CHECKING:
    from lily_host.config.host_settings import HostSettings

__all__ = [
    "RedisTarget",
    "check_redis",
    "ensure_redis",
    "is_cluster",
    "redis_client",
    "redis_target",
    "require_redis",
]

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
DEFAULT_SENTINEL_PORT = 26379
#: How long a sentinel has to answer "who is the primary?" before the next one is asked.
SENTINEL_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where Lily's Redis is: a URL, or sentinels and the name of the primary they watch."""

    url: str | None = None
    #: Seed nodes of a Redis Cluster (empty: not a cluster).
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    password: str | None = None
    tls: bool = False
    #: The variable that named it, for messages.
    variable: str = "REDIS_URL"

    @property
    def is_sentinel(self) -> bool:
        return bool(self.sentinels)

    @property
    def is_cluster(self) -> bool:
        return bool(self.cluster_nodes)

    def describe(self) -> str:
        """Where, for messages and logs (no password)."""
        if self.is_sentinel:
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"primary {self.service!r} of sentinels {hosts}"
        if self.is_cluster:
            return "Redis Cluster via " + ",".join(f"{host}:{port}" for host, port in self.cluster_nodes)
        return display_url(self.url or "")


def redis_target(settings: HostSettings) -> RedisTarget | None:
    """The configured Redis, or None when nothing is configured. Bad settings raise one clear line."""
    url = settings.redis_url
    if settings.redis_sentinels:
        if url:
            raise ConfigurationError(
                f"REDIS_URL={display_url(url)!r} and REDIS_SENTINELS are both set; "
                "unset one of them (REDIS_SENTINELS needs REDIS_SENTINEL_SERVICE beside it)"
            )
        if not settings.redis_sentinel_service:
            raise ConfigurationError(
                "REDIS_SENTINELS is set but REDIS_SENTINEL_SERVICE is not; set it to the name the sentinels "
                "monitor (the `sentinel monitor <name> ...` line of their configuration)"
            )
        sentinels = tuple(_host_port(entry, "REDIS_SENTINELS") for entry in settings.redis_sentinels)
        return RedisTarget(
            sentinels=sentinels,
            service=settings.redis_sentinel_service,
            password=settings.redis_password,
            variable="REDIS_SENTINELS",
        )
    if settings.redis_sentinel_service and not url:
        raise ConfigurationError(
            "REDIS_SENTINEL_SERVICE is set but REDIS_SENTINELS is not; set REDIS_SENTINELS=h1:26379,h2:26379,..."
        )
    if not url:
        if settings.redis_cluster:
            raise ConfigurationError("REDIS_CLUSTER=1 needs REDIS_URL set to a node of the cluster")
        return None
    try:
        scheme = urlsplit(url).scheme
    except ValueError as error:  # e.g. an unclosed IPv6 bracket; the value may hold a password
        raise ConfigurationError(f"REDIS_URL is not a Redis URL ({error}); write it like {EXAMPLE_URL}") from None
    if scheme == SENTINEL_SCHEME:
        if settings.redis_cluster:
            raise ConfigurationError("REDIS_CLUSTER=1 cannot be used with a redis+sentinel:// REDIS_URL")
        return _sentinel_url(url, settings)
    if scheme == CLUSTER_SCHEME or (settings.redis_cluster and scheme in ("redis", "rediss")):
        if settings.redis_min_replicas:
            raise ConfigurationError(
                "LILY_REDIS_MIN_REPLICAS works with one primary (REDIS_URL or Sentinel), not with a Redis Cluster: "
                "unset it, or use the cluster's own replica settings (min-replicas-to-write)"
            )
        return _cluster_target(url, settings)
    if settings.redis_cluster:
        raise ConfigurationError(
            f"REDIS_CLUSTER=1 needs a redis:// or rediss:// REDIS_URL (a node of the cluster), got {display_url(url)!r}"
        )
    return RedisTarget(url=check_redis_url(url))


def redis_client(settings: HostSettings, **options: Any) -> aioredis.Redis:
    """Lily's async Redis client for ``settings`` (``options`` go to the connections, e.g. timeouts).

    Raises :class:`ConfigurationError` when no Redis is configured or the settings are malformed.
    """
    return client_for(require_target(settings), **options)


def require_target(settings: HostSettings) -> RedisTarget:
    """:func:`redis_target`, or ConfigurationError (REDIS_URL's message) when nothing is configured."""
    target = redis_target(settings)
    if target is None:
        check_redis_url(settings.redis_url)  # "REDIS_URL is not set (`lily dev` starts ...)"
        raise AssertionError("unreachable: check_redis_url refuses an unset URL")
    return target


async def ensure_redis(client: aioredis.Redis, settings: HostSettings, *, within: float = REACH_TIMEOUT) -> None:
    """PING the configured Redis through ``client`` (a URL's server, Sentinel's primary, a cluster's
    node); one line naming where and what to check when it does not answer."""
    target = require_target(settings)
    await ensure_reachable(client, target.describe(), variable=target.variable, within=within)


async def check_redis(settings: HostSettings, *, within: float = REACH_TIMEOUT) -> None:
    """The settings' shape, then a PING over a client of its own (closed again)."""
    target = require_target(settings)
    client = client_for(target, socket_connect_timeout=within, socket_timeout=within)
    try:
        await ensure_reachable(client, target.describe(), variable=target.variable, within=within)
    finally:
        await client.aclose()


def require_redis(settings: HostSettings, *, within: float = REACH_TIMEOUT) -> None:
    """:func:`check_redis` for synchronous callers (``lily serve`` before it forks its workers)."""
    asyncio.run(check_redis(settings, within=within))


def client_for(target: RedisTarget, **options: Any) -> aioredis.Redis:
    """The async client of a :class:`RedisTarget`.

    For a cluster this is redis-py's ``RedisCluster``, typed as ``Redis``: it has the same command
    methods, and the few places that need more (group commit's pipeline, the worker's wake-up
    subscription) check :func:`is_cluster` and take the cluster's own way.
    """
    if target.is_cluster:
        nodes = [ClusterNode(host, port) for host, port in target.cluster_nodes]
        cluster = LilyRedisCluster(startup_nodes=nodes, password=target.password, ssl=target.tls, **options)
        return cast(aioredis.Redis, cluster)
    if not target.is_sentinel:
        assert target.url is not None
        client: aioredis.Redis = aioredis.Redis.from_url(target.url, **options)
        return client
    assert target.service is not None
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves its __init__ unannotated
        list(target.sentinels),
        sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT},
    )
    # The primary's own password (the sentinels here need none: sentinel_kwargs carries no password).
    primary: aioredis.Redis = sentinel.master_for(target.service, db=target.db, password=target.password, **options)
    return primary


class LilyRedisCluster(RedisCluster):
    """redis-py's cluster client that also closes the per-node clients Lily's transactions use
    (:func:`lily_host.plugin_api.key_slots.node_client`)."""

    async def aclose(self) -> None:
        try:
            await close_node_clients(self)
        finally:
            await super().aclose()


def is_cluster(client: object) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def _cluster_target(url: str, settings: HostSettings) -> RedisTarget:
    """``redis+cluster://[:password@]h1:p1,h2:p2``, or a node's ``redis://`` URL with REDIS_CLUSTER=1."""
    parts = urlsplit(url)
    netloc = parts.netloc
    password: str | None = settings.redis_password
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        password = unquote(credentials.split(":", 1)[1] if ":" in credentials else credentials) or password
    hosts = [entry for entry in netloc.split(",") if entry]
    database = parts.path.strip("/")
    if not hosts:
        raise ConfigurationError(f"REDIS_URL={display_url(url)!r} names no cluster node; write host:port,host:port")
    if database not in ("", "0"):
        raise ConfigurationError(
            f"REDIS_URL={display_url(url)!r} names database {database!r}; a Redis Cluster has only database 0"
        )
    nodes = []
    for entry in hosts:
        host, sep, port = entry.rpartition(":")
        if not sep:
            host, port = entry, "6379"
        if not host or not port.isdigit():
            raise ConfigurationError(f"REDIS_URL={display_url(url)!r}: {entry!r} is not host:port (e.g. 10.0.0.5:6379)")
        nodes.append((host.strip("[]"), int(port)))
    return RedisTarget(cluster_nodes=tuple(nodes), password=password, tls=parts.scheme == "rediss")


def _sentinel_url(url: str, settings: HostSettings) -> RedisTarget:
    """``redis+sentinel://[:password@]h1:p1,h2:p2/<service>[/<db>]``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    password: str | None = settings.redis_password
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        password = unquote(credentials.split(":", 1)[1] if ":" in credentials else credentials) or password
    hosts = [entry for entry in netloc.split(",") if entry]
    path = [segment for segment in parts.path.split("/") if segment]
    if not hosts or not path or len(path) > 2:
        raise ConfigurationError(
            f"REDIS_URL={display_url(url)!r} must look like {SENTINEL_SCHEME}://h1:26379,h2:26379/<service>/0"
        )
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ConfigurationError(
                f"REDIS_URL={display_url(url)!r}: the database after the service name must be a number, got {path[1]!r}"
            )
        db = int(path[1])
    return RedisTarget(
        sentinels=tuple(_host_port(entry, "REDIS_URL") for entry in hosts),
        service=unquote(path[0]),
        db=db,
        password=password,
    )


def _host_port(entry: str, variable: str) -> tuple[str, int]:
    text = entry.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(DEFAULT_SENTINEL_PORT)
    host = host.strip("[]")  # [::1]:26379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"{variable}={entry!r} is not host:port; write it like 10.0.0.5:26379")
    return host, int(port)
