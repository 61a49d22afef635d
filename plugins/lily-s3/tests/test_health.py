"""Health: HeadBucket plus a sentinel put/read/delete, against moto with its IAM enforcement switched on.

moto checks IAM only when told to (``/moto-api/reset-auth``); then every request must be signed by
an IAM user whose policies allow it, and refusals are S3's own AccessDenied responses.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from lily_host.testing import HarnessFactory
from lily_s3.fake import MotoS3

BUCKET = "lily-test-photos"


@pytest.fixture
def iam_s3(s3: MotoS3) -> Iterator[MotoS3]:
    """moto with IAM enforced after the test has made its users (switched off again afterwards)."""
    try:
        yield s3
    finally:
        s3.allow_all()


def policy(actions: Sequence[str], bucket: str = BUCKET) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": list(actions),
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }


async def bucket_health(lily_harness: HarnessFactory, env: Mapping[str, str]) -> dict[str, Any]:
    async with lily_harness(plugins=["s3"], env=dict(env)) as lily:
        response = await lily.client.get("/health", headers=lily.admin_headers)
        report = await response.get_json()
    entry: dict[str, Any] = report["plugins"]["s3"]["checks"]["s3.bucket"]
    return entry


async def test_health_ok_when_the_bucket_is_readable_and_writable(lily_harness: HarnessFactory, s3: MotoS3) -> None:
    check = await bucket_health(lily_harness, s3.env(BUCKET))

    assert check["state"] == "ok"
    assert check["details"]["bucket"] == BUCKET
    # the sentinel was removed again
    assert s3.client().list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


async def test_health_fails_when_the_bucket_does_not_exist(lily_harness: HarnessFactory, s3: MotoS3) -> None:
    check = await bucket_health(lily_harness, s3.env("no-such-bucket-here"))

    assert check["state"] == "failed"
    assert "no-such-bucket-here does not exist" in check["message"]
    assert "S3_BUCKET_NAME" in check["message"]


async def test_health_names_a_missing_write_permission(lily_harness: HarnessFactory, iam_s3: MotoS3) -> None:
    # moto authorises HeadBucket as "s3:HeadBucket"; AWS uses s3:ListBucket for it.
    key, secret = iam_s3.create_user("read-only", policy(["s3:ListBucket", "s3:HeadBucket", "s3:GetObject"]))
    iam_s3.enforce_iam()

    check = await bucket_health(lily_harness, iam_s3.env(BUCKET, access_key=key, secret_key=secret))

    assert check["state"] == "failed"
    assert check["details"]["missing_permissions"] == ["s3:PutObject"]
    assert "lacks s3:PutObject" in check["message"]


async def test_health_names_every_missing_permission(lily_harness: HarnessFactory, iam_s3: MotoS3) -> None:
    key, secret = iam_s3.create_user("nothing", policy(["s3:GetObjectTagging"]))
    iam_s3.enforce_iam()

    check = await bucket_health(lily_harness, iam_s3.env(BUCKET, access_key=key, secret_key=secret))

    assert check["state"] == "failed"
    assert check["details"]["missing_permissions"] == ["s3:ListBucket", "s3:PutObject"]


async def test_health_names_missing_read_and_delete(lily_harness: HarnessFactory, iam_s3: MotoS3) -> None:
    key, secret = iam_s3.create_user("write-only", policy(["s3:ListBucket", "s3:HeadBucket", "s3:PutObject"]))
    iam_s3.enforce_iam()

    check = await bucket_health(lily_harness, iam_s3.env(BUCKET, access_key=key, secret_key=secret))

    assert check["details"]["missing_permissions"] == ["s3:GetObject", "s3:DeleteObject"]


async def test_health_reports_rejected_credentials(lily_harness: HarnessFactory, iam_s3: MotoS3) -> None:
    iam_s3.enforce_iam()

    check = await bucket_health(lily_harness, iam_s3.env(BUCKET, access_key="AKIAUNKNOWNKEY000000", secret_key="x"))

    assert check["state"] == "auth_failed"
    assert "InvalidAccessKeyId" in check["message"]


async def test_the_documented_iam_policy_is_enough(
    lily_harness: HarnessFactory, iam_s3: MotoS3, documented_json: dict[str, Any]
) -> None:
    documented = json.loads(
        json.dumps(documented_json["IAM policy (for the identity Lily uses)"]).replace("lily-ai-photos", BUCKET)
    )
    for_moto = copy.deepcopy(documented)
    for statement in for_moto["Statement"]:
        if "s3:ListBucket" in statement["Action"]:
            statement["Action"].append("s3:HeadBucket")  # moto's name for what AWS authorises as ListBucket
    key, secret = iam_s3.create_user("lily-ai", for_moto)
    iam_s3.enforce_iam()

    check = await bucket_health(lily_harness, iam_s3.env(BUCKET, access_key=key, secret_key=secret))

    assert check["state"] == "ok", check["message"]


async def test_health_fails_when_s3_is_unreachable(lily_harness: HarnessFactory, s3: MotoS3) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {**s3.env(BUCKET), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port}"}

    check = await bucket_health(lily_harness, env)

    assert check["state"] == "failed"
    assert "unreachable" in check["message"]


async def test_unconfigured_plugin_says_what_to_set(
    lily_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S3_BUCKET_NAME", raising=False)
    async with lily_harness(plugins=["s3"]) as lily:
        report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
        api = await lily.client.post("/api/uploads", json={"content_type": "image/jpeg"})

    assert report["plugins"]["s3"]["state"] == "not_configured"
    assert "S3_BUCKET_NAME" in report["plugins"]["s3"]["message"]
    assert api.status_code == 503


async def test_health_does_not_write_an_object_on_every_call(lily_harness: HarnessFactory, iam_s3: MotoS3) -> None:
    full = ["s3:ListBucket", "s3:HeadBucket", "s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    key, secret = iam_s3.create_user("lily", policy(full))
    iam_s3.enforce_iam()
    async with lily_harness(plugins=["s3"], env=dict(iam_s3.env(BUCKET, access_key=key, secret_key=secret))) as lily:

        async def check() -> dict[str, Any]:
            report = await (await lily.client.get("/health", headers=lily.admin_headers)).get_json()
            entry: dict[str, Any] = report["plugins"]["s3"]["checks"]["s3.bucket"]
            return entry

        assert (await check())["message"] == f"bucket {BUCKET} is readable and writable"
        # Take the write permission away: the next calls do not notice, because they do not write.
        iam_s3.allow_all()
        iam = iam_s3.client("iam")
        iam.put_user_policy(
            UserName="lily", PolicyName="lily-policy", PolicyDocument=json.dumps(policy([*full[:2], "s3:GetObject"]))
        )
        iam_s3.enforce_iam()
        again = await check()
        assert again["state"] == "ok" and "last verified" in again["message"]
        # An hour later the write check runs again, and finds the missing permission.
        lily.clock.advance(3601)
        later = await check()
        assert later["state"] == "failed" and later["details"]["missing_permissions"] == ["s3:PutObject"]
