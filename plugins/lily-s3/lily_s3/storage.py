"""The bucket: one boto3 client per provider, every call in a worker thread, errors translated.

``S3Bucket`` speaks in full keys and is what this plugin's own code uses; ``S3StorageProvider`` is
the ``storage`` capability other plugins get, where every key is relative to the tenant's prefix
and can never leave it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import boto3  # type: ignore[import-untyped]
from botocore.client import BaseClient  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from lily_host import StoredObject, Tenant, track_api_call
from lily_s3 import __version__
from lily_s3.errors import StorageNotFound, StorageRejected, translate
from lily_s3.keys import join, relative_to
from lily_s3.settings import MAX_LINK_LIFETIME_SECONDS, S3Settings, normalize_content_type, tenant_settings

T = TypeVar("T")
INTEGRATION = "s3"
#: delete_objects takes at most this many keys per call.
DELETE_BATCH = 1000


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    last_modified: float


class S3Bucket:
    """The configured bucket. Thread-safe: boto3 clients are, and the client is made once under a lock."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.name = settings.s3_bucket_name
        self._client: BaseClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> BaseClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> BaseClient:
        settings = self.settings
        # A Session per client: sessions are not thread-safe, clients are.
        session = boto3.session.Session(
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=(
                settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
            ),
            aws_session_token=settings.aws_session_token.get_secret_value() if settings.aws_session_token else None,
            region_name=settings.aws_region,
        )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": settings.s3_addressing_style},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=20,
            user_agent_extra=f"lily-s3/{__version__}",
        )
        return session.client("s3", endpoint_url=settings.endpoint_url, config=config)

    async def _run(self, operation: str, key: str | None, call: Callable[[], T]) -> T:
        def guarded() -> T:
            with track_api_call(INTEGRATION, operation):
                try:
                    return call()
                except (ClientError, BotoCoreError) as error:
                    raise translate(error, operation=operation, bucket=self.name, key=key) from error

        return await asyncio.to_thread(guarded)

    # --- objects ----------------------------------------------------------------------------------

    async def put(
        self, key: str, data: bytes, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> StoredObject:
        content_type = normalize_content_type(content_type)
        await self._run(
            "put_object",
            key,
            lambda: self.client.put_object(
                Bucket=self.name, Key=key, Body=data, ContentType=content_type, Metadata=dict(metadata or {})
            ),
        )
        return StoredObject(key=key, size=len(data), content_type=content_type, metadata=dict(metadata or {}))

    async def head(self, key: str) -> StoredObject | None:
        try:
            response = await self._run("head_object", key, lambda: self.client.head_object(Bucket=self.name, Key=key))
        except StorageNotFound as error:
            if error.s3_code == "NoSuchBucket":
                raise
            return None
        return StoredObject(
            key=key,
            size=int(response.get("ContentLength", 0)),
            content_type=normalize_content_type(str(response.get("ContentType", "binary/octet-stream"))),
            metadata=dict(response.get("Metadata", {})),
        )

    async def delete(self, key: str) -> None:
        await self._run("delete_object", key, lambda: self.client.delete_object(Bucket=self.name, Key=key))

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Delete up to any number of keys in batches; a key S3 refuses raises (missing keys do not)."""
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
            response = await self._run(
                "delete_objects",
                None,
                functools.partial(self._delete_batch, batch),
            )
            errors = [item for item in response.get("Errors", []) if item.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                # A 200 response can still carry per-key refusals; surface them like a failed call.
                raise translate(
                    ClientError(
                        {"Error": {"Code": first.get("Code"), "Message": first.get("Message")}}, "DeleteObjects"
                    ),
                    operation="delete_objects",
                    bucket=self.name,
                    key=str(first.get("Key")),
                )

    def _delete_batch(self, batch: list[dict[str, str]]) -> dict[str, Any]:
        response: dict[str, Any] = self.client.delete_objects(
            Bucket=self.name, Delete={"Objects": batch, "Quiet": True}
        )
        return response

    async def list(self, prefix: str) -> list[ListedObject]:
        def collect() -> list[ListedObject]:
            objects: list[ListedObject] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
                for item in page.get("Contents", []):
                    modified = item["LastModified"]
                    objects.append(
                        ListedObject(
                            key=str(item["Key"]),
                            size=int(item.get("Size", 0)),
                            last_modified=modified.timestamp() if isinstance(modified, datetime) else float(modified),
                        )
                    )
            return objects

        return await self._run("list_objects_v2", None, collect)

    # --- presigning (local signing, but credential resolution may do I/O: off the loop too) ------------

    async def presigned_post(
        self,
        key: str,
        *,
        content_type: str,
        max_bytes: int,
        expires: int,
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A browser POST form for exactly ``key``: the content type is pinned and the size capped."""
        content_type = normalize_content_type(content_type)
        fields: dict[str, str] = {"Content-Type": content_type}
        conditions: list[Any] = [{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]]
        for name, value in (metadata or {}).items():
            # A field the form carries must also be a policy condition, or S3 rejects the upload.
            fields[f"x-amz-meta-{name}"] = value
            conditions.append({f"x-amz-meta-{name}": value})
        post: dict[str, Any] = await self._run(
            "generate_presigned_post",
            key,
            lambda: self.client.generate_presigned_post(
                Bucket=self.name, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires
            ),
        )
        return post

    async def presigned_get(self, key: str, *, expires: int) -> str:
        if not 1 <= expires <= MAX_LINK_LIFETIME_SECONDS:
            raise ValueError(f"link lifetime must be 1..{MAX_LINK_LIFETIME_SECONDS} seconds (SigV4 limit)")
        url: str = await self._run(
            "generate_presigned_url",
            key,
            lambda: self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.name, "Key": key}, ExpiresIn=expires
            ),
        )
        return url

    async def head_bucket(self) -> None:
        await self._run("head_bucket", None, lambda: self.client.head_bucket(Bucket=self.name))


class S3StorageProvider:
    """The ``storage`` capability: a tenant's objects, with keys relative to its prefix."""

    name = "s3"

    def __init__(self, bucket: S3Bucket) -> None:
        self.bucket = bucket

    def _full_key(self, tenant: Tenant, key: str) -> str:
        return join(tenant_settings(tenant).prefix_for(tenant.id), key)

    def _relative(self, tenant: Tenant, stored: StoredObject) -> StoredObject:
        relative = relative_to(tenant_settings(tenant).prefix_for(tenant.id), stored.key)
        if relative is None:  # cannot happen for keys made by _full_key; refuse rather than leak
            raise StorageRejected(
                "object key outside the tenant prefix", operation="relative", s3_code="OutsidePrefix", status=None
            )
        return StoredObject(key=relative, size=stored.size, content_type=stored.content_type, metadata=stored.metadata)

    async def put(self, tenant: Tenant, key: str, data: bytes, content_type: str) -> StoredObject:
        stored = await self.bucket.put(self._full_key(tenant, key), data, content_type)
        return self._relative(tenant, stored)

    async def presigned_post(
        self, tenant: Tenant, key: str, *, content_type: str, max_bytes: int, expires: int
    ) -> dict[str, Any]:
        return await self.bucket.presigned_post(
            self._full_key(tenant, key), content_type=content_type, max_bytes=max_bytes, expires=expires
        )

    async def presigned_get(self, tenant: Tenant, key: str, *, expires: int) -> str:
        return await self.bucket.presigned_get(self._full_key(tenant, key), expires=expires)

    async def head(self, tenant: Tenant, key: str) -> StoredObject | None:
        stored = await self.bucket.head(self._full_key(tenant, key))
        return None if stored is None else self._relative(tenant, stored)

    async def delete(self, tenant: Tenant, key: str) -> None:
        await self.bucket.delete(self._full_key(tenant, key))
