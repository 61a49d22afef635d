"""Webhooks over real HTTP (hypercorn on loopback): the front door that takes fixed webhook paths
ahead of Quart, and the Quart door that takes the rest, give the same answers and store the same."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sample_echo_plugin
import sample_path_webhook
from live_server import LiveServer

from lily_host.testing import HarnessFactory, hmac_sha256_hex

SECRET = "echo-secret"


class Served(LiveServer):
    """The harness's app behind hypercorn, with a raw HTTP/1.1 exchange."""

    async def exchange(self, *parts: bytes, pause: float = 0.0) -> tuple[int, bytes]:
        """Send ``parts`` as separate writes (``pause`` apart) and read one response."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for part in parts:
                writer.write(part)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            return int(head[9:12]), await reader.readexactly(length)
        finally:
            writer.close()


@pytest.fixture
async def served(lily_harness: HarnessFactory) -> AsyncIterator[Served]:
    modules = {"echo": sample_echo_plugin, "pathy": sample_path_webhook}
    async with lily_harness(extra_modules=modules, env={"ECHO_SECRET": SECRET}) as lily:
        await lily.create_tenant("acme", plugins={"echo": {"numbers": ["+15550001111"]}})
        async with Served(lily) as server:
            yield server


def head(path: str, body_length: int | None, content_type: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: lily.test", f"Content-Type: {content_type}"]
    if body_length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {body_length}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(*chunks: bytes) -> bytes:
    return b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for chunk in chunks) + b"0\r\n\r\n"


def echo(payload: dict[str, Any]) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    return body, hmac_sha256_hex(SECRET, body)


async def due(served: Served) -> int:
    return int((await served.lily.host.queue.stats()).due)


async def test_a_body_that_arrives_in_pieces_is_accepted_once(served: Served) -> None:
    body, signature = echo({"id": "h1", "to": "+15550001111", "text": "hi"})
    request_head = head("/webhooks/echo/json", len(body), "application/json", X_Echo_Signature=signature)
    status, answer = await served.exchange(request_head, body[:10], body[10:], pause=0.05)
    assert status == 200 and json.loads(answer) == {"ok": True}
    assert await due(served) == 1
    status, _ = await served.exchange(request_head + body)
    assert status == 200
    assert await due(served) == 1  # the duplicate scheduled nothing


async def test_a_chunked_body_is_read_whole(served: Served) -> None:
    body, signature = echo({"id": "h2", "to": "+15550001111", "text": "chunks"})
    request_head = head("/webhooks/echo/json", None, "application/json", X_Echo_Signature=signature)
    status, _ = await served.exchange(request_head + chunked(body[:7], body[7:]))
    assert status == 200
    assert await due(served) == 1


async def test_a_chunked_body_past_the_limit_is_413_without_a_length_to_warn(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sample_echo_plugin.EchoJsonWebhook, "max_body_bytes", 1024)
    body, signature = echo({"id": "h3", "to": "+15550001111", "text": "x" * 4096})
    request_head = head("/webhooks/echo/json", None, "application/json", X_Echo_Signature=signature)
    status, answer = await served.exchange(request_head + chunked(body[:800], body[800:]))
    assert status == 413 and json.loads(answer)["error"] == "too_large"
    assert await due(served) == 0


async def test_a_client_that_leaves_mid_body_stores_nothing_and_the_server_carries_on(served: Served) -> None:
    body, signature = echo({"id": "h4", "to": "+15550001111", "text": "gone"})
    _, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(head("/webhooks/echo/json", len(body), "application/json", X_Echo_Signature=signature) + body[:5])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()
    await asyncio.sleep(0.1)
    assert await due(served) == 0
    status, _ = await served.exchange(
        head("/webhooks/echo/json", len(body), "application/json", X_Echo_Signature=signature) + body
    )
    assert status == 200  # the same delivery, complete this time, is not taken for a duplicate
    assert await due(served) == 1


async def test_a_body_that_stalls_gets_408_and_stores_nothing(served: Served) -> None:
    served.lily.app.config["BODY_TIMEOUT"] = 0.2
    body, signature = echo({"id": "h7", "to": "+15550001111"})
    request_head = head("/webhooks/echo/json", len(body), "application/json", X_Echo_Signature=signature)
    status, answer = await served.exchange(request_head + body[:5])
    assert status == 408 and json.loads(answer)["error"] == "timeout"
    assert await due(served) == 0


async def test_bad_signature_and_wrong_type_are_refused_at_the_front_door(served: Served) -> None:
    body, _ = echo({"id": "h5", "to": "+15550001111"})
    status, answer = await served.exchange(
        head("/webhooks/echo/json", len(body), "application/json", X_Echo_Signature="0" * 64) + body
    )
    assert status == 403 and json.loads(answer)["error"] == "bad_signature"
    status, answer = await served.exchange(head("/webhooks/echo/json", len(body), "text/plain") + body)
    assert status == 415 and json.loads(answer)["error"] == "unsupported_media_type"
    assert await due(served) == 0


async def test_other_methods_on_a_webhook_path_get_quarts_405(served: Served) -> None:
    status, answer = await served.exchange(b"GET /webhooks/echo/json HTTP/1.1\r\nHost: lily.test\r\n\r\n")
    assert status == 405 and json.loads(answer)["error"] == "method_not_allowed"


async def test_a_path_with_a_converter_runs_the_same_pipeline_through_quart(served: Served) -> None:
    body = json.dumps({"id": "p1"}).encode()
    status, answer = await served.exchange(head("/webhooks/pathy/acme", len(body), "application/json") + body)
    assert status == 200 and json.loads(answer) == {"tenant": "acme", "door": "quart"}
    status, _ = await served.exchange(head("/webhooks/pathy/acme", len(body), "application/json") + body)
    assert status == 200
    assert await due(served) == 1
    status, answer = await served.exchange(head("/webhooks/pathy/nobody", len(body), "application/json") + body)
    assert status == 404 and json.loads(answer)["error"] == "unknown_tenant"


async def test_front_door_answers_are_counted_in_metrics(served: Served) -> None:
    body, signature = echo({"id": "h6", "to": "+15550001111"})
    await served.exchange(head("/webhooks/echo/json", len(body), "application/json", X_Echo_Signature=signature) + body)
    metrics = await (await served.lily.client.get("/metrics")).get_data(as_text=True)
    assert 'lily_webhooks_total{integration="echo",outcome="accepted"}' in metrics
