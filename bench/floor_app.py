"""The floors of the ingest benchmark: raw ASGI apps that read the body and answer empty TwiML.

``app``: no framework, no signature, no Redis: what hypercorn (1 worker) costs by itself.
``zadd_app``: the same plus one ZADD through redis-py before answering: the least any app that
commits a webhook to Redis before it answers can cost. Run beside bare_app.py and `lily serve` by
bench/ingest_bench.py, so each run shows how close to those ceilings the Quart apps are, and
whether a latency target is within reach on this machine at all.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response />'
HEADERS = [(b"content-type", b"text/xml; charset=utf-8"), (b"content-length", str(len(EMPTY_TWIML)).encode())]


_redis = aioredis.Redis.from_url(os.environ["REDIS_URL"])


async def _lifespan(receive: Any, send: Any) -> None:
    message = await receive()
    if message["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})


async def _read_body(receive: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)


async def _answer(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": EMPTY_TWIML})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await _lifespan(receive, send)
        return
    await _read_body(receive)
    await _answer(send)


async def zadd_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await _lifespan(receive, send)
        return
    await _read_body(receive)
    await _redis.zadd("floor:due", {uuid.uuid4().hex: time.time() + 30})
    await _answer(send)
