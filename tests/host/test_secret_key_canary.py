"""A wrong LILY_SECRET_KEY: serve, worker and tenant commands stop with one line about key rotation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from lily_host.dev.embedded_redis import RedisServer
from lily_host.tenants.canary import CANARY_KEY, PLAINTEXT
from lily_host.tenants.secret_box import SecretBox

STORED_WITH = SecretBox.generate_key()


@pytest.fixture
def env(redis_server: RedisServer, tmp_path: object) -> dict[str, str]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.set(CANARY_KEY, SecretBox([STORED_WITH]).encrypt(PLAINTEXT))
    client.close()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LILY_", "REDIS_"))}
    return {
        **base,
        "REDIS_URL": redis_server.url,
        "LILY_SECRET_KEY": SecretBox.generate_key(),  # not the key the data was stored with
        "LILY_DATA_DIR": str(tmp_path),
        "LILY_PLUGINS": "",
    }


@pytest.mark.parametrize(
    "command",
    [
        ["tenants", "show", "acme"],
        ["tenants", "rotate-secrets"],
        ["worker"],
        ["serve", "--bind", "127.0.0.1:0"],
    ],
)
def test_wrong_key_fails_with_one_line_explaining_rotation(env: dict[str, str], command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lily_host.cli.main", *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "LILY_SECRET_KEY=<new>,<old>" in errors[0], done.stderr


def test_rotation_with_both_keys_works_and_moves_the_canary(env: dict[str, str]) -> None:
    new = env["LILY_SECRET_KEY"]
    rotating = {**env, "LILY_SECRET_KEY": f"{new},{STORED_WITH}"}
    done = subprocess.run(
        [sys.executable, "-m", "lily_host.cli.main", "tenants", "rotate-secrets"],
        env=rotating,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "lily_host.cli.main", "tenants", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr  # the new key alone now reads what is stored
