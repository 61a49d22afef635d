"""Photos a customer texts are filed under a quote, and the host's conversation inbox links that quote."""

from __future__ import annotations

from lily_host.testing import Harness
from lily_s3.fake import SAMPLE_JPEG as JPEG
from lily_s3.fake import FakeMediaServer

CUSTOMER = "+15551234567"
ACCOUNT_MEDIA = "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages"


async def test_the_conversation_links_the_quote_built_from_the_photos(
    lily: Harness, media_server: FakeMediaServer
) -> None:
    url = media_server.add(f"{ACCOUNT_MEDIA}/MM9/Media/ME1", JPEG, "image/jpeg")
    data = {
        "from": CUSTOMER,
        "to": "+15557654321",
        "body": "Here you go, ZIP 30301",
        "message_sid": "MM9",
        "media": [{"url": url, "content_type": "image/jpeg"}],
    }
    await lily.host.events.emit("message.received", data, tenant="acme")
    await lily.run_due()

    headers = await lily.tenant_headers("acme")
    [quote] = (await (await lily.client.get("/api/quotes", headers=headers)).get_json())["quotes"]
    [conversation] = (await (await lily.client.get("/api/conversations", headers=headers)).get_json())["conversations"]
    assert conversation["quote_id"] == quote["quote_id"]
    detail = await (await lily.client.get(f"/api/conversations/{conversation['id']}", headers=headers)).get_json()
    [message] = detail["messages"]
    assert (message["body"], message["media"], message["quote_id"]) == (
        "Here you go, ZIP 30301",
        ["image/jpeg"],
        quote["quote_id"],
    )


async def test_the_quote_record_keeps_the_customer_sealed(lily: Harness, media_server: FakeMediaServer) -> None:
    url = media_server.add(f"{ACCOUNT_MEDIA}/MM8/Media/ME1", JPEG, "image/jpeg")
    data = {"from": CUSTOMER, "to": "+15557654321", "body": "", "message_sid": "MM8", "media": [{"url": url}]}
    await lily.host.events.emit("message.received", data, tenant="acme")
    await lily.run_due()

    keys = [key.decode() async for key in lily.host.redis.scan_iter(match="lily:{t:*}:s3:*")]
    assert keys and not any(CUSTOMER.lstrip("+") in key for key in keys)
    [quote_key] = [key for key in keys if key.endswith(tuple("0123456789abcdef")) and ":quote:" in key]
    stored = await lily.host.redis.hget(quote_key, "customer")
    assert stored is not None and stored.startswith(b"enc:v1:")
    [quote] = (await (await lily.client.get("/api/quotes", headers=await lily.tenant_headers("acme"))).get_json())[
        "quotes"
    ]
    assert quote["customer"] == CUSTOMER
