"""A test harness's app served by real hypercorn on loopback, for tests that need real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from lily_host.dev.embedded_redis import free_port
from lily_host.testing import Harness


class LiveServer:
    """The harness's app behind hypercorn; the harness already ran its startup, so lifespan is answered here."""

    def __init__(self, lily: Harness) -> None:
        self.lily = lily
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.lily.app(scope, receive, send)

    async def __aenter__(self) -> LiveServer:
        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = None
        self._task = asyncio.get_running_loop().create_task(serve(self._app, config, shutdown_trigger=self._stop.wait))
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            return self
        raise RuntimeError("hypercorn did not listen")

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)
