"""botocore failures, translated into what the host and a person can act on.

Permanent refusals (no bucket, access denied, bad credentials) become PermanentError subclasses
so tasks stop retrying; throttling becomes RetryLater; network trouble and 5xx stay retryable.
Every message names the S3 operation and, for a refusal, the IAM action that is missing.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError  # type: ignore[import-untyped]

from lily_host import PermanentError, RetryLater

#: The IAM action each S3 operation we call needs (HeadBucket is authorised as ListBucket).
IAM_ACTION = {
    "head_bucket": "s3:ListBucket",
    "list_objects_v2": "s3:ListBucket",
    "put_object": "s3:PutObject",
    "head_object": "s3:GetObject",
    "get_object": "s3:GetObject",
    "delete_object": "s3:DeleteObject",
    "delete_objects": "s3:DeleteObject",
}
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired"}
)
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "403"})
NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "NotFound", "404"})
THROTTLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503"})
REGION_CODES = frozenset(
    {"PermanentRedirect", "AuthorizationHeaderMalformed", "301", "IllegalLocationConstraintException"}
)


class StorageRejected(PermanentError):
    """S3 refused the request for a reason retrying will not fix."""

    def __init__(self, reason: str, *, operation: str, s3_code: str, status: int | None) -> None:
        super().__init__(reason, code=s3_code)
        self.operation = operation
        self.s3_code = s3_code
        self.status = status


class StorageAccessDenied(StorageRejected):
    """The identity lacks the IAM permission for the operation."""

    @property
    def iam_action(self) -> str:
        return IAM_ACTION.get(self.operation, "s3:*")


class StorageCredentialsRejected(StorageRejected):
    """AWS does not accept the credentials (unknown key, wrong secret, expired token) or found none."""


class StorageNotFound(StorageRejected):
    """The bucket (or, for operations that need one, the object) does not exist."""


class StorageWrongRegion(StorageRejected):
    """The bucket lives in another region than AWS_REGION."""

    def __init__(self, reason: str, *, operation: str, s3_code: str, status: int | None, region: str | None) -> None:
        super().__init__(reason, operation=operation, s3_code=s3_code, status=status)
        self.region = region


class StorageThrottled(RetryLater):
    """S3 asked us to slow down."""


class StorageUnavailable(Exception):
    """S3 could not be reached or failed on its side; retrying later is right."""


def translate(error: Exception, *, operation: str, bucket: str, key: str | None = None) -> Exception:
    """The exception to raise instead of a botocore one."""
    where = f"{bucket}/{key}" if key else bucket
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return StorageCredentialsRejected(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or attach an instance role)",
            operation=operation,
            s3_code="NoCredentials",
            status=None,
        )
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", "Unknown"))
        meta = error.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        message = str(details.get("Message", "")) or code
        if code in CREDENTIAL_CODES:
            return StorageCredentialsRejected(
                f"AWS rejected the credentials ({code}) on {operation}: check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY",
                operation=operation,
                s3_code=code,
                status=status,
            )
        if code in ACCESS_DENIED_CODES:
            action = IAM_ACTION.get(operation, "s3:*")
            return StorageAccessDenied(
                f"S3 denied {operation} on {where}: the AWS identity needs {action} on arn:aws:s3:::{where}",
                operation=operation,
                s3_code=code,
                status=status,
            )
        if code in NOT_FOUND_CODES:
            what = "bucket" if code == "NoSuchBucket" or key is None else "object"
            return StorageNotFound(
                f"S3 says the {what} {where} does not exist ({operation})",
                operation=operation,
                s3_code=code,
                status=status,
            )
        if code in REGION_CODES:
            headers = meta.get("HTTPHeaders", {})
            region = headers.get("x-amz-bucket-region") or details.get("Region")
            hint = f"set AWS_REGION={region}" if region else "set AWS_REGION to the bucket's region"
            return StorageWrongRegion(
                f"bucket {bucket} is not in the configured region: {hint}",
                operation=operation,
                s3_code=code,
                status=status,
                region=region,
            )
        if code in THROTTLE_CODES or status == 503:
            return StorageThrottled(f"S3 is throttling {operation} ({code})", seconds=5.0)
        if isinstance(status, int) and status >= 500:
            return StorageUnavailable(f"S3 failed {operation} on {where}: {status} {code}: {message}")
        return StorageRejected(
            f"S3 refused {operation} on {where}: {code}: {message}", operation=operation, s3_code=code, status=status
        )
    if isinstance(error, BotoCoreError):
        return StorageUnavailable(f"cannot reach S3 for {operation}: {error}")
    return error
