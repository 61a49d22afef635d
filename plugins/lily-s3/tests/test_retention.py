"""Retention: a scheduled sweep deletes photos (objects and records) older than the tenant keeps them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lily_host.testing import Harness
from lily_s3.fake import SAMPLE_JPEG as JPEG
from lily_s3.fake import MotoS3

BUCKET = "lily-test-photos"
TENANT = "acme"
OTHER_TENANT = "bob"
DAY = 86400

Headers = Callable[..., Awaitable[dict[str, str]]]
Upload = Callable[..., Awaitable[dict[str, Any]]]


def keys_in(s3: MotoS3, prefix: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def test_photos_past_retention_are_deleted_with_their_records(
    lily: Harness, headers: Headers, upload_photo: Upload, s3: MotoS3
) -> None:
    await lily.host.tenants.update(TENANT, retention_days=30)
    old = await upload_photo(JPEG, quote_id="old-job")
    abandoned = f"tenants/{TENANT}/quotes/q_never_completed/p_abandoned.jpg"
    s3.client().put_object(Bucket=BUCKET, Key=abandoned, Body=JPEG, ContentType="image/jpeg")
    bobs = await upload_photo(JPEG, tenant=OTHER_TENANT, quote_id="old-job")
    await lily.advance(20 * DAY)
    young = await upload_photo(JPEG, quote_id="new-job")

    await lily.advance(11 * DAY)

    assert keys_in(s3, f"tenants/{TENANT}/") == [young["photo"]["key"]]
    gone = await lily.client.get("/api/quotes/old-job/photos", headers=await headers())
    assert gone.status_code == 404
    kept = await lily.client.get("/api/quotes/new-job/photos", headers=await headers())
    assert [photo["key"] for photo in (await kept.get_json())["photos"]] == [young["photo"]["key"]]
    # bob keeps the default 365 days
    assert keys_in(s3, f"tenants/{OTHER_TENANT}/") == [bobs["photo"]["key"]]
    assert old["photo"]["key"] not in keys_in(s3, "")


async def test_the_plugin_setting_overrides_the_tenant_retention(
    lily: Harness, upload_photo: Upload, s3: MotoS3
) -> None:
    await lily.host.tenants.set_plugin_settings(TENANT, "s3", {"retention_days": 7})
    await upload_photo(JPEG)

    await lily.advance(6 * DAY)
    assert len(keys_in(s3, f"tenants/{TENANT}/")) == 1
    await lily.advance(2 * DAY)
    assert keys_in(s3, f"tenants/{TENANT}/") == []


async def test_the_sweep_reschedules_itself_and_startup_does_not_duplicate_it(lily: Harness) -> None:
    await lily.host.startup()  # a second process starting: the waiting sweep is deduplicated

    sweeps = [task for task in await lily.host.queue.list_tasks("due") if task.type == "s3.retention_sweep"]
    assert len(sweeps) == 1

    await lily.run_due()

    [next_sweep] = [task for task in await lily.host.queue.list_tasks("due") if task.type == "s3.retention_sweep"]
    assert next_sweep.due is not None
    assert abs(next_sweep.due - (lily.clock.now() + DAY)) < 1
