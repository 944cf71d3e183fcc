"""One full automations evaluation over a large unified store on PostgreSQL; prints seconds.

Data is generated with set-based SQL (``generate_series``), so setup takes minutes, not hours:
20 locations across timezones, 200 associates, N clients (birthdays; a third with anniversaries),
10 sales per client over five years (5 % walk-ins, 3 % voided, 2 % refunds) with one line each on
products in five categories. Then all five built-in automations are enabled (birthday as texts, the
others as tasks) and one evaluation runs at a fixed instant — the dry run first, then the real run,
then a re-run (which must create nothing).

    .venv/bin/python bench/automations.py                         # 1M clients, 10M sales (target ≤ 10 s)
    .venv/bin/python bench/automations.py --clients 100000        # 100k clients, 1M sales
    .venv/bin/python bench/automations.py --clients 100000 --keep # reuse the generated database

Prints the seconds of each phase and the ratio to the 10 s target.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import text

from bench.pgdb import PG, bench_database
from core.plugins import load_plugins
from core.runtime import create_runtime
from core.settings import Settings

NOW = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)
TARGET_SECONDS = 10.0
ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Europe/London",
         "Europe/Paris", "Asia/Tokyo", "Australia/Sydney", "Asia/Dubai", "America/Toronto"]


def generate_sql(clients: int, per_client: int) -> list[str]:
    sales = clients * per_client
    zones = "ARRAY[" + ",".join(f"'{z}'" for z in ZONES) + "]"
    return [
        f"""INSERT INTO location (name, timezone, currency, country, outreach_mode, quiet_hours_start,
               quiet_hours_end, active, created_at, updated_at)
            SELECT 'Store ' || g, ({zones})[1 + g % {len(ZONES)}], 'USD', 'US',
                   CASE WHEN g % 3 = 0 THEN 'store' ELSE 'own' END, '09:00', '20:00', true, now(), now()
            FROM generate_series(1, 20) g""",
        """INSERT INTO associate (location_id, first_name, last_name, active, created_at, updated_at)
            SELECT 1 + g % 20, 'Assoc' || g, 'Staff', g % 17 <> 0, now(), now() FROM generate_series(1, 200) g""",
        """INSERT INTO product (name, category, sku, image_missing, archived, created_at, updated_at)
            SELECT 'Piece ' || g,
                   (ARRAY['Rings','Necklaces','Bracelets','Watches','Earrings'])[1 + g % 5], 'SKU' || g,
                   false, false, now(), now()
            FROM generate_series(1, 1000) g""",
        f"""INSERT INTO client (first_name, last_name, birthday, anniversary, address, custom_fields, provenance,
               home_location_id, archived, created_at, updated_at)
            SELECT 'First' || g, 'Last' || g,
                   DATE '1950-01-01' + (hashint4(g) & 2147483647) % 20000,
                   CASE WHEN g % 3 = 0 THEN DATE '1990-01-01' + (hashint4(g + 7) & 2147483647) % 12000 END,
                   '{{}}', '{{}}', '{{}}', CASE WHEN g % 50 = 0 THEN NULL ELSE 1 + g % 20 END, false, now(), now()
            FROM generate_series(1, {clients}) g""",
        f"""INSERT INTO sale (location_id, associate_id, client_id, channel, status, currency, subtotal_minor,
               tax_minor, total_minor, occurred_at, created_at, updated_at)
            SELECT 1 + g % 20, 1 + (hashint4(g) & 2147483647) % 200,
                   CASE WHEN g % 20 = 0 THEN NULL ELSE 1 + (hashint4(g + 1) & 2147483647) % {clients} END,
                   'store', CASE WHEN g % 33 = 0 THEN 'voided' ELSE 'completed' END, 'USD',
                   CASE WHEN g % 50 = 1 THEN -50000 ELSE 10000 + g % 900000 END, 0,
                   CASE WHEN g % 50 = 1 THEN -50000 ELSE 10000 + g % 900000 END,
                   TIMESTAMPTZ '2026-07-01 16:00+00' - ((hashint4(g + 2) & 2147483647) % (5 * 365 * 24 * 60))
                       * INTERVAL '1 minute',
                   now(), now()
            FROM generate_series(1, {sales}) g""",
        """INSERT INTO sale_line (sale_id, product_id, sku, name, quantity, unit_price_minor, total_minor)
            SELECT id, 1 + id % 1000, 'SKU', 'Piece', CASE WHEN total_minor < 0 THEN -1 ELSE 1 END,
                   abs(total_minor), total_minor
            FROM sale""",
        "ANALYZE",
    ]


async def prepare(dbname: str, clients: int, per_client: int, keep: bool) -> Settings:
    settings, exists = await bench_database(dbname, "/tmp/clasp-bench-automations", keep=keep)
    if exists:
        print(f"reusing {dbname}")
        return settings
    conn = await asyncpg.connect(f"{PG}/{dbname}")
    try:
        started = time.perf_counter()
        for sql in generate_sql(clients, per_client):
            t = time.perf_counter()
            await conn.execute(sql)
            print(f"  setup {sql.split()[2] if sql.startswith('INSERT') else sql:<12} {time.perf_counter() - t:7.1f} s")
        print(f"setup: {clients:,} clients, {clients * per_client:,} sales in {time.perf_counter() - started:.0f} s")
    finally:
        await conn.close()
    return settings


async def bench(clients: int, per_client: int, keep: bool) -> None:
    dbname = f"clasp_bench_automations_{clients}"
    settings = await prepare(dbname, clients, per_client, keep)
    import importlib.metadata

    from core.automations.evaluate import evaluate
    from core.automations.owners import assign_owners
    from core.automations.store import configure, ensure_automations
    from plugins.automations import plugin

    installed = {ep.value for ep in importlib.metadata.entry_points(group="clasp")}
    plugins = load_plugins(settings) if "plugins.automations.plugin" in installed else load_plugins(
        settings, extra=[plugin])
    rt = create_runtime(settings, plugins=plugins)
    try:
        async with rt.db.transaction() as s:
            # A fresh start on a kept database: the occasions fire again.
            await s.exec(text("DELETE FROM outreach WHERE automation_id IS NOT NULL"))  # type: ignore[call-overload]
            await s.exec(text("DELETE FROM task WHERE automation_id IS NOT NULL"))  # type: ignore[call-overload]
            await s.exec(text("DELETE FROM app_setting WHERE key LIKE 'automations.watermark.%'"))  # type: ignore[call-overload]
            await ensure_automations(s, rt.registry)
            for name, action in (("birthday", "send"), ("anniversary", "send"), ("thank_you", "task"),
                                 ("clean_check", "task"), ("dormant", "task")):
                await configure(s, rt.registry, name, action=action, enabled=True)
        t = time.perf_counter()
        async with rt.db.transaction() as s:
            changed = await assign_owners(s)
        owners_s = time.perf_counter() - t
        print(f"owners (full pass, {changed:,} changed): {owners_s:.2f} s")
        t = time.perf_counter()
        dry = await evaluate(rt, now=NOW, dry_run=True)
        dry_s = time.perf_counter() - t
        t = time.perf_counter()
        runs = await evaluate(rt, now=NOW)
        real_s = time.perf_counter() - t
        t = time.perf_counter()
        again = await evaluate(rt, now=NOW)
        again_s = time.perf_counter() - t
        for d, r, a in zip(dry, runs, again, strict=True):
            print(f"  {r.automation:<12} due {r.due:>7,}  created {r.created:>7,}  (dry run said {d.created:,})  "
                  f"{r.seconds:6.2f} s (query {r.query_seconds:.2f} s; re-run {a.seconds:.2f} s)")
        assert [d.created for d in dry] == [r.created for r in runs], "dry run and real run disagree"
        assert sum(r.created for r in again) == 0, "a re-run fired something twice"
        print(f"dry run: {dry_s:.2f} s   evaluation: {real_s:.2f} s   re-run: {again_s:.2f} s")
        # Steady state: the worker evaluates every few minutes, so each run looks back only to the
        # previous one (plus an overlap); a day's gap shows the cost after an outage.
        steady = []
        for label, later in (("+5 min", timedelta(minutes=5)), ("+1 day", timedelta(days=1))):
            t = time.perf_counter()
            more = await evaluate(rt, now=NOW + later)
            steady.append((label, time.perf_counter() - t, sum(r.created for r in more)))
        for label, seconds, created in steady:
            print(f"next evaluation {label}: {seconds:.2f} s ({created:,} new occasions)")
        print(f"{clients:,} clients / {clients * per_client:,} sales: first evaluation {real_s:.2f} s "
              f"= {real_s / TARGET_SECONDS:.2f} × the {TARGET_SECONDS:.0f} s target; "
              f"steady state {steady[0][1]:.2f} s = {steady[0][1] / TARGET_SECONDS:.2f} ×")
    finally:
        await rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--sales-per-client", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="Reuse the generated database if it exists.")
    args = parser.parse_args()
    asyncio.run(bench(args.clients, args.sales_per_client, args.keep))


if __name__ == "__main__":
    main()
