"""Attribution over a large unified store on PostgreSQL: the full pass and the feed path, sales/s.

Data is generated with set-based SQL: 20 stores, 200 associates, N clients with 10 sales each over
one year (5 % walk-ins, 3 % voided, 2 % refunds of an earlier line), and for 30 % of the clients
four delivered texts (a third of them answered) and one completed call spread over the same year.
Then, with every registered model:

- the full pass (what a first run, a new window or ``clasp attribution recompute`` does);
- a re-run of it (must give the same rows);
- the feed path: feed rows for 10,000 sales (as a sync appends them) read by the consumer.

    .venv/bin/python bench/attribution.py --clients 10000,100000       # 100k and 1M sales
    .venv/bin/python bench/attribution.py --clients 100000 --keep      # reuse the generated database

Prints sales/s per phase and the ratio of each size's full-pass rate to the smallest size's
(flat ≈ 1.0 means it scales linearly).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import text

from bench.pgdb import PG, bench_database
from core.plugins import load_plugins
from core.runtime import create_runtime
from core.settings import Settings

FEED_SALES = 10_000


def generate_sql(clients: int, per_client: int) -> list[str]:
    sales = clients * per_client
    return [
        """INSERT INTO location (name, timezone, currency, country, outreach_mode, quiet_hours_start,
               quiet_hours_end, active, created_at, updated_at)
            SELECT 'Store ' || g, (ARRAY['America/New_York','America/Chicago','Europe/Paris'])[1 + g % 3],
                   'USD', 'US', 'own', '09:00', '20:00', true, now(), now()
            FROM generate_series(1, 20) g""",
        """INSERT INTO associate (location_id, first_name, last_name, active, created_at, updated_at)
            SELECT 1 + g % 20, 'Assoc' || g, 'Staff', true, now(), now() FROM generate_series(1, 200) g""",
        f"""INSERT INTO client (first_name, last_name, address, custom_fields, provenance, home_location_id,
               archived, created_at, updated_at)
            SELECT 'First' || g, 'Last' || g, '{{}}', '{{}}', '{{}}', 1 + g % 20, false, now(), now()
            FROM generate_series(1, {clients}) g""",
        f"""INSERT INTO sale (location_id, associate_id, client_id, channel, status, currency, subtotal_minor,
               tax_minor, total_minor, occurred_at, created_at, updated_at)
            SELECT 1 + (hashint4(g) & 2147483647) % 20, 1 + (hashint4(g + 3) & 2147483647) % 200,
                   CASE WHEN g % 20 = 0 THEN NULL ELSE 1 + (hashint4(g + 1) & 2147483647) % {clients} END,
                   'store', CASE WHEN g % 33 = 0 THEN 'voided' ELSE 'completed' END, 'USD',
                   10000 + g % 900000, (10000 + g % 900000) / 10, (10000 + g % 900000) * 11 / 10,
                   now() - ((hashint4(g + 2) & 2147483647) % (365 * 24 * 60)) * INTERVAL '1 minute',
                   now(), now()
            FROM generate_series(1, {sales}) g""",
        """INSERT INTO sale_line (sale_id, product_id, sku, name, quantity, unit_price_minor, total_minor)
            SELECT id, NULL, 'SKU', 'Piece', 1, subtotal_minor, total_minor FROM sale""",
        # 2 % of sales are refunds of an earlier sale's line, rung up nine days later as their own sale.
        """CREATE TEMP TABLE refund_src AS
            SELECT nextval(pg_get_serial_sequence('sale', 'id')) AS new_id, s.location_id, s.client_id,
                   s.occurred_at, s.subtotal_minor, s.tax_minor, s.total_minor, l.id AS line_id
            FROM sale s JOIN sale_line l ON l.sale_id = s.id
            WHERE s.id % 50 = 7 AND s.client_id IS NOT NULL AND s.status = 'completed'""",
        """INSERT INTO sale (id, location_id, client_id, channel, status, currency, subtotal_minor, tax_minor,
               total_minor, occurred_at, created_at, updated_at)
            SELECT new_id, location_id, client_id, 'store', 'completed', 'USD', -subtotal_minor, -tax_minor,
                   -total_minor, occurred_at + INTERVAL '9 days', now(), now() FROM refund_src""",
        """INSERT INTO sale_line (sale_id, name, quantity, unit_price_minor, total_minor, parent_line_id)
            SELECT new_id, 'Return', -1, total_minor, -total_minor, line_id FROM refund_src""",
        f"""INSERT INTO outreach (client_id, associate_id, location_id, channel, direction, kind, body, media_urls,
               state, attempts, due_at, sent_at, delivered_at, created_at, updated_at)
            SELECT c, 1 + (hashint4(c * 7 + k) & 2147483647) % 200, 1 + (hashint4(c * 5 + k) & 2147483647) % 20,
                   'sms', 'outbound', 'marketing', 'Hello', '[]', 'delivered', 1, t, t, t, t, t
            FROM (SELECT c, k, now() - ((hashint4(c * 11 + k) & 2147483647) % (365 * 24 * 60)) * INTERVAL '1 minute' t
                  FROM generate_series(1, {clients}) c, generate_series(1, 4) k WHERE c % 10 < 3) x""",
        """INSERT INTO outreach (client_id, associate_id, location_id, channel, direction, kind, body, media_urls,
               state, attempts, due_at, sent_at, created_at, updated_at)
            SELECT client_id, associate_id, location_id, 'sms', 'inbound', 'transactional', 'Yes!', '[]',
                   'received', 0, delivered_at + INTERVAL '3 hours', delivered_at + INTERVAL '3 hours',
                   delivered_at + INTERVAL '3 hours', delivered_at + INTERVAL '3 hours'
            FROM outreach WHERE direction = 'outbound' AND id % 3 = 0""",
        f"""INSERT INTO task (client_id, associate_id, location_id, kind, title, state, due_at, done_at, created_at)
            SELECT c, 1 + (hashint4(c) & 2147483647) % 200, 1 + (hashint4(c * 3) & 2147483647) % 20, 'call',
                   'Call', 'done', t, t, t
            FROM (SELECT c, now() - ((hashint4(c * 13) & 2147483647) % (365 * 24 * 60)) * INTERVAL '1 minute' t
                  FROM generate_series(1, {clients}) c WHERE c % 10 < 3) x""",
        "ANALYZE",
    ]


async def prepare(dbname: str, clients: int, per_client: int, keep: bool) -> tuple[Settings, int]:
    settings, exists = await bench_database(dbname, "/tmp/clasp-bench-attribution", keep=keep)
    conn = await asyncpg.connect(f"{PG}/{dbname}")
    try:
        if not exists:
            started = time.perf_counter()
            for sql in generate_sql(clients, per_client):
                await conn.execute(sql)
            print(f"setup: {time.perf_counter() - started:.0f} s")
        sales = int(await conn.fetchval("SELECT count(*) FROM sale"))
        touches = int(await conn.fetchval("SELECT count(*) FROM outreach WHERE direction = 'outbound'")) + int(
            await conn.fetchval("SELECT count(*) FROM task"))
        print(f"{clients:,} clients, {sales:,} sales, {touches:,} touches")
    finally:
        await conn.close()
    return settings, sales


async def bench(clients: int, per_client: int, keep: bool) -> float:
    dbname = f"clasp_bench_attribution_{clients}"
    settings, sales = await prepare(dbname, clients, per_client, keep)
    from core.attribution.jobs import consume_feed, recompute_all

    rt = create_runtime(settings, plugins=load_plugins(settings))
    models = sorted(rt.registry.attribution_models)
    try:
        t = time.perf_counter()
        first = await recompute_all(rt)
        full_s = time.perf_counter() - t
        rows = await _rows(rt)
        t = time.perf_counter()
        again = await recompute_all(rt)
        again_s = time.perf_counter() - t
        assert again.credited == first.credited and await _rows(rt) == rows, "a re-run changed the credit"
        async with rt.db.transaction() as s:
            await s.exec(text(  # type: ignore[call-overload]
                f"""INSERT INTO change_feed (entity, entity_id, op, changes, origin, created_at)
                    SELECT 'sale', id, 'update', '{{}}', 'bench', now() - INTERVAL '1 minute'
                    FROM sale ORDER BY id DESC LIMIT {FEED_SALES}"""))
        t = time.perf_counter()
        read = 0
        while True:
            done = await consume_feed(rt, settle=timedelta(0))
            if not done["rows"]:
                break
            read += done["sales"]
        feed_s = time.perf_counter() - t
        print(f"models: {', '.join(models)}")
        print(f"full pass: {first.sales:,} candidate sales (of {sales:,}) in {full_s:.2f} s "
              f"= {first.sales / full_s:,.0f} sales/s ({first.credited:,} credited, {rows:,} credit rows); "
              f"re-run {again_s:.2f} s")
        print(f"feed path: {read:,} sales recomputed from {FEED_SALES:,} feed rows in {feed_s:.2f} s "
              f"= {read / feed_s:,.0f} sales/s")
        return first.sales / full_s
    finally:
        await rt.close()


async def _rows(rt: object) -> int:
    async with rt.db.session() as s:  # type: ignore[attr-defined]
        return int((await s.exec(text("SELECT count(*) FROM attribution"))).scalar())  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="10000,100000", help="Comma-separated client counts.")
    parser.add_argument("--sales-per-client", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="Reuse the generated databases if they exist.")
    args = parser.parse_args()
    rates = []
    for n in (int(x) for x in args.clients.split(",")):
        rates.append((n, asyncio.run(bench(n, args.sales_per_client, args.keep))))
    base = rates[0][1]
    for n, rate in rates:
        print(f"{n:>9,} clients: full pass {rate:,.0f} sales/s, {rate / base:.2f}× the smallest size's rate")


if __name__ == "__main__":
    main()
