"""The front door: POSTs to a webhook's fixed path go straight from the ASGI server to the pipeline.

Webhooks are the traffic that comes in bursts, and Quart's per-request machinery (a request
context, two tasks per request, URL matching, a response timeout) was a fifth of the CPU a webhook
cost. :class:`WebhookFrontDoor` is installed as ``app.asgi_app``, so hypercorn and Quart's test
client both pass through it; whatever it does not take (other methods, other paths, paths with
converters, websockets, lifespan) goes on to Quart unchanged. Handlers run inside the app context
(``jsonify`` and ``current_app`` work), exactly as behind the Quart door.

An early answer (503, 403, 413, 415, 408, ...) is sent before the body was read. The ASGI server
keeps only a few body pieces queued for the app; if nobody takes them, its read loop blocks, and
it never learns that the client left: the connection stays open for good. So whenever the body has
not ended, a drain task takes (and drops) the rest while the answer goes out, and is stopped soon
after: hypercorn closes a connection whose body was not read to the end once the answer is sent.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping

from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
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
        receiver = _Receiver(receive)
        inbound = Inbound(
            method="POST",
            scheme=scope["scheme"],
            path=scope["path"],
            query_string=scope["query_string"],
            headers=RequestHeaders.from_asgi(scope["headers"]),
            remote_addr=client[0] if client else None,
            path_params={},
            # Quart's BODY_TIMEOUT (60 s) bounds a slow body on both doors.
            read_body=functools.partial(_read_asgi_body, receiver, float(self._app.config["BODY_TIMEOUT"])),
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
        if receiver.finished:
            await _send_response(send, status, headers, body)
            return
        drain = asyncio.get_running_loop().create_task(_drain(receiver))
        try:
            await _send_response(send, status, headers, body)
            # hypercorn queues http.disconnect as soon as the answer is out, so this ends at once;
            # the bound is for servers that never say so (the drain must not outlive the request).
            await asyncio.wait_for(asyncio.shield(drain), DRAIN_SECONDS)
        except TimeoutError:
            pass
        finally:
            drain.cancel()


#: How long, after an early answer, the rest of an unread body is taken and dropped.
DRAIN_SECONDS = 5.0


async def _send_response(send: ASGISendCallable, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(HTTPResponseStartEvent(type="http.response.start", status=status, headers=headers, trailers=False))
    await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))


class _Receiver:
    """``receive``, remembering whether the request's body has ended (or its client has gone)."""

    __slots__ = ("_receive", "finished")

    def __init__(self, receive: ASGIReceiveCallable) -> None:
        self._receive = receive
        self.finished = False

    async def __call__(self) -> ASGIReceiveEvent:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.finished = True
        return message


async def _drain(receiver: _Receiver) -> None:
    """Take and drop the rest of a body nobody will read, so the server's read loop never blocks on it."""
    try:
        while not receiver.finished:
            await receiver()
    except Exception:  # a server whose receive fails once the answer is out: nothing left to release
        return


async def _render(response: Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A Quart Response as ASGI status, headers and body."""
    data = await response.get_data()
    body = data.encode() if isinstance(data, str) else data
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()]
    return response.status_code, headers, body


class _ClientGone(Exception):
    """The client disconnected before its body arrived: nothing to process, nobody to answer."""


async def _read_asgi_body(receive: _Receiver, seconds: float, limit: int) -> bytes | None:
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
