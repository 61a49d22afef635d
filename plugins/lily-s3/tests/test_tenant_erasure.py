"""A deleted tenant's photos go: every object under its prefix (its own, custom one too) and its records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lily_host.testing import TEST_ADMIN_TOKEN, Harness, HarnessFactory
from lily_s3.fake import SAMPLE_JPEG as JPEG
from lily_s3.fake import MotoS3

BUCKET = "lily-test-photos"
TENANT = "acme"
OTHER_TENANT = "bob"
ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}

Upload = Callable[..., Awaitable[dict[str, Any]]]


def keys_in(s3: MotoS3, prefix: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def records(lily: Harness, tenant: str) -> list[bytes]:
    return [key async for key in lily.host.redis.scan_iter(match=f"lily:{{t:{tenant}}}:s3:*")]


async def test_deleting_a_tenant_deletes_its_objects_and_records_and_no_one_elses(
    lily: Harness, upload_photo: Upload, s3: MotoS3
) -> None:
    await upload_photo(JPEG, quote_id="deck")
    await upload_photo(JPEG, quote_id="fence")
    stray = f"tenants/{TENANT}/quotes/q_never_completed/p_abandoned.jpg"  # an upload never completed
    s3.client().put_object(Bucket=BUCKET, Key=stray, Body=JPEG, ContentType="image/jpeg")
    bobs = await upload_photo(JPEG, tenant=OTHER_TENANT, quote_id="deck")
    assert len(keys_in(s3, f"tenants/{TENANT}/")) == 3 and await records(lily, TENANT)

    assert (await lily.client.delete(f"/api/tenants/{TENANT}", headers=ADMIN)).status_code == 204
    await lily.run_due()

    assert keys_in(s3, f"tenants/{TENANT}/") == []
    assert await records(lily, TENANT) == []
    assert keys_in(s3, f"tenants/{OTHER_TENANT}/") == [bobs["photo"]["key"]]
    assert await records(lily, OTHER_TENANT)


async def test_a_custom_prefix_travels_with_the_event(lily: Harness, upload_photo: Upload, s3: MotoS3) -> None:
    await lily.host.tenants.set_plugin_settings(TENANT, "s3", {"key_prefix": "customers/{tenant}/photos/"})
    photo = await upload_photo(JPEG)
    assert keys_in(s3, "customers/acme/photos/") == [photo["photo"]["key"]]

    assert await lily.host.delete_tenant(TENANT)
    await lily.run_due()

    assert keys_in(s3, "customers/") == []


async def test_unconfigured_s3_erases_the_records_and_says_objects_may_remain(
    lily_harness: HarnessFactory, s3: MotoS3
) -> None:
    async with lily_harness(plugins=["s3"], env={}) as lily:  # no S3_BUCKET_NAME
        await lily.create_tenant(TENANT)
        await lily.host.redis.set(f"lily:{{t:{TENANT}}}:s3:quotes", "left over from when S3 was set up")
        assert await lily.host.delete_tenant(TENANT)
        await lily.run_due()
        assert await records(lily, TENANT) == []
        [dead] = await lily.host.queue.list_tasks("dead")
        assert dead.type == "s3.erase_tenant" and "objects under 'tenants/acme/' were not deleted" in (
            dead.last_error or ""
        )
