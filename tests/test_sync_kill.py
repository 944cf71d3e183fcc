"""Killing a sync process at random points and re-running it yields exactly the store of an uninterrupted run.

The backfill runs in a subprocess (``tests.testpos.runsync``) against the fake POS; it is SIGKILLed
after a random number of API requests plus a random delay (so kills land while fetching, while
ingesting, and while committing), several times, then run to completion. An uninterrupted run of
the same data goes into a second database of the same backend. A canonical dump of both stores —
clients, contacts, sales, lines, products, associates, locations, external refs, checkpoints, the
change feed and the error queue, with database ids replaced by external ids — must be identical.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core import migrate
from core.db import Database
from core.plugins import load_plugins
from core.runtime import Runtime, create_runtime
from core.settings import Settings
from core.sync import SyncOptions, run_sync
from tests.testpos import plugin as testpos_plugin
from tests.testpos.fake import FakePOS
from tests.testpos.fixtures import PLUGIN_MODULE, add_testpos

ROOT = Path(__file__).resolve().parent.parent
KILLS = 5
LEASE = 1.0

pytestmark = pytest.mark.slow


@pytest.fixture
async def reference_rt(settings: Settings, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A second, empty database on the same backend, for the uninterrupted run."""
    values: dict[str, Any] = {"data_dir": tmp_path / "reference"}
    dbname = None
    if not settings.is_sqlite:
        import asyncpg

        dbname = f"clasp_ref_{os.getpid()}_{random.randrange(1 << 30)}"
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        await admin.execute(f'CREATE DATABASE "{dbname}"')
        await admin.close()
        values["database_url"] = f"postgresql://postgres@127.0.0.1:5432/{dbname}"
    ref_settings = settings.model_copy(update=values)
    db = Database(ref_settings)
    await migrate.upgrade(db)
    await db.dispose()
    runtime = create_runtime(ref_settings, plugins=load_plugins(ref_settings, extra=[testpos_plugin]))
    yield runtime
    await runtime.close()
    if dbname:
        import asyncpg

        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()


# No look-back window: it would re-read recent pages and could hide a lost page.
def populate(pos: FakePOS) -> None:
    pos.generate(seed=11, shops=3, employees=6, customers=60, items=20, sales=250)
    # Something for the error queue too: a malformed sale and one waiting for an unknown customer.
    sale = pos.get_record("sales", "T3")
    pos.put("sales", {**sale, "id": "TBAD", "total": "12,00", "lines": []})
    pos.put("sales", {**sale, "id": "TWAIT", "customer_id": "C-missing", "lines": []})


async def test_sigkill_at_random_points_then_rerun_matches_an_uninterrupted_run(
    pos_rt: Runtime, reference_rt: Runtime, fake_pos: FakePOS
) -> None:
    populate(fake_pos)
    fake_pos.latency = 0.005
    ref_cid = await add_testpos(reference_rt, fake_pos, page_size=7, lookback_seconds=0)
    before = fake_pos.requests
    await run_sync(reference_rt, ref_cid, options=SyncOptions(retry_base_delay=0.01))
    requests_per_run = fake_pos.requests - before
    assert requests_per_run > 30

    cid = await add_testpos(pos_rt, fake_pos, page_size=7, lookback_seconds=0)
    if pos_rt.db.dialect == "postgresql":
        # A killed run may use up sequence values; make the two stores' ids differ whatever the kills
        # do, so the comparison below is by external ids and never by chance by database ids.
        await rows(pos_rt, "SELECT setval(pg_get_serial_sequence('location', 'id'), 100)")
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    env = {**os.environ, "CLASP_PLUGINS": PLUGIN_MODULE, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.testpos.runsync", str(cid), "--lease-seconds", str(LEASE)]
    killed = 0
    remaining = requests_per_run  # roughly: pages not committed yet are fetched again after a kill
    for _ in range(KILLS):
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        start = fake_pos.requests
        # Somewhere in the first two thirds of what is left, so the kill lands before the run ends.
        target = start + rnd.randint(1, max(1, remaining * 2 // 3))
        # The fake counts requests in its own thread; poll it to kill right after the chosen one.
        while proc.returncode is None and fake_pos.requests < target:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        await asyncio.sleep(rnd.uniform(0, 0.02))
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        await asyncio.wait_for(proc.wait(), 30)
        remaining = max(3, remaining - (fake_pos.requests - start) + 1)
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, (seed, out, err[-3000:])
    assert json.loads(out.decode().strip().splitlines()[-1])["status"] == "succeeded"
    assert killed >= 3, f"only {killed} kills landed mid-run (seed {seed})"

    got, want = await dump(pos_rt, cid), await dump(reference_rt, ref_cid)
    for key in want:
        assert got[key] == want[key], f"{key} differs after {killed} kills (seed {seed})"
    runs = await rows(pos_rt, "SELECT status FROM sync_run")
    assert sorted(r[0] for r in runs).count("interrupted") == killed


async def rows(rt: Runtime, sql: str) -> list[Any]:
    async with rt.db.engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


ID_KEYS = {
    "location_id": "location", "home_location_id": "location", "associate_id": "associate",
    "owner_associate_id": "associate", "client_id": "client", "merged_into_id": "client", "survivor_id": "client",
    "absorbed_id": "client", "product_id": "product", "sale_id": "sale", "parent_line_id": "sale_line",
}


async def dump(rt: Runtime, cid: int) -> dict[str, Any]:
    """The store as data, with every database id replaced by the external ids that name the row."""
    names: dict[str, dict[int, str]] = defaultdict(dict)
    refs = []
    for otype, ext, unified, phash in await rows(
        rt, f"SELECT object_type, external_id, unified_id, payload_hash FROM external_ref WHERE connector_id={cid}"
    ):
        prev = names[otype].get(unified)
        names[otype][unified] = ext if prev is None else "+".join(sorted([*prev.split("+"), ext]))
        # A client's hash folds in its home location's database id (see core.identity.ingest), and a
        # killed transaction may have used up sequence values, so ids (not names) can differ between
        # the two stores. Whether the hash is set is compared here; what it covers is compared below.
        refs.append((otype, ext, (phash is not None) if otype == "client" else phash))

    # Sale lines carry their POS id themselves.
    for lid, ext in await rows(rt, f"SELECT id, external_id FROM sale_line WHERE connector_id={cid}"):
        names["sale_line"][lid] = ext
        refs.append(("sale_line", ext, None))

    def name(kind: str, ident: Any) -> Any:
        return None if ident is None else names[kind].get(int(ident), f"<unnamed {kind}>")

    def plain(values: dict[str, Any]) -> Any:
        return json.dumps({k: name(ID_KEYS[k], v) if k in ID_KEYS and isinstance(v, int) else v
                           for k, v in sorted(values.items())}, sort_keys=True, default=str)

    out: dict[str, Any] = {"refs": sorted(refs)}
    out["locations"] = sorted((name("location", r[0]), *r[1:]) for r in await rows(
        rt, "SELECT id, name, timezone, currency, country, phone, active FROM location"))
    out["associates"] = sorted((name("associate", r[0]), *r[1:4], name("location", r[4]), r[5]) for r in await rows(
        rt, "SELECT id, first_name, last_name, email, location_id, active FROM associate"))
    out["products"] = sorted((name("product", r[0]), *r[1:]) for r in await rows(
        rt, "SELECT id, sku, name, vendor, category, price_minor, currency, image_missing, archived FROM product"))
    out["images"] = sorted((name("product", r[0]), r[1], r[2]) for r in await rows(
        rt, "SELECT product_id, url, position FROM product_image"))
    out["clients"] = sorted(
        (name("client", r[0]), *[str(v) for v in r[1:5]], name("location", r[5]), name("client", r[6]), r[7])
        for r in await rows(rt, "SELECT id, first_name, last_name, birthday, anniversary, home_location_id,"
                                " merged_into_id, archived FROM client"))
    out["contacts"] = sorted((name("client", r[0]), *r[1:]) for r in await rows(
        rt, "SELECT client_id, kind, value, raw, label, is_primary FROM client_contact"))
    out["sales"] = sorted(
        (name("sale", r[0]), name("location", r[1]), name("associate", r[2]), name("client", r[3]), *r[4:9],
         str(r[9]))
        for r in await rows(rt, "SELECT id, location_id, associate_id, client_id, channel, status, currency,"
                                " subtotal_minor, total_minor, occurred_at FROM sale"))
    out["lines"] = sorted(
        (name("sale_line", r[0]), name("sale", r[1]), name("product", r[2]), *r[3:8], name("sale_line", r[8]))
        for r in await rows(rt, "SELECT id, sale_id, product_id, sku, name, quantity, unit_price_minor, total_minor,"
                                " parent_line_id FROM sale_line"))
    out["feed"] = sorted(
        (r[0], name(r[0], r[1]), r[2], plain(r[3] if isinstance(r[3], dict) else json.loads(r[3])),
         r[4].replace(f"connector:{cid}", "connector:*"))
        for r in await rows(rt, "SELECT entity, entity_id, op, changes, origin FROM change_feed"))
    out["errors"] = sorted(tuple(r) for r in await rows(
        rt, "SELECT stream, external_id, reason, state FROM sync_error"))
    out["checkpoints"] = sorted((r[0], str(r[1])) for r in await rows(rt, "SELECT stream, state FROM checkpoint"))
    out["merges"] = sorted((name("client", r[0]), name("client", r[1]), r[2]) for r in await rows(
        rt, "SELECT survivor_id, absorbed_id, reason FROM client_merge"))
    return out
