"""The floor of the ingest benchmark: a raw ASGI app that reads the body and answers empty TwiML.

No framework, no signature, no Redis: what hypercorn (1 worker) costs by itself on this machine.
Run beside bare_app.py and `lily serve` by bench/ingest_bench.py, so each run shows how close to the
server's own ceiling the two Quart apps are, and whether a latency target is within reach at all.
"""

from __future__ import annotations

from typing import Any

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response />'
HEADERS = [(b"content-type", b"text/xml; charset=utf-8"), (b"content-length", str(len(EMPTY_TWIML)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: nothing to start
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": EMPTY_TWIML})
