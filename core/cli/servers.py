"""Running long-lived services (uvicorn servers, the arq worker) in one event loop until a signal.

Signals are handled here, once, for everything the process runs: uvicorn's own handling would
re-raise the signal after shutdown (so `clasp serve` would die by SIGTERM instead of exiting 0), and
arq's would only stop the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn

from core.cli.state import CliError


class Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`run_services`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port); a busy port is a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = "; pick another with --port" if port else ""
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def web_server(app: Any, sock: socket.socket, *, access_log: bool = True, lifespan: str = "on") -> Server:
    """``lifespan="on"`` for Clasp's own app: a failed start-up (e.g. Redis down) must stop the server.
    Sandboxes use ``"auto"``: a plain ASGI callable without lifespan support is fine there."""
    config = uvicorn.Config(
        app,
        log_config=None,  # core.logging owns the log format
        access_log=access_log,
        lifespan=lifespan,
        proxy_headers=True,
        server_header=False,
    )
    return Server(config)


@dataclass
class Service:
    name: str
    run: Coroutine[Any, Any, Any]
    stop: Callable[[], Any]


def serve_socket(server: Server, sock: socket.socket, name: str) -> Service:
    def stop() -> None:
        server.should_exit = True

    return Service(name=name, run=server.serve(sockets=[sock]), stop=stop)


def worker_service(worker: Any) -> Service:
    """The arq worker as a service: stopping cancels its main task, then its connections close."""

    async def run() -> None:
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            pass
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await worker.close()

    def stop() -> None:
        worker.handle_sig(signal.SIGTERM)

    return Service(name="worker", run=run(), stop=stop)


async def run_services(services: list[Service]) -> None:
    """Run services until SIGINT/SIGTERM, or until one of them stops by itself (an error)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    tasks = {asyncio.create_task(s.run, name=s.name): s for s in services}
    waiter = asyncio.create_task(stopping.wait())
    try:
        done, _pending = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        early = [t for t in done if t is not waiter]
        for service in tasks.values():
            service.stop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        waiter.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    for task in early:
        result = results[list(tasks).index(task)]
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
        raise CliError(f"the {tasks[task].name} stopped unexpectedly (see the log above)")
