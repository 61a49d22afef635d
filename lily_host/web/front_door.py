"""The front door: POSTs to a webhook's fixed path go straight from the ASGI server to the pipeline.

Webhooks are the traffic that comes in bursts, and Quart's per-request machinery (a request
context, two tasks per request, URL matching, a response timeout) was a fifth of the CPU a webhook
cost. :class:`WebhookFrontDoor` is installed as ``app.asgi_app``, so hypercorn and Quart's test
client both pass through it; whatever it does not take (other methods, other paths, paths with
converters, websockets, lifespan) goes on to Quart unchanged. Handlers run inside the app context
(``jsonify`` and ``current_app`` work), exactly as behind the Quart door.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping

from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Scope,
)
from quart import Quart, Response

from lily_host.observability.log import get_logger
from lily_host.plugin_api.contract import RequestHeaders, WebhookResponse
from lily_host.web.webhook_pipeline import INTERNAL_ERROR, Inbound, WebhookRoute

__all__ = ["WebhookFrontDoor"]

log = get_logger("lily.webhooks")

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]


class WebhookFrontDoor:
    """ASGI middleware: a POST to a webhook's fixed path runs the pipeline without Quart's request machinery.

    Installed as ``app.asgi_app`` so that hypercorn and Quart's test client both go through it.
    """

    def __init__(self, app: Quart, inner: ASGIApp, routes: Mapping[str, WebhookRoute]) -> None:
        self._app = app
        self._inner = inner
        self._routes = dict(routes)

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self._routes.get(scope["path"])
            if route is not None:
                await self._serve(route, scope, receive, send)
                return
        await self._inner(scope, receive, send)

    async def _serve(
        self, route: WebhookRoute, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        client = scope.get("client")
        inbound = Inbound(
            method="POST",
            scheme=scope["scheme"],
            path=scope["path"],
            query_string=scope["query_string"],
            headers=RequestHeaders.from_asgi(scope["headers"]),
            remote_addr=client[0] if client else None,
            path_params={},
            # Quart's BODY_TIMEOUT (60 s) bounds a slow body on both doors.
            read_body=functools.partial(_read_asgi_body, receive, float(self._app.config["BODY_TIMEOUT"])),
        )
        try:
            # The app context: handlers may use jsonify/current_app, as in a Quart view.
            async with self._app.app_context():
                response = await route.respond(self._app.extensions["lily"], inbound)
                if isinstance(response, WebhookResponse):
                    status, headers, body = response.status, list(response.asgi_headers), response.body
                else:
                    status, headers, body = await _render(response)
        except _ClientGone:
            return
        except Exception:  # e.g. a response that cannot render: still an answer, never a dropped connection
            log.exception("webhook response failed", integration=route.integration)
            status, headers, body = INTERNAL_ERROR.status, list(INTERNAL_ERROR.asgi_headers), INTERNAL_ERROR.body
        await send(HTTPResponseStartEvent(type="http.response.start", status=status, headers=headers, trailers=False))
        await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))


async def _render(response: Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A Quart Response as ASGI status, headers and body."""
    data = await response.get_data()
    body = data.encode() if isinstance(data, str) else data
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()]
    return response.status_code, headers, body


class _ClientGone(Exception):
    """The client disconnected before its body arrived: nothing to process, nobody to answer."""


async def _read_asgi_body(receive: ASGIReceiveCallable, seconds: float, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(seconds):
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
