"""The documented AWS setup: the JSON in docs/plugins/s3.md parses, covers what the plugin does,
and S3 (moto) accepts it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lily_s3.errors import IAM_ACTION
from lily_s3.fake import MotoS3

BUCKET = "lily-test-photos"
ROOT = Path(__file__).resolve().parents[3]
DOCUMENTED = ("IAM policy (for the identity Lily uses)", "Bucket policy", "CORS configuration")


def test_every_documented_json_block_parses(documented_json: dict[str, Any]) -> None:
    assert set(DOCUMENTED) <= set(documented_json)


def test_the_iam_policy_grants_every_action_the_plugin_uses(documented_json: dict[str, Any]) -> None:
    iam = documented_json["IAM policy (for the identity Lily uses)"]
    granted = {
        action for statement in iam["Statement"] if statement["Effect"] == "Allow" for action in statement["Action"]
    }

    assert iam["Version"] == "2012-10-17"
    assert set(IAM_ACTION.values()) <= granted
    assert "s3:*" not in granted


def test_moto_accepts_the_bucket_policy_and_cors(documented_json: dict[str, Any], s3: MotoS3) -> None:
    bucket_policy = json.dumps(documented_json["Bucket policy"]).replace("lily-ai-photos", BUCKET)
    bucket_policy = bucket_policy.replace("ACCOUNT", "123456789012")
    cors = documented_json["CORS configuration"]
    client = s3.client()

    client.put_bucket_policy(Bucket=BUCKET, Policy=bucket_policy)
    client.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": cors})

    [rule] = client.get_bucket_cors(Bucket=BUCKET)["CORSRules"]
    assert {"GET", "POST"} <= set(rule["AllowedMethods"])
    assert "PUT" not in rule["AllowedMethods"]


def test_the_readme_is_the_published_doc() -> None:
    readme = ROOT / "plugins" / "lily-s3" / "README.md"
    assert readme.read_text() == (ROOT / "docs" / "plugins" / "s3.md").read_text()
