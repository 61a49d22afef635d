"""Secrets are encrypted at rest, and keys rotate without losing them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sample_echo_plugin
from cryptography.fernet import Fernet
from pydantic import SecretStr

from lily_host.tenants.secret_box import SecretBox
from lily_host.tenants.store import TenantStore
from lily_host.testing import TEST_SECRET_KEY, Harness, HarnessFactory

PLAINTEXT = "tok_super_secret_value_123"


@pytest.fixture
async def lily(lily_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with lily_harness(extra_modules={"echo": sample_echo_plugin}, env={"ECHO_SECRET": "x"}) as harness:
        yield harness


async def raw_redis_contains(lily: Harness, needle: str) -> bool:
    redis = lily.host.redis
    for key in await redis.keys("*"):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            values = [await redis.get(key)]
        elif kind == "hash":
            values = list((await redis.hgetall(key)).values())
        elif kind == "list":
            values = await redis.lrange(key, 0, -1)
        elif kind == "set":
            values = list(await redis.smembers(key))
        else:
            values = []
        if any(needle.encode() in (value or b"") for value in values):
            return True
    return False


async def test_secret_settings_and_tokens_are_not_stored_in_plaintext(lily: Harness) -> None:
    await lily.create_tenant("acme", plugins={"echo": {"api_token": PLAINTEXT}})
    await lily.host.tenants.put_secret("acme", "oauth", PLAINTEXT + "-oauth")
    assert not await raw_redis_contains(lily, PLAINTEXT)
    tenant = await lily.host.tenants.require("acme")
    settings = lily.host.tenant_settings(tenant, "echo")
    assert isinstance(settings, sample_echo_plugin.EchoTenantSettings)
    assert isinstance(settings.api_token, SecretStr)
    assert settings.api_token.get_secret_value() == PLAINTEXT
    assert await lily.host.tenants.get_secret("acme", "oauth") == PLAINTEXT + "-oauth"


async def test_api_views_mask_secrets(lily: Harness) -> None:
    await lily.create_tenant("acme", plugins={"echo": {"api_token": PLAINTEXT}})
    shown = await (await lily.client.get("/api/tenants/acme", headers=lily.admin_headers)).get_json()
    assert shown["plugins"]["echo"]["api_token"] == "********"


async def test_key_rotation_keeps_every_secret_readable(lily: Harness) -> None:
    await lily.create_tenant("acme", plugins={"echo": {"api_token": PLAINTEXT}})
    await lily.host.tenants.put_secret("acme", "oauth", "oauth-value")
    new_key = Fernet.generate_key().decode()
    # Step 1: new key first, old key still listed: everything decrypts, then rotate re-encrypts.
    both = TenantStore(lily.host.redis, SecretBox([new_key, TEST_SECRET_KEY]), lily.host.tenants.models)
    assert await both.get_secret("acme", "oauth") == "oauth-value"
    assert await both.rotate_secrets() == 2
    # Step 2: the old key removed: still readable, because rotation used the new key.
    only_new = TenantStore(lily.host.redis, SecretBox([new_key]), lily.host.tenants.models)
    assert await only_new.get_secret("acme", "oauth") == "oauth-value"
    settings = only_new.plugin_settings(await only_new.require("acme"), "echo")
    assert isinstance(settings, sample_echo_plugin.EchoTenantSettings)
    assert settings.api_token is not None and settings.api_token.get_secret_value() == PLAINTEXT
    # And the old key alone can no longer read them.
    only_old = TenantStore(lily.host.redis, SecretBox([TEST_SECRET_KEY]), lily.host.tenants.models)
    with pytest.raises(Exception, match="cannot be decrypted"):
        await only_old.get_secret("acme", "oauth")
