"""A base for provider fakes: a small HTTP server on 127.0.0.1, served from a daemon thread.

A plugin's tests point the real provider SDK at a local server that speaks the provider's wire
format (``lily_twilio.fake``, ``lily_stripe.fake``, ...). :class:`LocalHTTPServer` is the part every
such fake shares: bind a free loopback port, serve it in the background, stop quickly, and turn each
HTTP request into a :class:`Request` for :meth:`LocalHTTPServer.handle_request`, whose
:class:`Reply` it writes back. What the provider says, records and fails with stays in the fake::

    class FakeAcme(LocalHTTPServer):
        def __init__(self) -> None:
            super().__init__(name="fake-acme")
            self.requests: list[Request] = []

        def handle_request(self, request: Request) -> Reply:
            self.requests.append(request)
            return json_reply(200, {"ok": True})

    with FakeAcme() as acme:
        env = {"ACME_API_BASE": acme.base_url}
"""

from __future__ import annotations

import abc
import json
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["LocalHTTPServer", "Reply", "Request", "json_reply"]


@dataclass(frozen=True)
class Request:
    """One HTTP request as the fake received it."""

    method: str
    #: The request target exactly as sent: the path and any query string.
    target: str
    #: Header names lower-cased (one value per name: the last one sent).
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query string."""
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        """The raw query string (``""`` if none)."""
        return urlsplit(self.target).query

    def form(self) -> dict[str, list[str]]:
        """The body decoded as ``application/x-www-form-urlencoded`` (blank values kept)."""
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def json(self) -> Any:
        """The body decoded as JSON; None for an empty body."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Reply:
    """What the fake answers. ``Content-Length`` is added unless ``send_length`` is False, in which
    case the server sends ``Connection: close`` and ends the body by closing the connection."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    send_length: bool = True


def json_reply(
    status: int,
    payload: Any,
    headers: Mapping[str, str] | None = None,
    *,
    content_type: str = "application/json",
) -> Reply:
    """``payload`` as a JSON reply; ``headers`` are added after ``Content-Type`` (and may replace it)."""
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": content_type, **(headers or {})})


class LocalHTTPServer(abc.ABC):
    """A ``ThreadingHTTPServer`` on loopback, run in a daemon thread; subclass it and answer requests.

    ``start()`` binds ``host:port`` (port 0: a free one) and serves; ``stop()`` shuts the server down
    and closes the port; ``with`` does both. ``base_url`` and ``port`` say where it listens. Every
    request is handed to :meth:`handle_request` on a server thread, so guard shared state with a lock.
    """

    #: The HTTP methods served; any other gets 501 (``BaseHTTPRequestHandler``'s answer).
    methods: ClassVar[tuple[str, ...]] = ("GET", "POST", "PUT", "PATCH", "DELETE")
    #: ``HTTP/1.1`` keeps connections alive (every reply carries ``Content-Length``).
    protocol_version: ClassVar[str] = "HTTP/1.1"
    #: The ``Server`` header's product; None keeps ``BaseHTTPRequestHandler``'s.
    server_version: ClassVar[str | None] = None
    #: How often the serving loop looks for ``stop()``: shutdown waits up to this long.
    poll_interval: ClassVar[float] = 0.05

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, name: str | None = None) -> None:
        self._address = (host, port)
        self._name = name or type(self).__name__
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def handle_request(self, request: Request) -> Reply:
        """Answer one request (called on a server thread). Subclasses implement it."""

    # --- lifecycle -----------------------------------------------------------------------------------

    def bind(self) -> Self:
        """Bind the port without serving yet (``start()`` does it when needed); connections wait."""
        if self._server is None:
            server = _Server(self._address, _handler_class(self))
            server.daemon_threads = True
            self._server = server
        return self

    def start(self) -> Self:
        """Bind (unless bound) and serve from a daemon thread; returns self."""
        server = self.bind()._server
        assert server is not None
        if self._thread is None:
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": self.poll_interval}, name=self._name, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port. Safe to call twice, or on a server never started."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            if thread is not None:
                server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_interrupted(self) -> None:
        """Block until Ctrl-C, then stop: the end of a fake's ``python -m ...fake`` entry point."""
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            self.stop()

    def announce_and_serve(self, title: str, env: Mapping[str, str]) -> None:
        """Print ``<title> on <base_url>; set:`` and ``env`` as ``export`` lines, then serve until Ctrl-C.

        For a fake's ``python -m ...fake``, once ``start()`` has run (``env`` usually names ``base_url``).
        """
        print(f"{title} on {self.base_url}; set:")
        for name, value in env.items():
            print(f"  export {name}={value}")
        self.serve_until_interrupted()

    # --- where it listens ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._bound_address()[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        host, port = self._bound_address()
        return f"http://{host}:{port}"

    def _bound_address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up before the answer (a test's timeout) is not the fake's error."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Reads the request, asks the fake, writes its reply. Subclassed per fake by ``_handler_class``."""

    fake: ClassVar[LocalHTTPServer]

    def dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.fake.handle_request(Request(self.command, self.path, headers, body))
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.send_length:
            self.send_header("Content-Length", str(len(reply.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what the fake recorded instead of stderr."""


def _handler_class(fake: LocalHTTPServer) -> type[BaseHTTPRequestHandler]:
    attributes: dict[str, Any] = {"fake": fake, "protocol_version": fake.protocol_version}
    if fake.server_version is not None:
        attributes["server_version"] = fake.server_version
    for method in fake.methods:
        attributes[f"do_{method.upper()}"] = _Handler.dispatch
    return type(f"{type(fake).__name__}Handler", (_Handler,), attributes)
