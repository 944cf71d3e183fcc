"""A small retailer for the API tests: three stores, four users with tokens, clients and sales.

Built through the models (the same rows a sync writes), so the API is tested against real data in the
real database. No tests live here; test_api*.py modules import ``build_world`` and ``api_client``.

Stores: Downtown (US, "own" outreach mode), Uptown (US, "store" mode), London (GB, "own" mode).
Who sees whom (core.access):

- owner: every client;
- manager of Downtown: clients living at Downtown (Ann, Ben) and Cleo, who lives in London but
  bought at Downtown;
- Alice, associate at Downtown ("own" mode): only her own client, Ann;
- Carol, associate at Uptown ("store" mode): the Uptown book, Dan and Eve.

Fay lives in London and bought only there: the owner alone sees her. "Ann (old record)" was merged
into Ann, so lists leave it out.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from sqlmodel import func, select

from core.models import (
    Associate,
    AuditLog,
    ChangeFeed,
    Client,
    ClientContact,
    Connector,
    Consent,
    ExternalRef,
    Location,
    Sale,
    SaleLine,
)
from core.runtime import Runtime, create_runtime
from core.tokens import create_token
from core.users import create_user
from core.web import create_app


@dataclass
class World:
    locations: dict[str, int] = field(default_factory=dict)
    associates: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)
    sales: dict[str, int] = field(default_factory=dict)
    connector_id: int = 0

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def build_world(rt: Runtime) -> World:
    w = World()
    async with rt.db.transaction() as s:
        for key, name, country, mode, tz in (
            ("downtown", "Downtown", "US", "own", "America/New_York"),
            ("uptown", "Uptown", "US", "store", "America/New_York"),
            ("london", "London", "GB", "own", "Europe/London"),
        ):
            loc = Location(name=name, country=country, outreach_mode=mode, timezone=tz)
            s.add(loc)
            await s.flush()
            w.locations[key] = loc.id  # type: ignore[assignment]
        for key, first, loc_key in (
            ("alice", "Alice", "downtown"),
            ("bob", "Bob", "downtown"),
            ("carol", "Carol", "uptown"),
        ):
            a = Associate(first_name=first, location_id=w.locations[loc_key])
            s.add(a)
            await s.flush()
            w.associates[key] = a.id  # type: ignore[assignment]
        connector = Connector(type="lightspeed_r", kind="pos", name="Downtown Lightspeed")
        s.add(connector)
        await s.flush()
        w.connector_id = connector.id  # type: ignore[assignment]

        users = (
            ("owner", "owner@shop.example.com", "owner", [], None),
            ("manager", "manager@shop.example.com", "manager", ["downtown"], None),
            ("alice", "alice@shop.example.com", "associate", ["downtown"], "alice"),
            ("carol", "carol@shop.example.com", "associate", ["uptown"], "carol"),
        )
        for key, email, role, locs, assoc in users:
            user = await create_user(
                s,
                email=email,
                password="correct horse battery",
                role=role,
                location_ids=[w.locations[x] for x in locs],
                associate_id=w.associates[assoc] if assoc else None,
            )
            w.users[key] = user.id  # type: ignore[assignment]
            row, plaintext = await create_token(s, user_id=user.id, name=f"{key} integration")  # type: ignore[arg-type]
            w.tokens[key], w.token_ids[key] = plaintext, row.id  # type: ignore[assignment]

        clients = (
            # key, first, last, home, owner associate, emails, phones
            ("ann", "Ann", "Lee", "downtown", "alice", ["ann.lee@example.com"], ["+12125550134"]),
            ("ben", "Ben", "Ortiz", "downtown", "bob", ["ben@example.org"], ["+12125550199"]),
            ("cleo", "Cleo", "Park", "london", None, ["cleo.park@example.co.uk"], ["+442079460018"]),
            ("dan", "Dan", "Wu", "uptown", "carol", ["dan.wu@example.com"], []),
            ("eve", "Eve", "Stone", "uptown", None, [], ["+13105550111"]),
            ("fay", "Fay", "Green", "london", None, ["fay@example.co.uk"], []),
        )
        for key, first, last, home, owner, emails, phones in clients:
            c = Client(
                first_name=first,
                last_name=last,
                home_location_id=w.locations[home],
                owner_associate_id=w.associates[owner] if owner else None,
            )
            s.add(c)
            await s.flush()
            w.clients[key] = c.id  # type: ignore[assignment]
            for i, value in enumerate(emails):
                s.add(ClientContact(client_id=c.id, kind="email", value=value, is_primary=i == 0))  # type: ignore[arg-type]
            for i, value in enumerate(phones):
                s.add(ClientContact(client_id=c.id, kind="phone", value=value, is_primary=i == 0))  # type: ignore[arg-type]
        old = Client(
            first_name="Ann", last_name="Lee", home_location_id=w.locations["downtown"], merged_into_id=w.clients["ann"]
        )
        s.add(old)
        await s.flush()
        w.clients["ann_old"] = old.id  # type: ignore[assignment]

        s.add(
            ExternalRef(
                connector_id=w.connector_id, object_type="client", external_id="LS-1001", unified_id=w.clients["ann"]
            )
        )
        s.add(
            Consent(
                client_id=w.clients["ann"],
                channel="sms",
                status="opted_out",
                source="connector:1",
                recorded_at=at("2026-01-01T10:00:00"),
            )
        )
        s.add(
            Consent(
                client_id=w.clients["ann"],
                channel="sms",
                status="opted_in",
                source="keyword:START",
                recorded_at=at("2026-02-01T10:00:00"),
            )
        )

        sales = (
            # key, client, location, associate, status, total, occurred
            ("ann_ring", "ann", "downtown", "alice", "completed", 250_000, "2026-03-10T15:00:00"),
            ("ann_repair", "ann", "downtown", "bob", "open", 8_000, "2026-04-02T16:00:00"),
            ("cleo_pendant", "cleo", "downtown", "bob", "completed", 120_000, "2026-03-20T12:00:00"),
            ("cleo_london", "cleo", "london", None, "completed", 90_000, "2026-02-11T12:00:00"),
            ("dan_watch", "dan", "uptown", "carol", "layaway", 560_000, "2026-05-01T18:00:00"),
            ("fay_earrings", "fay", "london", None, "voided", 45_000, "2026-01-15T11:00:00"),
        )
        for key, client, loc, assoc, status, total, when in sales:
            sale = Sale(
                client_id=w.clients[client],
                location_id=w.locations[loc],
                associate_id=w.associates[assoc] if assoc else None,
                status=status,
                currency="GBP" if loc == "london" else "USD",
                subtotal_minor=total,
                total_minor=total,
                occurred_at=at(when),
            )
            s.add(sale)
            await s.flush()
            w.sales[key] = sale.id  # type: ignore[assignment]
            s.add(
                SaleLine(
                    sale_id=sale.id,
                    sku=f"{key.upper()}-1",
                    name=f"{key} piece",
                    quantity=1,  # type: ignore[arg-type]
                    unit_price_minor=total,
                    total_minor=total,
                )
            )
        # A returned piece on the ring sale: lines carry negative quantities for returns.
        s.add(
            SaleLine(
                sale_id=w.sales["ann_ring"],
                sku="BOX-1",
                name="Gift box",
                quantity=-1,
                unit_price_minor=0,
                total_minor=0,
            )
        )
    return w


@asynccontextmanager
async def api_client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (core.web.create_app, admin plugin included) served by uvicorn on a real port.

    The server runs in a thread with its own event loop and its own runtime on the same database:
    database connections belong to the loop that opened them.
    """
    # Bound here and handed to uvicorn, so no other process can take the port in between.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    holder: dict[str, Any] = {}
    failed: list[BaseException] = []

    def serve() -> None:
        async def main() -> None:
            server_rt = create_runtime(rt.settings, plugins=rt.plugins)
            try:
                app = create_app(server_rt, connect_redis=False)
                config = uvicorn.Config(app, log_level="warning", lifespan="on")
                holder["server"] = server = uvicorn.Server(config)
                await server.serve(sockets=[sock])
            finally:
                await server_rt.close()

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced in the test below
            failed.append(exc)

    thread = threading.Thread(target=serve, name=f"api-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (holder.get("server") and holder["server"].started):
        if failed or not thread.is_alive():
            raise RuntimeError(f"the API server did not start: {failed[0] if failed else 'thread exited'}")
        if time.monotonic() > deadline:
            raise RuntimeError("the API server did not start within 30 s")
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        holder["server"].should_exit = True
        await asyncio.to_thread(thread.join, 30)
        sock.close()


async def count(rt: Runtime, model: type, *where: object) -> int:
    async with rt.db.session() as s:
        stmt = select(func.count()).select_from(model)
        for cond in where:
            stmt = stmt.where(cond)  # type: ignore[arg-type]
        return int((await s.exec(stmt)).one())


async def feed_rows(rt: Runtime) -> list[ChangeFeed]:
    async with rt.db.session() as s:
        return list((await s.exec(select(ChangeFeed).order_by(ChangeFeed.id))).all())  # type: ignore[arg-type]


async def audit_rows(rt: Runtime, action: str) -> list[AuditLog]:
    async with rt.db.session() as s:
        stmt = select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)  # type: ignore[arg-type]
        return list((await s.exec(stmt)).all())
