"""Bucket health: HeadBucket, then put/read/delete a small sentinel object, naming what is missing.

Listing alone says nothing about writing: a read-only key would look healthy and then fail every
upload. So the check writes, reads back and removes one tiny object under ``S3_HEALTH_KEY_PREFIX``
— but not on every call: a successful write check is remembered for :data:`WRITE_CHECK_SECONDS`
(``lily:s3:health:writable:<bucket>``), and until then each check is one HeadBucket.
"""

from __future__ import annotations

import secrets
from typing import Any

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
#: How long a successful put/read/delete check stands before the next one.
WRITE_CHECK_SECONDS = 3600.0


def writable_key(bucket: str) -> str:
    return f"lily:s3:health:writable:{bucket}"


async def check_bucket(bucket: S3Bucket, redis: Any = None, now: float = 0.0) -> HealthResult:
    """``redis`` and ``now`` (the host's) let a recent successful write check stand in for a new one."""
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

    if redis is not None and not head_denied:
        checked = await redis.get(writable_key(name))
        if checked is not None and now - float(checked) < WRITE_CHECK_SECONDS:
            return HealthResult(
                HealthState.OK,
                f"bucket {name} is reachable (read/write last verified {now - float(checked):.0f} s ago)",
                details,
            )

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
    if redis is not None:
        await redis.set(writable_key(name), repr(now), ex=int(WRITE_CHECK_SECONDS * 2))
    return HealthResult(HealthState.OK, f"bucket {name} is readable and writable", details)
