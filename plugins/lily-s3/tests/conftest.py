"""Fixtures: moto's S3 server (real HTTP), a Twilio-like media server, and a Lily with only lily-s3."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lily_host.testing import Harness, HarnessFactory
from lily_s3.fake import SAMPLE_JPEG, FakeMediaServer, MotoS3, post_presigned_form

BUCKET = "lily-test-photos"
TENANT = "acme"
OTHER_TENANT = "bob"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3]:
    moto = MotoS3().start()
    try:
        yield moto
    finally:
        moto.stop()


@pytest.fixture
def s3(moto_server: MotoS3) -> Iterator[MotoS3]:
    """A clean moto (no buckets, users or enforcement) with the test bucket created."""
    moto_server.reset()
    moto_server.create_bucket(BUCKET)
    try:
        yield moto_server
    finally:
        moto_server.reset()


@pytest.fixture
def media_server() -> Iterator[FakeMediaServer]:
    server = FakeMediaServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3: MotoS3, media_server: FakeMediaServer) -> dict[str, str]:
    return {
        **s3.env(BUCKET),
        "TWILIO_ACCOUNT_SID": media_server.account_sid,
        "TWILIO_AUTH_TOKEN": media_server.auth_token,
        "TWILIO_API_BASE": media_server.base_url,
    }


@pytest.fixture
async def lily(lily_harness: HarnessFactory, s3_env: dict[str, str]) -> AsyncIterator[Harness]:
    """Lily with lily-s3 against moto, tenants ``acme`` and ``bob``."""
    async with lily_harness(plugins=["s3"], env=s3_env) as harness:
        await harness.create_tenant(TENANT, name="Acme Washing")
        await harness.create_tenant(OTHER_TENANT, name="Bob's Windows")
        yield harness


@pytest.fixture
def headers(lily: Harness) -> Callable[[str], Awaitable[dict[str, str]]]:
    async def make(tenant: str = TENANT) -> dict[str, str]:
        return {**(await lily.tenant_headers(tenant)), "Content-Type": "application/json"}

    return make


@pytest.fixture
def upload_photo(
    lily: Harness, headers: Callable[[str], Awaitable[dict[str, str]]]
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Request an upload, post the bytes to S3 and complete it; returns the completion body."""

    async def upload(
        data: bytes = SAMPLE_JPEG,
        *,
        content_type: str = "image/jpeg",
        tenant: str = TENANT,
        quote_id: str | None = None,
    ) -> dict[str, Any]:
        auth = await headers(tenant)
        body: dict[str, Any] = {"content_type": content_type, "filename": "front-deck.jpg"}
        if quote_id is not None:
            body["quote_id"] = quote_id
        issued = await lily.client.post("/api/uploads", headers=auth, json=body)
        assert issued.status_code == 201, await issued.get_data(as_text=True)
        issued_body: dict[str, Any] = await issued.get_json()
        assert await asyncio.to_thread(post_presigned_form, issued_body["upload"], data, content_type) in (
            200,
            201,
            204,
        )
        completed = await lily.client.post("/api/uploads/complete", headers=auth, json={"key": issued_body["key"]})
        assert completed.status_code == 201, await completed.get_data(as_text=True)
        result: dict[str, Any] = await completed.get_json()
        return result

    return upload


DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "s3.md"


@pytest.fixture(scope="session")
def documented_json() -> dict[str, Any]:
    """The ```json blocks of docs/plugins/s3.md, by the ### heading they sit under."""
    blocks: dict[str, Any] = {}
    heading = ""
    for match in re.finditer(r"^### (?P<heading>[^\n]+)$|^```json\n(?P<body>.*?)^```$", DOC.read_text(), re.M | re.S):
        if match.group("heading"):
            heading = match.group("heading").strip()
        else:
            blocks[heading] = json.loads(match.group("body"))
    return blocks
