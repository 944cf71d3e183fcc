"""Helpers for the messaging tests: the Twilio sandbox and Clasp's webhooks on real sockets, a
Twilio connector configured against the sandbox, and a small world of clients in three timezones."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Router
from litestar.di import Provide

from core.connectors import add_connector
from core.models import Associate, Client, ClientContact, Location, User, UserLocation
from core.outreach.consent import record_consent
from core.runtime import Runtime, create_runtime
from core.users import hash_password
from core.web import create_app
from plugins.sms_twilio.sandbox.app import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from plugins.sms_twilio.sandbox.app import create_app as sandbox_app
from tests.servers import ThreadServer, free_socket

FROM_NUMBER = "+15005550006"


def closed_port_url() -> str:
    """A URL nobody listens on (for runs where status callbacks must go nowhere)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Sandbox(ThreadServer):
    """The Twilio sandbox over HTTP, with its back door."""

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, payload: Any) -> Any:
        response = httpx.post(self.url + path, json=payload, timeout=30)
        response.raise_for_status()
        return response.json()

    def messages(self, **match: str) -> list[dict[str, Any]]:
        rows = self.get("/_sandbox/messages")["messages"]
        return [m for m in rows if all(m.get(k) == v for k, v in match.items())]

    def callbacks(self) -> list[dict[str, Any]]:
        return self.get("/_sandbox/callbacks")["callbacks"]  # type: ignore[no-any-return]

    def idle(self) -> bool:
        return self.get("/_sandbox/callbacks")["pending_tasks"] == 0  # type: ignore[no-any-return]

    def text_in(self, sender: str, body: str, url: str, **extra: Any) -> dict[str, Any]:
        return self.post("/_sandbox/inbound", {"from": sender, "body": body, "url": url, **extra})  # type: ignore[no-any-return]


@contextmanager
def serve_sandbox(**options: Any) -> Iterator[Sandbox]:
    async def factory() -> tuple[Any, Any]:
        async def cleanup() -> None:
            return None

        return sandbox_app(**{"callback_delay": 0.05, **options}), cleanup

    server = Sandbox(factory, free_socket(), "twilio-sandbox").start()
    try:
        yield server
    finally:
        server.stop()


def messaging_api_router() -> Router:
    """The messages endpoints behind the API's real bearer-token guard, as core.api mounts them."""
    from core.api.auth import SECURITY_SCHEME, provide_caller, require_token
    from core.outreach.api import MessagesController

    return Router(
        path="/api/v1",
        route_handlers=[MessagesController],
        guards=[require_token],
        dependencies={"caller": Provide(provide_caller, sync_to_thread=False)},
        security=[{SECURITY_SCHEME: []}],
    )


@contextmanager
def serve_clasp(rt: Runtime) -> Iterator[ThreadServer]:
    """Clasp's web app with the messaging webhooks and API, on a real port that becomes base_url."""
    from core.outreach.webhooks import webhook_router

    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    rt.settings.base_url = url  # status callback URLs and signature checks use the public URL

    async def factory() -> tuple[Any, Any]:
        server_rt = create_runtime(rt.settings, plugins=rt.plugins)
        # Mount only what core.web / core.api do not mount yet (they will, once the lead wires them in).
        mounted = {route.path for route in create_app(server_rt, connect_redis=False).routes}
        extra: list[Any] = []
        if "/webhooks/{connector_type:str}/{connector_id:int}/status" not in mounted:
            extra.append(webhook_router)
        if "/api/v1/clients/{client_id:int}/messages" not in mounted:
            extra.append(messaging_api_router())
        app = create_app(server_rt, route_handlers=extra, connect_redis=False)
        return app, server_rt.close

    server = ThreadServer(factory, sock, "clasp-web").start()
    try:
        yield server
    finally:
        server.stop()


async def add_twilio(rt: Runtime, sandbox: Sandbox, **overrides: Any) -> int:
    values = {
        "api_base_url": sandbox.url,
        "account_sid": DEFAULT_ACCOUNT_SID,
        "auth_token": DEFAULT_AUTH_TOKEN,
        "from_number": FROM_NUMBER,
        "request_timeout_seconds": 5,
        **overrides,
    }
    async with rt.db.transaction() as session:
        connector = await add_connector(rt, session, type_name="twilio", name="Twilio", values=values)
        return connector.id  # type: ignore[return-value]


@dataclass
class World:
    locations: dict[str, int] = field(default_factory=dict)
    associates: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)


# name → (home location, phone, sms consent)
CLIENTS = {
    "ann": ("nyc", "+12125550134", "opted_in"),
    "ben": ("la", "+13105550188", "opted_in"),
    "cleo": ("tokyo", "+819012345678", "opted_in"),
    "dan": ("nyc", "+12125550177", None),
    "eve": ("nyc", "+12125550199", "opted_out"),
}


async def build_world(rt: Runtime) -> World:
    w = World()
    async with rt.db.transaction() as s:
        for key, name, tz, phone in (
            ("nyc", "Fifth Avenue", "America/New_York", "+12125550100"),
            ("la", "Rodeo Drive", "America/Los_Angeles", None),
            ("tokyo", "Ginza", "Asia/Tokyo", None),
        ):
            loc = Location(name=name, timezone=tz, phone=phone, country="JP" if key == "tokyo" else "US")
            s.add(loc)
            await s.flush()
            w.locations[key] = loc.id  # type: ignore[assignment]
        for key, loc in (("maya", "nyc"), ("leo", "la")):
            assoc = Associate(first_name=key.title(), location_id=w.locations[loc])
            s.add(assoc)
            await s.flush()
            w.associates[key] = assoc.id  # type: ignore[assignment]
        for key, (loc, phone, status) in CLIENTS.items():
            owner = w.associates["leo"] if loc == "la" else w.associates["maya"]
            client = Client(
                first_name=key.title(), last_name="Client", home_location_id=w.locations[loc], owner_associate_id=owner
            )
            s.add(client)
            await s.flush()
            s.add(ClientContact(client_id=client.id, kind="phone", value=phone, is_primary=True))  # type: ignore[arg-type]
            if status:
                # An opt-out here is a STOP (both purposes); an opt-in is to promotions (START also
                # covers service texts, which need no opt-in anyway).
                purposes = ("marketing", "transactional") if status == "opted_out" else ("marketing",)
                for purpose in purposes:
                    await record_consent(s, client.id, "sms", status, source="test", purpose=purpose,  # type: ignore[arg-type]
                                         source_kind="keyword" if status == "opted_out" else "in_store")
            w.clients[key] = client.id  # type: ignore[assignment]
            w.phones[key] = phone
        for key, role, loc, assoc in (
            ("owner", "owner", None, None),
            ("maya", "associate", "nyc", "maya"),
            ("leo", "associate", "la", "leo"),
        ):
            user = User(
                email=f"{key}@example.com",
                name=key,
                password_hash=hash_password("pw-" + key),
                role=role,
                associate_id=w.associates.get(assoc or ""),
            )
            s.add(user)
            await s.flush()
            if loc:
                s.add(UserLocation(user_id=user.id, location_id=w.locations[loc]))  # type: ignore[arg-type]
            w.users[key] = user.id  # type: ignore[assignment]
    return w


async def wait_for(predicate: Any, within: float = 15.0, interval: float = 0.05) -> Any:
    """Poll an (async or sync) predicate until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
