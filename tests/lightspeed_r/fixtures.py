"""Helpers for the Lightspeed R-Series tests: the sandbox served over a real socket, a connector
configured against it, and the panel's OAuth round trip done the way a browser would."""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from plugins.pos_lightspeed_r.plugin import LightspeedR, LightspeedRSettings
from plugins.pos_lightspeed_r.sandbox.app import Sandbox, create_app
from tests.servers import ThreadServer, plain

CLIENT_ID = "clasp-sandbox"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "http://127.0.0.1:8000/admin/connectors/oauth/callback"
# A small chain keeps every test fast; the 5-year demo chain is the bench's job.
SMALL = {"shops": 2, "clients": 40, "years": 1, "seed": 11, "sales_per_day": 0.5, "drip_rate": 200.0,
         "bucket_size": 400.0, "burst_limit": 100, "refresh_per_minute": 0}


class SandboxServer(ThreadServer):
    """The Lightspeed R sandbox on a free port, with its back door."""

    def __init__(self, app: Any, sock: socket.socket | None = None) -> None:
        super().__init__(plain(app), sock, "lightspeed-r-sandbox", lifespan="off")
        self.app = app
        self.sandbox: Sandbox = app.state.sandbox

    def admin(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(method, self.url + path, json=json, timeout=10)
        response.raise_for_status()
        return response.json()

    @property
    def truth(self) -> dict[str, Any]:
        return self.admin("GET", "/_sandbox/truth")

    def stats(self, log: bool = False) -> dict[str, Any]:
        return self.admin("GET", "/_sandbox/stats" + ("?log=true" if log else ""))


@contextmanager
def serve_sandbox(**options: Any) -> Iterator[SandboxServer]:
    server = SandboxServer(create_app(**{**SMALL, **options})).start()
    try:
        yield server
    finally:
        server.stop()


def connector_values(server: SandboxServer, **overrides: Any) -> dict[str, Any]:
    return {"api_base_url": server.url, "auth_base_url": server.url, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, **overrides}


async def add_lightspeed_connector(rt: Any, server: SandboxServer, name: str = "ls", **overrides: Any) -> Any:
    """A real connector row pointed at the sandbox, and its context."""
    from core.connectors import add_connector, context_for

    async with rt.db.transaction() as session:
        row = await add_connector(rt, session, type_name="lightspeed_r", name=name,
                                  values=connector_values(server, **overrides))
    return context_for(rt, row)


@dataclass
class MemoryContext:
    """A ConnectorContext whose settings live in memory, for tests about the plugin and the sandbox
    rather than about storage (OAuth persistence and engine runs use real connector rows)."""

    settings: Any
    connector_id: int = 0
    name: str = "memory"
    base_url: str = "http://127.0.0.1:8000"
    saves: int = 0

    async def save_settings(self, **updates: Any) -> None:
        self.settings = self.settings.model_validate({**self.settings.model_dump(), **updates})
        self.saves += 1


_ids = itertools.count(1)


async def memory_connector(server: SandboxServer, **overrides: Any) -> MemoryContext:
    """An authorized connector context held in memory, pointed at the sandbox."""
    ctx = MemoryContext(LightspeedRSettings(**connector_values(server, **overrides)), connector_id=-next(_ids))
    await authorize(ctx)
    return ctx


def stream_named(ctx: Any, name: str) -> Any:
    return next(s for s in LightspeedR().streams(ctx) if s.name == name)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def authorize(ctx: Any) -> dict[str, Any]:
    """The panel's one-click flow: authorize URL → the provider redirects back → exchange → store."""
    flow = LightspeedR().oauth(ctx)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = flow.authorize_url(state=state, redirect_uri=REDIRECT_URI, code_challenge=challenge)
    async with httpx.AsyncClient() as http:
        response = await http.get(url, follow_redirects=False)
    assert response.status_code in (302, 303, 307), response.text
    back = urlsplit(response.headers["location"])
    query = {k: v[0] for k, v in parse_qs(back.query).items()}
    assert query["state"] == state
    stored = await flow.exchange(code=query["code"], redirect_uri=REDIRECT_URI, code_verifier=verifier)
    await ctx.save_settings(**stored)
    return stored


async def read_stream(stream: Any, state: dict[str, Any] | None = None, *, full: bool = False,
                      max_pages: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """Read a stream the way the engine does; returns (payloads, last state, pages)."""
    payloads: list[dict[str, Any]] = []
    last: dict[str, Any] = dict(state or {})
    pages = 0
    gen = stream.read(last, full=full)
    try:
        async for page in gen:
            payloads.extend(page.records)
            last = page.state
            pages += 1
            if max_pages is not None and pages >= max_pages:
                break
    finally:
        await gen.aclose()
    return payloads, last, pages
