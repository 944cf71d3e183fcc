"""Salesforce push cost: API calls and seconds for a backfill and for incremental changes.

Runs the real CRM stage (``core.crm.run_push``: lease, feed consumer, external refs, error queue)
and the real plugin against the Salesforce sandbox served over HTTP on a free port, on a fresh
database. The store is written with set-based inserts (clients with an email and a phone, products,
completed sales with one or two lines); the incremental round then edits clients through
``core.clients.edit_client`` and adds new sales with their change-feed rows, as a sync would.

    .venv/bin/python bench/salesforce_push.py                              # 100k backfill, 10k changes, SQLite
    .venv/bin/python bench/salesforce_push.py --backfill 20000 --changes 10000 --backend postgres

"Records" are Salesforce records written (Contacts, Product2, receipts, receipt lines); "changes"
are change-feed rows. Calls are REST calls to the instance (what the org's daily allocation
counts); token requests are listed apart. Targets: ≤10 calls per 100k records backfilled, ≤60 per
10k changed records.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn
from sqlalchemy import insert

from core import feed, migrate
from core.clients import edit_client
from core.connectors import add_connector
from core.crm import run_push
from core.db import Database
from core.models import (
    Associate,
    ChangeFeed,
    Client,
    ClientContact,
    Connector,
    Location,
    Product,
    Sale,
    SaleLine,
    utcnow,
)
from core.plugins import load_plugins
from core.runtime import Runtime, create_runtime
from core.settings import Settings
from plugins.crm_salesforce.plugin import _sandbox_settings
from plugins.crm_salesforce.sandbox.app import create_app

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PRODUCTS = 1000


class Server:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server: uvicorn.Server | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        app = create_app(daily_limit=10_000_000, bulk_delay=0)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> Server:
        self.thread.start()
        while not (self.server and self.server.started):
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.should_exit = True
        self.thread.join(10)

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/_sandbox/stats", timeout=30).json()  # type: ignore[no-any-return]


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _insert(rt: Runtime, model: Any, rows: list[dict[str, Any]]) -> None:
    table = model.__table__
    async with rt.db.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            await conn.execute(insert(table), rows[start : start + 5000])


async def build_store(rt: Runtime, clients: int, rnd: random.Random) -> tuple[int, int]:
    now = utcnow()
    await _insert(rt, Location, [{"id": 1, "name": "Fifth Avenue", "timezone": "America/New_York", "currency": "USD",
                                 "country": "US", "outreach_mode": "own", "quiet_hours_start": "09:00",
                                 "quiet_hours_end": "20:00", "active": True, "created_at": now, "updated_at": now}])
    await _insert(rt, Associate, [{"id": 1, "location_id": 1, "first_name": "Maya", "last_name": "Stone",
                                  "active": True, "created_at": now, "updated_at": now}])
    await _insert(rt, Client, [{"id": i, "first_name": f"First{i}", "last_name": f"Last{i}", "address": {},
                               "custom_fields": {}, "provenance": {}, "archived": False, "home_location_id": 1,
                               "created_at": now, "updated_at": now} for i in range(1, clients + 1)])
    contacts = []
    for i in range(1, clients + 1):
        contacts.append({"client_id": i, "kind": "email", "value": f"person{i}@example.com", "is_primary": True,
                         "unusable": False, "created_at": now})
        contacts.append({"client_id": i, "kind": "phone", "value": f"+1212{i:07d}", "is_primary": True,
                         "unusable": False, "created_at": now})
    await _insert(rt, ClientContact, contacts)
    await _insert(rt, Product, [{"id": p, "sku": f"SKU-{p:05d}", "name": f"Piece {p}", "price_minor": 10000 + p,
                                "currency": "USD", "image_missing": False, "archived": False, "created_at": now,
                                "updated_at": now} for p in range(1, PRODUCTS + 1)])
    sales, lines = _sales(1, clients, rnd, now)
    await _insert(rt, Sale, sales)
    await _insert(rt, SaleLine, lines)
    return clients, len(lines)


def _sales(
    first_id: int, count: int, rnd: random.Random, now: datetime, line_start: int = 1
) -> tuple[list[Any], list[Any]]:
    sales, lines = [], []
    line_id = line_start
    for n in range(count):
        sid = first_id + n
        client_id = rnd.randint(1, max(1, count if first_id == 1 else first_id - 1))
        items = [(rnd.randint(1, PRODUCTS), rnd.choice((1, 1, 1, 2))) for _ in range(rnd.choice((1, 1, 2)))]
        total = 0
        for product_id, qty in items:
            price = 10000 + product_id
            lines.append({"id": line_id, "sale_id": sid, "product_id": product_id, "sku": f"SKU-{product_id:05d}",
                          "name": f"Piece {product_id}", "quantity": qty, "unit_price_minor": price,
                          "total_minor": qty * price})
            line_id += 1
            total += qty * price
        sales.append({"id": sid, "location_id": 1, "associate_id": 1, "client_id": client_id, "channel": "store",
                      "status": "completed", "currency": "USD", "subtotal_minor": total, "tax_minor": 0,
                      "total_minor": total, "occurred_at": now - timedelta(days=rnd.randint(0, 700)),
                      "created_at": now, "updated_at": now})
    return sales, lines


def _delta(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    kinds = {k: after["by_kind"].get(k, 0) - before["by_kind"].get(k, 0) for k in after["by_kind"]}
    return after["calls"] - before["calls"], after["token_calls"] - before["token_calls"], \
        {k: v for k, v in kinds.items() if v}


def _written(stats: dict[str, Any]) -> int:
    c = stats["counts"]
    return int(c["Contact"] + c["Product2"] + c["Clasp_Receipt__c"] + c["Clasp_Receipt_Line__c"])


async def run(backend: str, backfill: int, changes: int) -> None:
    rnd = random.Random(7)
    tmp = tempfile.mkdtemp(prefix="clasp-sf-bench-")
    values: dict[str, Any] = {"data_dir": Path(tmp), "secret_key": "bench"}
    dbname = None
    if backend == "postgres":
        dbname = f"clasp_sfbench_{int(time.time() * 1000) % 10**9}"
        await _pg(f'CREATE DATABASE "{dbname}"')
        values["database_url"] = f"postgresql://postgres@127.0.0.1:5432/{dbname}"
    settings = Settings(**values)
    server = Server().start()
    try:
        db = Database(settings)
        await migrate.upgrade(db)
        await db.dispose()
        rt = create_runtime(settings, plugins=load_plugins(settings))
        t0 = time.perf_counter()
        n_clients, n_lines = await build_store(rt, backfill, rnd)
        print(f"[{backend}] store: {n_clients:,} clients, {n_clients:,} sales, {n_lines:,} lines, {PRODUCTS:,} "
              f"products written in {time.perf_counter() - t0:.1f}s")
        async with rt.db.transaction() as session:
            pos = Connector(type="bench", kind="pos", name="Till")
            session.add(pos)
            connector = await add_connector(rt, session, type_name="salesforce", name="Salesforce",
                                            values={**_sandbox_settings(server.url), "bulk_poll_seconds": 0.5})
            cid = connector.id
            await session.flush()
            pos_id = pos.id
        assert cid is not None and pos_id is not None

        # ---- backfill
        before = server.stats()
        t0 = time.perf_counter()
        report = await run_push(rt, cid, full=True, trigger="bench")
        seconds = time.perf_counter() - t0
        after = server.stats()
        calls, tokens, kinds = _delta(before, after)
        records = _written(after) - _written(before)
        print(f"[{backend}] backfill: {report.status}, {records:,} records ({dict(report.pushed)}), {report.errors} "
              f"errors, {calls} calls (+{tokens} token), {seconds:.1f}s")
        print(f"    {calls / records * 100_000:.1f} calls per 100k records (target ≤10), "
              f"{seconds / records * 100_000:.1f} s per 100k records; calls: {kinds}")

        # ---- incremental: half client edits (panel/API path), half new completed sales (as a sync writes them)
        edits = changes // 2
        new_sales = changes - edits
        async with rt.db.transaction() as session:
            for i in rnd.sample(range(1, n_clients + 1), edits):
                await edit_client(session, i, {"first_name": f"Edited{i}"}, actor="bench", origin="user:1")
        sales, lines = _sales(n_clients + 1, new_sales, rnd, utcnow(), line_start=n_lines + 1)
        for s_ in sales:
            s_["client_id"] = rnd.randint(1, n_clients)
        await _insert(rt, Sale, sales)
        await _insert(rt, SaleLine, lines)
        now = utcnow()
        await _insert(rt, ChangeFeed, [{"entity": "sale", "entity_id": s_["id"], "op": "insert",
                                        "changes": {"status": "completed"}, "origin": f"connector:{pos_id}",
                                        "origin_connector_id": pos_id, "created_at": now} for s_ in sales])
        async with rt.db.session() as session:
            pending = await feed.lag(session, f"crm:{cid}")
        before = server.stats()
        t0 = time.perf_counter()
        report = await run_push(rt, cid, trigger="bench", settle=timedelta(0))
        seconds = time.perf_counter() - t0
        after = server.stats()
        calls, tokens, kinds = _delta(before, after)
        written = sum(report.pushed.values())
        sf_records = written + len(lines)
        print(f"[{backend}] incremental: {report.status}, {report.rows:,} changes ({pending:,} feed rows pending), "
              f"{sf_records:,} records ({dict(report.pushed)} + {len(lines):,} lines), {report.errors} errors, "
              f"{calls} calls (+{tokens} token), {seconds:.1f}s")
        print(f"    {calls / report.rows * 10_000:.1f} calls per 10k changes, "
              f"{calls / sf_records * 10_000:.1f} calls per 10k records (target ≤60), "
              f"{seconds / report.rows * 10_000:.1f} s per 10k changes; calls: {kinds}")
        await rt.close()
    finally:
        server.stop()
        if dbname:
            await _pg(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backfill", type=int, default=100_000, help="clients (and as many sales) to backfill")
    parser.add_argument("--changes", type=int, default=10_000, help="change-feed rows for the incremental round")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    asyncio.run(run(args.backend, args.backfill, args.changes))


if __name__ == "__main__":
    main()
