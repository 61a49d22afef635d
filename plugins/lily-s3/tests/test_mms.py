"""Inbound MMS photos: downloaded from a Twilio-like media server and stored in the tenant's prefix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from lily_host.testing import Harness
from lily_s3.fake import SAMPLE_JPEG as JPEG
from lily_s3.fake import SAMPLE_PNG as PNG
from lily_s3.fake import FakeMediaServer, MotoS3

BUCKET = "lily-test-photos"
TENANT = "acme"
CUSTOMER = "+15551234567"
ACCOUNT_MEDIA = "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages"

Headers = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def cdn() -> Iterator[FakeMediaServer]:
    """Another host, not on the credential allow-list (like Twilio's media CDN)."""
    server = FakeMediaServer(require_auth=False).start()
    try:
        yield server
    finally:
        server.stop()


def message(sid: str, *media: tuple[str, str], sender: str = CUSTOMER) -> dict[str, Any]:
    return {
        "from": sender,
        "to": "+15557654321",
        "body": "here are the photos",
        "message_sid": sid,
        "media": [{"url": url, "content_type": content_type} for url, content_type in media],
    }


async def receive(lily: Harness, data: dict[str, Any]) -> None:
    await lily.host.events.emit("message.received", data, tenant=TENANT)
    await lily.run_due()


async def photos_of(lily: Harness, headers: Headers, quote_id: str) -> list[dict[str, Any]]:
    response = await lily.client.get(f"/api/quotes/{quote_id}/photos", headers=await headers())
    assert response.status_code == 200
    photos: list[dict[str, Any]] = (await response.get_json())["photos"]
    return photos


async def quotes(lily: Harness, headers: Headers) -> list[dict[str, Any]]:
    response = await lily.client.get("/api/quotes", headers=await headers())
    listed: list[dict[str, Any]] = (await response.get_json())["quotes"]
    return listed


async def test_mms_media_is_downloaded_with_twilio_auth_and_stored(
    lily: Harness, headers: Headers, media_server: FakeMediaServer, s3: MotoS3
) -> None:
    jpeg_url = media_server.add(f"{ACCOUNT_MEDIA}/MM1/Media/ME1", JPEG, "image/jpeg")
    png_url = media_server.add(f"{ACCOUNT_MEDIA}/MM1/Media/ME2", PNG, "image/png")

    await receive(lily, message("MM1", (jpeg_url, "image/jpeg"), (png_url, "image/png")))

    [quote] = await quotes(lily, headers)
    assert quote["customer"] == CUSTOMER
    assert quote["source"] == "mms"
    photos = await photos_of(lily, headers, quote["quote_id"])
    assert [photo["key"] for photo in photos] == [
        f"tenants/{TENANT}/quotes/{quote['quote_id']}/MM1-0.jpg",
        f"tenants/{TENANT}/quotes/{quote['quote_id']}/MM1-1.png",
    ]
    assert s3.client().get_object(Bucket=BUCKET, Key=photos[0]["key"])["Body"].read() == JPEG
    assert {request.authorization for request in media_server.requests} == {media_server.expected_authorization()}


async def test_credentials_never_go_to_hosts_off_the_allow_list(
    lily: Harness, headers: Headers, media_server: FakeMediaServer, cdn: FakeMediaServer
) -> None:
    cdn_url = cdn.add("/media/abc", JPEG, "image/jpeg")
    redirecting = media_server.add_redirect(f"{ACCOUNT_MEDIA}/MM2/Media/ME1", cdn_url)
    elsewhere = cdn.add("/elsewhere.png", PNG, "image/png")

    await receive(lily, message("MM2", (redirecting, "image/jpeg"), (elsewhere, "image/png")))

    [twilio_request] = media_server.requests
    assert twilio_request.authorization == media_server.expected_authorization()
    assert [request.authorization for request in cdn.requests] == [None, None]
    [quote] = await quotes(lily, headers)
    assert quote["photo_count"] == 2


async def test_oversize_and_disallowed_media_are_skipped(
    lily: Harness, headers: Headers, media_server: FakeMediaServer
) -> None:
    await lily.host.tenants.set_plugin_settings(TENANT, "s3", {"max_photo_bytes": 1024})
    big = media_server.add(f"{ACCOUNT_MEDIA}/MM3/Media/ME1", b"\xff" * 4096, "image/jpeg")
    big_unannounced = media_server.add(
        f"{ACCOUNT_MEDIA}/MM3/Media/ME2", b"\xff" * 4096, "image/jpeg", send_length=False
    )
    gif = media_server.add(f"{ACCOUNT_MEDIA}/MM3/Media/ME3", b"GIF89a", "image/gif")
    fine = media_server.add(f"{ACCOUNT_MEDIA}/MM3/Media/ME4", JPEG, "image/jpeg")

    await receive(
        lily,
        message("MM3", (big, "image/jpeg"), (big_unannounced, "image/jpeg"), (gif, "image/gif"), (fine, "image/jpeg")),
    )

    [quote] = await quotes(lily, headers)
    [photo] = await photos_of(lily, headers, quote["quote_id"])
    assert photo["key"].endswith("/MM3-3.jpg")
    assert await lily.host.queue.list_tasks("dead") == []


async def test_a_failing_media_server_is_retried_without_storing_twice(
    lily: Harness, headers: Headers, media_server: FakeMediaServer
) -> None:
    first_path, second_path = f"{ACCOUNT_MEDIA}/MM4/Media/ME1", f"{ACCOUNT_MEDIA}/MM4/Media/ME2"
    first = media_server.add(first_path, JPEG, "image/jpeg")
    second = media_server.add(second_path, PNG, "image/png")
    media_server.fail_next(503, path=second_path)

    await receive(lily, message("MM4", (first, "image/jpeg"), (second, "image/png")))
    [quote] = await quotes(lily, headers)
    assert quote["photo_count"] == 1

    await lily.advance(120)

    assert [(item["quote_id"], item["photo_count"]) for item in await quotes(lily, headers)] == [(quote["quote_id"], 2)]
    assert len(media_server.requests_to(first_path)) == 1
    assert len(media_server.requests_to(second_path)) == 2


async def test_photos_join_the_customers_open_quote_until_it_goes_quiet(
    lily: Harness, headers: Headers, media_server: FakeMediaServer
) -> None:
    url = media_server.add(f"{ACCOUNT_MEDIA}/MM7/Media/ME1", JPEG, "image/jpeg")

    await receive(lily, message("MM7", (url, "image/jpeg")))
    await lily.advance(3600)
    await receive(lily, message("MM8", (url, "image/jpeg")))
    await receive(lily, message("MM9", (url, "image/jpeg"), sender="+15550001111"))
    await lily.advance(73 * 3600)
    await receive(lily, message("MM10", (url, "image/jpeg")))

    listed = await quotes(lily, headers)
    by_customer = sorted((quote["customer"], quote["photo_count"]) for quote in listed)
    assert by_customer == [("+15550001111", 1), (CUSTOMER, 1), (CUSTOMER, 2)]


async def test_a_malformed_event_is_dead_lettered_not_retried(lily: Harness, media_server: FakeMediaServer) -> None:
    url = media_server.add(f"{ACCOUNT_MEDIA}/MM11/Media/ME1", JPEG, "image/jpeg")
    data = message("MM11", (url, "image/jpeg"))
    del data["message_sid"]

    await receive(lily, data)

    [dead] = await lily.host.queue.list_tasks("dead")
    assert dead.type == "s3.store_inbound_media"
    assert "message_sid" in (dead.last_error or "")
    assert media_server.requests == []
