"""The ``storage`` capability other plugins use: keys relative to, and confined in, the tenant prefix."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from lily_host import PermanentError, StorageProvider
from lily_host.testing import Harness
from lily_s3.fake import SAMPLE_PNG as PNG
from lily_s3.fake import MotoS3, decode_post_policy

BUCKET = "lily-test-photos"


async def test_storage_capability_round_trip(lily: Harness, s3: MotoS3) -> None:
    storage = lily.host.capability("storage")
    acme = await lily.host.tenants.require("acme")

    stored = await storage.put(acme, "reports/before.png", PNG, "image/png")
    head = await storage.head(acme, "reports/before.png")
    url = await storage.presigned_get(acme, "reports/before.png", expires=300)
    async with httpx.AsyncClient() as client:
        fetched = await client.get(url)
    await storage.delete(acme, "reports/before.png")

    assert isinstance(storage, StorageProvider)
    assert stored.key == "reports/before.png"
    assert head is not None and head.size == len(PNG) and head.content_type == "image/png"
    assert urlsplit(url).path == f"/{BUCKET}/tenants/acme/reports/before.png"
    assert fetched.content == PNG
    assert await storage.head(acme, "reports/before.png") is None
    assert s3.client().list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


async def test_storage_presigned_post_is_confined_to_the_tenant(lily: Harness) -> None:
    storage = lily.host.capability("storage")
    bob = await lily.host.tenants.require("bob")

    post = await storage.presigned_post(
        bob, "docs/estimate.pdf", content_type="application/pdf", max_bytes=500, expires=60
    )

    assert post["fields"]["key"] == "tenants/bob/docs/estimate.pdf"
    assert ["content-length-range", 1, 500] in decode_post_policy(post["fields"])["conditions"]


@pytest.mark.parametrize("key", ["../bob/x.jpg", "/tenants/bob/x.jpg", "a/./b.jpg", "a//b.jpg", "", "dir/"])
async def test_storage_refuses_keys_that_could_escape_the_prefix(lily: Harness, key: str) -> None:
    storage = lily.host.capability("storage")
    acme = await lily.host.tenants.require("acme")

    with pytest.raises(PermanentError):
        await storage.put(acme, key, PNG, "image/png")
    with pytest.raises(PermanentError):
        await storage.presigned_get(acme, key, expires=60)
