"""Browser uploads: presigned POST to S3 (moto over HTTP), completion checks, expiring links."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from lily_host.testing import Harness
from lily_s3.fake import SAMPLE_JPEG as JPEG
from lily_s3.fake import SAMPLE_PNG as PNG
from lily_s3.fake import MotoS3, decode_post_policy, post_presigned_form

BUCKET = "lily-test-photos"
TENANT = "acme"
OTHER_TENANT = "bob"

Headers = Callable[..., Awaitable[dict[str, str]]]


async def post_form(upload: dict[str, Any], data: bytes, content_type: str) -> int:
    return await asyncio.to_thread(post_presigned_form, upload, data, content_type)


async def request_upload(lily: Harness, auth: dict[str, str], **body: Any) -> tuple[int, dict[str, Any]]:
    response = await lily.client.post("/api/uploads", headers=auth, json=body)
    return response.status_code, await response.get_json()


async def test_presigned_post_upload_lands_under_the_tenant_prefix(lily: Harness, headers: Headers, s3: MotoS3) -> None:
    status, issued = await request_upload(lily, await headers(), content_type="image/jpeg", filename="deck.jpg")

    assert status == 201
    assert issued["key"].startswith(f"tenants/{TENANT}/quotes/{issued['quote_id']}/")
    assert issued["upload"]["fields"]["key"] == issued["key"]
    assert await post_form(issued["upload"], JPEG, "image/jpeg") == 204
    stored = s3.client().get_object(Bucket=BUCKET, Key=issued["key"])
    assert stored["Body"].read() == JPEG
    assert stored["ContentType"] == "image/jpeg"


async def test_generated_policy_caps_size_pins_type_and_expires_soon(lily: Harness, headers: Headers) -> None:
    before = datetime.now(UTC).timestamp()
    status, issued = await request_upload(lily, await headers(), content_type="image/png")

    assert status == 201
    policy = decode_post_policy(issued["upload"]["fields"])
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 10 * 1024 * 1024] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert {"key": issued["key"]} in conditions
    assert {"bucket": BUCKET} in conditions
    expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    # The default form lifetime is 600 s; the policy timestamp has whole-second precision.
    assert before + 600 - 2 <= expiration <= datetime.now(UTC).timestamp() + 600 + 1
    assert issued["expires_in"] == 600
    assert issued["upload"]["fields"]["Content-Type"] == "image/png"


async def test_tenant_limits_shape_the_policy(lily: Harness, headers: Headers) -> None:
    await lily.host.tenants.set_plugin_settings(
        TENANT, "s3", {"max_photo_bytes": 2048, "allowed_types": ["image/jpeg"], "key_prefix": "photos/{tenant}/"}
    )
    status, issued = await request_upload(lily, await headers(), content_type="image/jpeg")

    assert status == 201
    assert issued["key"].startswith(f"photos/{TENANT}/quotes/")
    assert ["content-length-range", 1, 2048] in decode_post_policy(issued["upload"]["fields"])["conditions"]


async def test_disallowed_type_is_refused_naming_the_allowed_ones(lily: Harness, headers: Headers) -> None:
    status, body = await request_upload(lily, await headers(), content_type="image/gif")

    assert status == 400
    assert body["error"] == "unsupported_content_type"
    assert body["allowed"] == ["image/jpeg", "image/png", "image/heic", "image/webp"]
    assert "image/jpeg, image/png, image/heic, image/webp" in body["message"]


async def test_malformed_requests_get_clear_400s(lily: Harness, headers: Headers) -> None:
    auth = await headers()
    not_json = await lily.client.post("/api/uploads", headers=auth, data="content_type=image/jpeg")
    no_type = await lily.client.post("/api/uploads", headers=auth, json={"filename": "x.jpg"})
    bad_quote = await lily.client.post(
        "/api/uploads", headers=auth, json={"content_type": "image/jpeg", "quote_id": "../bob"}
    )
    no_key = await lily.client.post("/api/uploads/complete", headers=auth, json={"photo": 1})

    assert [not_json.status_code, no_type.status_code, bad_quote.status_code, no_key.status_code] == [400] * 4
    assert (await bad_quote.get_json())["error"] == "invalid_quote_id"


async def test_the_api_needs_a_tenant_key(lily: Harness) -> None:
    response = await lily.client.post("/api/uploads", json={"content_type": "image/jpeg"})
    forged = await lily.client.get("/api/quotes/q_1/photos", headers={"Authorization": "Bearer lily_acme_nope"})

    assert response.status_code == 401
    assert forged.status_code == 403


async def test_complete_records_the_photo_on_the_quote(
    lily: Harness, upload_photo: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    first = await upload_photo(JPEG, quote_id="job-17")
    second = await upload_photo(PNG, content_type="image/png", quote_id="job-17")

    assert first["quote_id"] == second["quote_id"] == "job-17"
    assert first["photo"]["size"] == len(JPEG)
    assert first["photo"]["filename"] == "front-deck.jpg"
    assert second["photo"]["content_type"] == "image/png"


async def test_complete_twice_is_harmless(lily: Harness, headers: Headers) -> None:
    auth = await headers()
    _, issued = await request_upload(lily, auth, content_type="image/jpeg")
    await post_form(issued["upload"], JPEG, "image/jpeg")

    first = await lily.client.post("/api/uploads/complete", headers=auth, json={"key": issued["key"]})
    again = await lily.client.post("/api/uploads/complete", headers=auth, json={"key": issued["key"]})

    assert (first.status_code, again.status_code) == (201, 200)
    assert (await again.get_json())["photo"] == (await first.get_json())["photo"]


async def test_complete_rejects_a_key_of_another_tenant(lily: Harness, headers: Headers) -> None:
    _, bobs = await request_upload(lily, await headers(OTHER_TENANT), content_type="image/jpeg")
    await post_form(bobs["upload"], JPEG, "image/jpeg")

    stolen = await lily.client.post("/api/uploads/complete", headers=await headers(TENANT), json={"key": bobs["key"]})
    sneaky = await lily.client.post(
        "/api/uploads/complete",
        headers=await headers(TENANT),
        json={"key": f"tenants/{TENANT}/../{OTHER_TENANT}/quotes/{bobs['quote_id']}/x.jpg"},
    )

    assert stolen.status_code == 403
    assert (await stolen.get_json())["error"] == "forbidden_key"
    assert sneaky.status_code == 403
    listing = await lily.client.get(f"/api/quotes/{bobs['quote_id']}/photos", headers=await headers(TENANT))
    assert listing.status_code == 404


async def test_complete_rejects_an_oversize_object(lily: Harness, headers: Headers, s3: MotoS3) -> None:
    await lily.host.tenants.set_plugin_settings(TENANT, "s3", {"max_photo_bytes": 1024})
    auth = await headers()
    _, issued = await request_upload(lily, auth, content_type="image/jpeg")
    # moto does not enforce POST policies (real S3 would refuse this upload), so it lands.
    await post_form(issued["upload"], b"\xff" * 4096, "image/jpeg")

    response = await lily.client.post("/api/uploads/complete", headers=auth, json={"key": issued["key"]})

    assert response.status_code == 413
    body = await response.get_json()
    assert body["error"] == "too_large"
    assert body["max_bytes"] == 1024
    assert (await lily.client.get(f"/api/quotes/{issued['quote_id']}/photos", headers=auth)).status_code == 404


async def test_complete_rejects_a_different_content_type(lily: Harness, headers: Headers, s3: MotoS3) -> None:
    auth = await headers()
    _, issued = await request_upload(lily, auth, content_type="image/jpeg")
    s3.client().put_object(Bucket=BUCKET, Key=issued["key"], Body=b"<html>", ContentType="text/html")

    response = await lily.client.post("/api/uploads/complete", headers=auth, json={"key": issued["key"]})

    assert response.status_code == 415


async def test_complete_before_upload_and_for_unissued_keys(lily: Harness, headers: Headers, s3: MotoS3) -> None:
    auth = await headers()
    _, issued = await request_upload(lily, auth, content_type="image/jpeg")
    invented = f"tenants/{TENANT}/quotes/q_made_up/p_made_up.jpg"
    s3.client().put_object(Bucket=BUCKET, Key=invented, Body=JPEG, ContentType="image/jpeg")

    early = await lily.client.post("/api/uploads/complete", headers=auth, json={"key": issued["key"]})
    unissued = await lily.client.post("/api/uploads/complete", headers=auth, json={"key": invented})

    assert early.status_code == 409
    assert (await early.get_json())["error"] == "not_uploaded"
    assert unissued.status_code == 404


async def test_photo_links_work_and_carry_the_lifetime(
    lily: Harness, headers: Headers, upload_photo: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    done = await upload_photo(JPEG)
    auth = await headers()

    default = await lily.client.get(f"/api/quotes/{done['quote_id']}/photos", headers=auth)
    short = await lily.client.get(f"/api/quotes/{done['quote_id']}/photos?expires_in=120", headers=auth)

    assert default.status_code == 200
    body = await default.get_json()
    assert body["expires_in"] == 3600
    [photo] = body["photos"]
    link = urlsplit(photo["url"])
    assert link.path.endswith(photo["key"])
    assert parse_qs(link.query)["X-Amz-Expires"] == ["3600"]
    async with httpx.AsyncClient() as client:
        fetched = await client.get(photo["url"])
    assert fetched.status_code == 200
    assert fetched.content == JPEG
    [short_photo] = (await short.get_json())["photos"]
    assert parse_qs(urlsplit(short_photo["url"]).query)["X-Amz-Expires"] == ["120"]


async def test_link_lifetime_is_bounded_by_the_tenant_setting(lily: Harness, headers: Headers) -> None:
    await lily.host.tenants.set_plugin_settings(TENANT, "s3", {"link_lifetime_seconds": 7 * 24 * 3600})
    _, issued = await request_upload(lily, await headers(), content_type="image/jpeg")
    auth = await headers()

    too_long = await lily.client.get(f"/api/quotes/{issued['quote_id']}/photos?expires_in=604801", headers=auth)
    not_a_number = await lily.client.get(f"/api/quotes/{issued['quote_id']}/photos?expires_in=soon", headers=auth)

    assert too_long.status_code == 400
    assert not_a_number.status_code == 400


async def test_tenant_link_lifetime_cannot_exceed_seven_days(lily: Harness) -> None:
    from lily_host import TenantError

    try:
        await lily.host.tenants.set_plugin_settings(TENANT, "s3", {"link_lifetime_seconds": 7 * 24 * 3600 + 1})
    except TenantError as error:
        assert "link_lifetime_seconds" in str(error)
    else:
        raise AssertionError("a lifetime beyond the SigV4 limit was accepted")


async def test_quotes_are_private_to_their_tenant(
    lily: Harness, headers: Headers, upload_photo: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    done = await upload_photo(JPEG, tenant=OTHER_TENANT, quote_id="shared-name")
    await upload_photo(PNG, content_type="image/png", tenant=TENANT, quote_id="shared-name")

    mine = await lily.client.get("/api/quotes/shared-name/photos", headers=await headers(TENANT))
    listing = await lily.client.get("/api/quotes", headers=await headers(TENANT))

    [photo] = (await mine.get_json())["photos"]
    assert photo["key"].startswith(f"tenants/{TENANT}/")
    assert photo["photo_id"] != done["photo"]["photo_id"]
    assert [quote["quote_id"] for quote in (await listing.get_json())["quotes"]] == ["shared-name"]


async def test_unknown_quote_is_404(lily: Harness, headers: Headers) -> None:
    response = await lily.client.get("/api/quotes/q_nothing/photos", headers=await headers())
    assert response.status_code == 404
