"""Ingest throughput: sales per second through decode → normalise → identity → upsert, page by page.

Runs the real engine (``core.sync.run_sync``: lease, page transactions, checkpoints, run counters,
change feed) with an in-memory connector type whose streams generate POS-like payloads, so the
figures measure Clasp and not a network. Locations, associates, products and clients are synced
first (clients through identity resolution); the sales stream is timed on its own.

    .venv/bin/python bench/ingest.py                                  # quick: 10k sales, both backends
    .venv/bin/python bench/ingest.py --sizes 10000,100000,1000000 --backends postgres

Prints sales/s per size and the ratio to the smallest size (flat ≈ 1.0 means it scales linearly).
On a shared machine wall-clock rates swing with the load, so it also prints the CPU each sale cost:
this process ("CPU µs/sale", of which "of it gen" is the benchmark's own payload generation) and,
on PostgreSQL, the server backends of the benchmark's database ("PG µs/sale"); "first/last tenth CPU
µs/sale" (ours+PG) shows whether a page costs more as the store grows, whatever the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import migrate
from core.connectors import add_connector
from core.db import Database
from core.plugin import (
    AssociateRecord,
    ClientRecord,
    ConnectorSettings,
    ConnectorType,
    LocationRecord,
    Page,
    ProductRecord,
    SaleRecord,
    Stream,
    hookimpl,
)
from core.plugins import load_plugins
from core.runtime import create_runtime
from core.settings import Settings
from core.sync import SyncOptions, run_sync

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
START = datetime(2022, 1, 1, tzinfo=UTC)


class BenchSettings(ConnectorSettings):
    sales: int = 10_000
    clients: int = 1_000
    products: int = 2_000
    locations: int = 5
    associates: int = 20
    page_size: int = 1_000
    seed: int = 1


class _Gen(Stream):
    model: type

    def __init__(self, settings: BenchSettings) -> None:
        self.s = settings

    def total(self) -> int:
        raise NotImplementedError

    def payload(self, i: int, rnd: random.Random) -> dict[str, Any]:
        raise NotImplementedError

    async def read(self, state: Mapping[str, Any], *, full: bool = False) -> AsyncIterator[Page]:
        offset = 0 if full else int(state.get("offset", 0))
        total = self.total()
        rnd = random.Random(self.s.seed * 7919 + hash(self.name) % 1000 + offset)
        while offset < total:
            end = min(total, offset + self.s.page_size)
            records = []
            for i in range(offset, end):
                records.append(self.payload(i, rnd))
                if i % 100 == 99:
                    # A real stream awaits its HTTP reads while a page arrives; a generator that never
                    # yields would hold up the event loop for a whole page at a time.
                    await asyncio.sleep(0)
            offset = end
            yield Page(records=records, state={"offset": offset}, progress=offset / total)

    def decode(self, payload: Mapping[str, Any]) -> Any:
        return self.model.model_validate(payload)


def stamp(i: int) -> str:
    return (START + timedelta(seconds=i)).isoformat()


class Locations(_Gen):
    name, object_type, model = "locations", "location", LocationRecord

    def total(self) -> int:
        return self.s.locations

    def payload(self, i: int, rnd: random.Random) -> dict[str, Any]:
        return {"external_id": f"S{i}", "name": f"Store {i}", "timezone": "America/New_York", "currency": "USD",
                "country": "US", "updated_at": stamp(i)}


class Associates(_Gen):
    name, object_type, model = "associates", "associate", AssociateRecord

    def total(self) -> int:
        return self.s.associates

    def payload(self, i: int, rnd: random.Random) -> dict[str, Any]:
        return {"external_id": f"E{i}", "first_name": f"Emp{i}", "last_name": "Staff",
                "location_external_id": f"S{i % self.s.locations}", "updated_at": stamp(i)}


class Products(_Gen):
    name, object_type, model = "products", "product", ProductRecord

    def total(self) -> int:
        return self.s.products

    def payload(self, i: int, rnd: random.Random) -> dict[str, Any]:
        return {"external_id": f"I{i}", "sku": f"SKU{i:06d}", "name": f"Ring {i}", "vendor": "Maison",
                "price_minor": 10_000 + i, "currency": "USD", "image_urls": [f"https://img.test/{i}.jpg"],
                "updated_at": stamp(i)}


class Clients(_Gen):
    name, object_type, model = "clients", "client", ClientRecord

    def total(self) -> int:
        return self.s.clients

    def payload(self, i: int, rnd: random.Random) -> dict[str, Any]:
        return {"external_id": f"C{i}", "first_name": f"First{i}", "last_name": f"Last{i % 997}",
                "contacts": [{"kind": "email", "value": f"Client.{i}@Example.com", "is_primary": True},
                             {"kind": "phone", "value": f"(212) 5{i // 10000 % 100:02d}-{i % 10000:04d}"}],
                "birthday": f"19{50 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                "home_location_external_id": f"S{i % self.s.locations}", "updated_at": stamp(i)}


class Sales(_Gen):
    name, object_type, model = "sales", "sale", SaleRecord

    def total(self) -> int:
        return self.s.sales

    def payload(self, i: int, rnd: random.Random) -> dict[str, Any]:
        lines = []
        for n in range(1 + i % 3):  # 1-3 lines, 2 on average
            product = rnd.randrange(self.s.products)
            price = 10_000 + product
            lines.append({"external_id": f"L{i}-{n}", "product_external_id": f"I{product}", "sku": f"SKU{product:06d}",
                          "name": f"Ring {product}", "quantity": 1, "unit_price_minor": price, "total_minor": price})
        total = sum(line["total_minor"] for line in lines)
        return {
            "external_id": f"T{i}", "location_external_id": f"S{i % self.s.locations}",
            "associate_external_id": f"E{rnd.randrange(self.s.associates)}",
            # One sale in eight is a walk-in.
            "client_external_id": None if i % 8 == 0 else f"C{rnd.randrange(self.s.clients)}",
            "status": "completed", "currency": "USD", "subtotal_minor": total, "tax_minor": 0, "total_minor": total,
            "occurred_at": stamp(i), "updated_at": stamp(i), "lines": lines,
        }


class BenchPOS(ConnectorType):
    name = "bench_pos"
    kind = "pos"
    settings_model = BenchSettings
    capabilities = frozenset({"sync"})

    def streams(self, ctx: Any) -> list[Stream]:
        s = ctx.settings
        return [Locations(s), Associates(s), Products(s), Clients(s), Sales(s)]


class BenchPlugin:
    @hookimpl
    def clasp_register_connector_types(self, register: Any) -> None:
        register(BenchPOS())


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def bench_one(backend: str, sales: int, page_size: int, clients: int | None,
                    overlap: bool = True) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="clasp-bench-")
    values: dict[str, Any] = {"data_dir": Path(tmp), "secret_key": "bench", "plugins": ""}
    dbname = None
    if backend == "postgres":
        dbname = f"clasp_bench_{int(time.time() * 1000) % 10**9}"
        await _pg(f'CREATE DATABASE "{dbname}"')
        values["database_url"] = f"postgresql://postgres@127.0.0.1:5432/{dbname}"
    settings = Settings(**values)
    try:
        db = Database(settings)
        await migrate.upgrade(db)
        await db.dispose()
        rt = create_runtime(settings, plugins=load_plugins(settings, extra=[BenchPlugin()]))
        n_clients = clients if clients is not None else max(1_000, min(sales // 10, 100_000))
        async with rt.db.transaction() as session:
            connector = await add_connector(rt, session, type_name="bench_pos", name="bench", values={
                "sales": sales, "clients": n_clients, "page_size": page_size})
            cid = connector.id
        marks: list[tuple[float, int]] = []
        cpu: list[float] = []
        server: list[float] = []
        watcher = await _ServerCPU.open(dbname) if dbname else None

        async def mark(p: Any) -> None:
            if p.stream == "sales":
                marks.append((time.perf_counter(), p.records))
                cpu.append(time.process_time())
                if watcher is not None:
                    server.append(await watcher.seconds())

        started = time.perf_counter()
        run = await run_sync(rt, cid, trigger="bench", on_progress=mark,  # type: ignore[arg-type]
                             options=SyncOptions(overlap_pages=overlap))
        wall = time.perf_counter() - started
        await rt.close()
        if watcher is not None:
            await watcher.close()
        st = run.stats
        sold = max(1, marks[-1][1] - marks[0][1]) if marks else 1
        return {
            "backend": backend, "sales": sales, "clients": n_clients,
            "sales_s": st["sales"]["seconds"], "clients_s": st["clients"]["seconds"], "wall": wall,
            "rate": sales / st["sales"]["seconds"], "client_rate": n_clients / st["clients"]["seconds"],
            "errors": run.errors, "first_last": _first_last(marks),
            # Clasp's own CPU per sale (this process), which contention on a shared machine does not inflate.
            "cpu_us": (cpu[-1] - cpu[0]) / sold * 1e6 if len(cpu) > 1 else 0.0,
            # PostgreSQL's CPU for the same pages (the client backends of our database).
            "server_us": (server[-1] - server[0]) / sold * 1e6 if len(server) > 1 else None,
            "gen_us": _generator_cost(),
            # CPU µs per sale (ours + server's) in the first and the last tenth: the load-proof view of scaling.
            "first_last_cpu": _first_last_cpu(marks, cpu, server),
        }
    finally:
        if dbname:
            await _pg(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


class _ServerCPU:
    """CPU seconds used so far by the PostgreSQL client backends serving one database, read from /proc
    (the server runs on this machine). Autovacuum is left out: when it runs depends on timing, not on
    the statements. A backend that exits between two readings loses its share, so the figure is a
    lower bound; the engine keeps its pooled connections for the whole run."""

    def __init__(self, conn: Any, dbname: str) -> None:
        self.conn, self.dbname = conn, dbname
        self.seen: dict[int, float] = {}
        self.tick = os.sysconf("SC_CLK_TCK")

    @classmethod
    async def open(cls, dbname: str) -> _ServerCPU | None:
        import asyncpg

        if not sys.platform.startswith("linux"):  # backend CPU is read from /proc
            return None
        return cls(await asyncpg.connect(PG_ADMIN), dbname)

    async def seconds(self) -> float:
        pids = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", self.dbname)
        for (pid,) in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:  # noqa: ASYNC230 - procfs reads do not block
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # exited, or another user's process we may not read
                continue
            self.seen[pid] = (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
        return sum(self.seen.values())

    async def close(self) -> None:
        await self.conn.close()


def _generator_cost(n: int = 5_000) -> float:
    """CPU µs per sale spent by this benchmark making payloads: part of 'CPU µs/sale', not Clasp's work."""
    gen = Sales(BenchSettings(sales=n))
    rnd = random.Random(1)
    start = time.process_time()
    for i in range(n):
        gen.payload(i, rnd)
    return (time.process_time() - start) / n * 1e6


def _first_last_cpu(marks: list[tuple[float, int]], cpu: list[float],
                    server: list[float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(ours, PostgreSQL's) CPU µs per sale in the first and in the last tenth of the pages."""
    if len(marks) < 10:
        return ((0.0, 0.0), (0.0, 0.0))
    tenth = len(marks) // 10

    def per_sale(a: int, b: int) -> tuple[float, float]:
        sold = max(1, marks[b][1] - marks[a][1])
        return ((cpu[b] - cpu[a]) / sold * 1e6, (server[b] - server[a]) / sold * 1e6 if server else 0.0)

    return per_sale(0, tenth), per_sale(len(marks) - tenth - 1, len(marks) - 1)


def _first_last(marks: list[tuple[float, int]]) -> tuple[float, float]:
    """Sales/s over the first and the last tenth of the sales pages: does a page get slower as the store grows?"""
    if len(marks) < 10:
        return (0.0, 0.0)
    tenth = len(marks) // 10

    def rate(a: tuple[float, int], b: tuple[float, int]) -> float:
        return (b[1] - a[1]) / (b[0] - a[0])

    return rate(marks[0], marks[tenth]), rate(marks[-tenth - 1], marks[-1])


def _pair(ours_pg: tuple[float, float]) -> str:
    return f"{ours_pg[0]:.0f}+{ours_pg[1]:.0f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000", help="comma-separated sale counts (default 10000)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=None, help="clients to sync first (default sales/10)")
    parser.add_argument("--no-overlap", action="store_true",
                        help="commit every page before starting the next (PostgreSQL overlaps them by default)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"{'backend':9} {'sales':>9} {'clients':>8} {'sales s':>8} {'sales/s':>9} {'vs first':>8}"
          f" {'clients/s':>9} {'wall s':>7} {'first/last tenth sales/s':>25} {'CPU µs/sale':>11} {'of it gen':>9}"
          f" {'PG µs/sale':>10} {'first/last tenth CPU µs/sale (ours+PG)':>38}")
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        first = None
        for size in sizes:
            r = await bench_one(backend, size, args.page_size, args.clients, not args.no_overlap)
            first = first or r["rate"]
            print(f"{backend:9} {size:>9} {r['clients']:>8} {r['sales_s']:>8.1f} {r['rate']:>9.0f} "
                  f"{r['rate'] / first:>8.2f} {r['client_rate']:>9.0f} {r['wall']:>7.1f} "
                  f"{r['first_last'][0]:>17.0f} / {r['first_last'][1]:>5.0f} {r['cpu_us']:>11.0f} {r['gen_us']:>9.0f} "
                  f"{'-' if r['server_us'] is None else format(r['server_us'], '.0f'):>10} "
                  f"{_pair(r['first_last_cpu'][0]):>17} / {_pair(r['first_last_cpu'][1]):>9}"
                  + (f"  errors={r['errors']}" if r["errors"] else ""), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
