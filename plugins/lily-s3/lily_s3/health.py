"""Bucket health: HeadBucket, then put/read/delete a small sentinel object, naming what is missing.

Listing alone says nothing about writing: a read-only key would look healthy and then fail every
upload. So the check writes, reads back and removes one tiny object under ``S3_HEALTH_KEY_PREFIX``.
"""

from __future__ import annotations

import secrets

from lily_host import HealthResult, HealthState
from lily_s3.errors import (
    StorageAccessDenied,
    StorageCredentialsRejected,
    StorageNotFound,
    StorageRejected,
    StorageThrottled,
    StorageUnavailable,
    StorageWrongRegion,
)
from lily_s3.storage import S3Bucket

SENTINEL_BODY = b"lily health check: safe to delete\n"


async def check_bucket(bucket: S3Bucket) -> HealthResult:
    name = bucket.name
    details: dict[str, object] = {
        "bucket": name,
        "region": bucket.settings.aws_region,
        "endpoint": bucket.settings.endpoint_url or "aws",
    }
    missing: list[str] = []
    # HEAD answers carry no body, so a 403 here may be a missing permission or bad credentials;
    # the PUT below (which has an error body) tells the two apart.
    head_denied = False
    try:
        await bucket.head_bucket()
    except StorageNotFound:
        return HealthResult(
            HealthState.FAILED, f"bucket {name} does not exist: create it or fix S3_BUCKET_NAME", details
        )
    except StorageWrongRegion as error:
        return HealthResult(HealthState.FAILED, error.reason, {**details, "bucket_region": error.region})
    except StorageAccessDenied:
        head_denied = True
    except StorageCredentialsRejected as error:
        return HealthResult(HealthState.AUTH_FAILED, error.reason, details)
    except (StorageUnavailable, StorageThrottled) as error:
        return HealthResult(HealthState.FAILED, f"S3 unreachable: {error}", details)

    sentinel = f"{bucket.settings.s3_health_key_prefix}sentinel-{secrets.token_hex(8)}"
    try:
        await bucket.put(sentinel, SENTINEL_BODY, "text/plain")
    except StorageCredentialsRejected as error:
        return HealthResult(HealthState.AUTH_FAILED, error.reason, details)
    except StorageAccessDenied:
        wrote = False
        missing.append("s3:PutObject")
    except (StorageUnavailable, StorageThrottled, StorageRejected) as error:
        return HealthResult(HealthState.FAILED, f"writing a sentinel object failed: {error}", details)
    else:
        wrote = True
    if head_denied:
        missing.insert(0, "s3:ListBucket")

    if wrote:
        try:
            if await bucket.head(sentinel) is None:
                return HealthResult(
                    HealthState.FAILED, f"the sentinel object {sentinel} vanished after writing", details
                )
        except StorageAccessDenied:
            missing.append("s3:GetObject")
        except (StorageUnavailable, StorageThrottled, StorageRejected) as error:
            return HealthResult(HealthState.FAILED, f"reading the sentinel object failed: {error}", details)
        try:
            await bucket.delete(sentinel)
        except StorageAccessDenied:
            missing.append("s3:DeleteObject")
        except (StorageUnavailable, StorageThrottled, StorageRejected) as error:
            return HealthResult(HealthState.FAILED, f"deleting the sentinel object failed: {error}", details)

    if missing:
        unchecked = "" if wrote else " (s3:GetObject and s3:DeleteObject not checked: nothing could be written)"
        return HealthResult(
            HealthState.FAILED,
            f"the AWS identity lacks {', '.join(missing)} on bucket {name}{unchecked}; "
            "grant the IAM policy in docs/plugins/s3.md",
            {**details, "missing_permissions": missing},
        )
    return HealthResult(HealthState.OK, f"bucket {name} is readable and writable", details)
