"""Real sockets for tests: an ASGI app served by uvicorn in a thread with its own event loop.

Sandboxes, fakes and Clasp itself are tested over HTTP exactly as in production; this is the one
place that knows how to start and stop such a server.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

AppFactory = Callable[[], Awaitable[tuple[Any, Callable[[], Awaitable[None]]]]]


def free_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port (bound now, so the port cannot be taken)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def plain(app: Any) -> AppFactory:
    """An app factory for an app that needs no set-up or clean-up of its own."""

    async def factory() -> tuple[Any, Callable[[], Awaitable[None]]]:
        async def nothing() -> None:
            return None

        return app, nothing

    return factory


class ThreadServer:
    """uvicorn in a thread. ``app_factory`` runs inside the server's own event loop, so apps holding
    loop-bound resources (database pools, Redis) are created where they are used."""

    def __init__(
        self, app_factory: AppFactory, sock: socket.socket | None = None, name: str = "test-server", *,
        lifespan: str = "on",
    ) -> None:
        self.sock = sock or free_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app_factory = app_factory
        self.lifespan = lifespan
        self.server: uvicorn.Server | None = None
        self.failed: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            app, cleanup = await self.app_factory()
            self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=self.lifespan))
            try:
                await self.server.serve(sockets=[self.sock])
            finally:
                await cleanup()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.failed.append(exc)

    def start(self, timeout: float = 30) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not (self.server and self.server.started):
            if self.failed or not self.thread.is_alive():
                raise RuntimeError(f"server did not start: {self.failed[0] if self.failed else 'thread exited'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start within {timeout:.0f} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
