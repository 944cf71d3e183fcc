"""The panel's pages for each role on the demo chain: median and p95 per page, and the ratio to the owner's.

Scoped roles (a manager of one store, an associate of one store linked to a POS associate) must stay
within 2x of the owner on the same data: their queries add the ``core.access`` scope, nothing else.

    .venv/bin/python bench/pages.py                              # builds the demo chain (cached), SQLite
    .venv/bin/python bench/pages.py --data-dir /tmp/demo-base    # a copy of a prebuilt demo data dir
    .venv/bin/python bench/pages.py --postgres                   # the demo chain built on PostgreSQL
    .venv/bin/python bench/pages.py --runs 30 --slow 20          # print each statement over 20 ms

Without ``--data-dir`` the chain is built the way ``clasp demo`` builds it (the real command, sandboxes,
OAuth and backfill, a few minutes) into a scratch directory that later runs reuse (``--rebuild`` starts
afresh). A ``--data-dir`` is copied to a scratch directory first, never touched. The scratch copy is
migrated to the current schema; three users are added (owner, manager, associate), each signs in once
through the real sign-in form, then every page is fetched through the real app (in process, over
ASGI) once to warm up and ``--runs`` times measured, the roles taking turns on each run. Printed per
page and role: median / p95 in ms, statements per fetch, and each scoped role's median over the
owner's. ``--clock cpu`` measures this process's CPU time instead of wall time: on a machine shared
with other work it is far steadier (SQLite runs in process; PostgreSQL's own work is then left out).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import event, text

from core import migrate
from core.runtime import create_runtime
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = Path("/tmp/clasp-bench-pages")
PG = "postgresql://postgres@127.0.0.1:5432"
PG_DB = "clasp_bench_pages"
PASSWORD = "bench-pass-1234"
ROLES = ("owner", "manager", "associate")
BUILD_TIMEOUT = 1800


# ------------------------------------------------------------------------------------------ the chain


def _env(data_dir: Path, postgres: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASP_")}
    env.update(CLASP_DATA_DIR=str(data_dir), CLASP_LOG_LEVEL="WARNING", CLASP_DEMO_PASSWORD=PASSWORD,
               CLASP_QUEUE_NAME=f"clasp-bench-pages:{os.getpid()}")
    if postgres:
        env.update(CLASP_DATABASE_URL=f"{PG}/{PG_DB}", CLASP_REDIS_URL="redis://127.0.0.1:6379/14")
    return env


def _pg(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(f"{PG}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def build_chain(data_dir: Path, postgres: bool) -> None:
    """Run the real ``clasp demo`` until its first backfill and outreach history are done, then stop it."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    if postgres:
        _pg(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        _pg(f'CREATE DATABASE "{PG_DB}"')
    log = data_dir.parent / f"{data_dir.name}-demo.log"
    print(f"building the demo chain in {data_dir} (clasp demo, log in {log}) …", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([str(ROOT / ".venv/bin/clasp"), "demo", "--port", "0"], cwd=ROOT,
                                env=_env(data_dir, postgres), stdout=out, stderr=subprocess.STDOUT)
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"clasp demo stopped (exit {proc.returncode}); see {log}")
                if time.monotonic() - started > BUILD_TIMEOUT:
                    raise SystemExit(f"clasp demo did not finish its backfill in {BUILD_TIMEOUT} s; see {log}")
                body = log.read_text(errors="replace")
                if "Outreach history:" in body or "sync failed" in body:
                    break
                time.sleep(2)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    if "Outreach history:" not in log.read_text(errors="replace"):
        raise SystemExit(f"the demo's backfill failed; see {log}")
    (data_dir / ".bench-built").write_text("ok\n")
    print(f"built in {time.monotonic() - started:.0f} s", flush=True)


def scratch_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        source = Path(args.data_dir)
        if not (source / "clasp.db").exists():
            raise SystemExit(f"{source} holds no clasp.db")
        target = SCRATCH / "copy"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("redis.db*", "*.sock"))
        return target
    target = SCRATCH / ("chain-postgres" if args.postgres else "chain-sqlite")
    if args.rebuild or not (target / ".bench-built").exists():
        build_chain(target, args.postgres)
    return target


# ------------------------------------------------------------------------------------------ the people


async def prepare_people(rt: Any) -> dict[str, Any]:
    """Owner, manager and associate of the store with the most clients, plus the ids pages need."""
    from core.users import create_user

    async with rt.db.transaction() as s:
        # The store with the most home clients, and its associate owning the most clients there.
        loc = (await s.exec(text(  # type: ignore[call-overload]
            "SELECT home_location_id FROM client WHERE home_location_id IS NOT NULL "
            "GROUP BY home_location_id ORDER BY count(*) DESC, home_location_id LIMIT 1"))).first()
        if loc is None:  # no home stores: the store with the most sales
            loc = (await s.exec(text(  # type: ignore[call-overload]
                "SELECT location_id FROM sale GROUP BY location_id ORDER BY count(*) DESC LIMIT 1"))).first()
        location_id = int(loc[0])
        assoc = (await s.exec(text(  # type: ignore[call-overload]
            "SELECT a.id FROM associate a LEFT JOIN client c ON c.owner_associate_id = a.id "
            "WHERE a.location_id = :loc GROUP BY a.id ORDER BY count(c.id) DESC, a.id LIMIT 1"
        ).bindparams(loc=location_id))).first()
        associate_id = int(assoc[0])
        # A client every role may see (the associate's own, at the store) with a sale there.
        row = (await s.exec(text(  # type: ignore[call-overload]
            "SELECT c.id, c.last_name, s.id FROM client c JOIN sale s ON s.client_id = c.id "
            "WHERE c.owner_associate_id = :a AND s.location_id = :loc AND c.merged_into_id IS NULL "
            "ORDER BY s.occurred_at DESC LIMIT 1").bindparams(a=associate_id, loc=location_id))).first()
        if row is None:
            raise SystemExit("no client of the chosen associate bought at their store: not the demo chain?")
        client_id, last_name, sale_id = int(row[0]), str(row[1]), int(row[2])
        emails = {}
        for role in ROLES:
            email = f"bench-{role}-{os.getpid()}@example.com"
            await create_user(s, email=email, password=PASSWORD, role=role, name=f"Bench {role}",
                              location_ids=None if role == "owner" else [location_id],
                              associate_id=associate_id if role == "associate" else None)
            emails[role] = email
    return {"emails": emails, "location_id": location_id, "associate_id": associate_id,
            "client_id": client_id, "sale_id": sale_id, "search": last_name[:4].lower()}


def pages(ids: dict[str, Any]) -> dict[str, str]:
    return {
        "dashboard": "/admin",
        "today": "/admin/today",
        "clients": "/admin/clients",
        "clients search": f"/admin/clients?q={ids['search']}",
        "client page": f"/admin/clients/{ids['client_id']}",
        "sales": "/admin/sales",
        "sale page": f"/admin/sales/{ids['sale_id']}",
        "inbox": "/admin/inbox",
        "reports": "/admin/reports",
    }


async def sign_in(app: Any, email: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.9.8.7", 50000)),
                               base_url="http://bench.local")
    await client.get("/admin/sign-in")
    resp = await client.post("/admin/sign-in", data={"email": email, "password": PASSWORD, "next": "",
                                                     "_csrf_token": client.cookies.get("clasp_csrf") or ""})
    if resp.status_code != 303:
        raise SystemExit(f"sign-in as {email} answered {resp.status_code}")
    return client


# ------------------------------------------------------------------------------------------ measuring


class Statements:
    """Counts statements on the engine and remembers the slow ones while a page is fetched."""

    def __init__(self, engine: Any, slow_ms: float) -> None:
        self.count = 0
        self.slow_ms = slow_ms
        self.slow: list[tuple[float, str, Any]] = []
        self._started: dict[int, float] = {}
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        self.count += 1
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        took = (time.perf_counter() - self._started.pop(id(cursor), time.perf_counter())) * 1000
        if self.slow_ms and took >= self.slow_ms:
            self.slow.append((took, statement, params))

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.count = 0
        yield


async def upgrade(db: Any) -> None:
    """Migrate the copy to the current schema. On SQLite with foreign keys off: a migration that rebuilds
    a table (batch mode drops the old one) would otherwise fire its ON DELETE actions and null or delete
    every row pointing at it (sale.client_id, client_contact, attribution)."""
    if db.dialect != "sqlite":
        await migrate.upgrade(db)
        return
    async with db.engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        await conn.run_sync(migrate._upgrade, "head")
        await conn.commit()
        broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
        await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
    if broken:
        raise SystemExit(f"the migrated copy breaks {len(broken)} foreign keys, e.g. {broken[0]}")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def measure(args: argparse.Namespace, data_dir: Path) -> None:
    from core.plugins import load_plugins
    from core.web import create_app

    for key in [k for k in os.environ if k.startswith("CLASP_")]:
        del os.environ[key]
    os.environ.update({k: v for k, v in _env(data_dir, args.postgres).items() if k.startswith("CLASP_")})
    settings = Settings()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("clasp.admin").setLevel(logging.CRITICAL)  # a failing page is reported in one line
    rt = create_runtime(settings, load_plugins(settings))
    try:
        await upgrade(rt.db)
        # PostgreSQL's autovacuum keeps statistics; an SQLite file has none unless someone runs ANALYZE
        # (the demo never does), so by default the SQLite planner is measured as the demo has it.
        if rt.db.dialect == "postgresql" or args.analyze:
            async with rt.db.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        ids = await prepare_people(rt)
        async with rt.db.session() as s:
            counts = [int((await s.exec(text(f"SELECT count(*) FROM {t}"))).one()[0])  # type: ignore[call-overload]
                      for t in ("location", "client", "sale", "outreach", "task")]
        print(f"{rt.db.dialect} ({args.clock} clock): {counts[0]} stores, {counts[1]:,} clients, {counts[2]:,} sales, "
              f"{counts[3]:,} outreach rows, {counts[4]:,} tasks; manager and associate of location "
              f"{ids['location_id']}, associate #{ids['associate_id']}; {args.runs} runs per page")
        app = create_app(rt)
        stmts = Statements(rt.db.engine, args.slow)
        results: dict[str, dict[str, tuple[float, float, int]]] = {}
        targets = pages(ids)
        if args.pages:
            wanted = [p.strip() for p in args.pages.split(",")]
            targets = {k: v for k, v in targets.items() if k in wanted}
        clients = {role: await sign_in(app, ids["emails"][role]) for role in ROLES}
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        try:
            for name, url in targets.items():
                working = []
                for role in ROLES:
                    resp = await clients[role].get(url)  # warm-up (and the check that the page works)
                    if resp.status_code == 200:
                        working.append(role)
                    else:  # a page broken by work in progress: report it, go on
                        print(f"  {role} {url} answered {resp.status_code}: not measured")
                times: dict[str, list[float]] = {role: [] for role in working}
                queries: dict[str, int] = dict.fromkeys(working, 0)
                stmts.slow.clear()
                # Roles take turns on each run, so a busy machine slows them alike and the ratios hold.
                for _ in range(args.runs):
                    for role in working:
                        with stmts.counting():
                            started = clock()
                            await clients[role].get(url)
                            times[role].append((clock() - started) * 1000)
                            queries[role] = stmts.count
                for role in working:
                    results.setdefault(name, {})[role] = (statistics.median(times[role]), p95(times[role]),
                                                          queries[role])
                for took, sql, params in sorted(stmts.slow, key=lambda x: -x[0])[:3]:
                    one_line = re.sub(r"\s+", " ", sql)
                    print(f"  slow: {name}: {took:.0f} ms: {one_line[:600]} {params!r:.200}")
        finally:
            for client in clients.values():
                await client.aclose()
        report(results)
    finally:
        await rt.close()


def report(results: dict[str, dict[str, tuple[float, float, int]]]) -> None:
    head = f"{'page':<15}" + "".join(f"{role + ' med/p95 ms (q)':>28}" for role in ROLES)
    head += f"{'mgr/own':>9}{'assoc/own':>11}"
    print(head)
    print("-" * len(head))
    worst = 0.0
    for name, by_role in results.items():
        line = f"{name:<15}"
        for role in ROLES:
            if role in by_role:
                med, high, q = by_role[role]
                line += f"{f'{med:.1f} / {high:.1f} ({q})':>28}"
            else:
                line += f"{'failed':>28}"
        if "owner" in by_role:
            own = by_role["owner"][0]
            ratios = [by_role[r][0] / own if r in by_role else float("nan") for r in ("manager", "associate")]
            worst = max(worst, *(r for r in ratios if r == r))
            line += f"{ratios[0]:>8.2f}x{ratios[1]:>10.2f}x"
        print(line)
    print(f"worst scoped/owner median ratio: {worst:.2f}x (target ≤ 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a demo data directory to copy (SQLite); default: build the chain")
    parser.add_argument("--postgres", action="store_true", help="build and measure the chain on PostgreSQL")
    parser.add_argument("--rebuild", action="store_true", help="build the chain afresh even if cached")
    parser.add_argument("--runs", type=int, default=20, help="measured fetches per page and role")
    parser.add_argument("--pages", default="", help="comma-separated page names to measure (default: all)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's CPU time (steadier on a busy machine; on "
                             "PostgreSQL it leaves out the server's work)")
    parser.add_argument("--analyze", action="store_true", help="run ANALYZE on the SQLite copy first")
    parser.add_argument("--slow", type=float, default=0, help="print statements slower than this many ms")
    args = parser.parse_args()
    if args.data_dir and args.postgres:
        parser.error("--data-dir is a SQLite data directory; --postgres builds its own chain")
    data_dir = scratch_dir(args)
    asyncio.run(measure(args, data_dir))


if __name__ == "__main__":
    main()
