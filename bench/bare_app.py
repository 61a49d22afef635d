"""The peer of the ingest benchmark: a bare Quart endpoint that verifies Twilio's HMAC and does one ZADD.

Run by bench/ingest_bench.py under hypercorn (1 worker), exactly like `lily serve`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import uuid

import redis.asyncio as aioredis
from quart import Quart, Response, request

AUTH_TOKEN = os.environ["TWILIO_AUTH_TOKEN"]
PUBLIC_URL = os.environ["LILY_PUBLIC_URL"]

app = Quart(__name__)
redis = aioredis.Redis.from_url(os.environ["REDIS_URL"])


@app.post("/webhooks/twilio/voice")
async def voice() -> Response:
    form = await request.form
    data = PUBLIC_URL + request.path + "".join(key + form[key] for key in sorted(form.keys()))
    expected = base64.b64encode(hmac.new(AUTH_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "")):
        return Response("forbidden", status=403)
    await redis.zadd("bare:due", {uuid.uuid4().hex: time.time() + 30})
    return Response("<Response/>", content_type="text/xml")
