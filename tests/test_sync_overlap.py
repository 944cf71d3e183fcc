"""Overlapping page transactions (PostgreSQL) store exactly what one page after another stores.

The same POS data is synced into two databases of the same backend, once with ``overlap_pages``
(the default) and once without; the stores, compared as data (see ``test_sync_kill.dump``), must be
identical. The data has what makes pages depend on each other: refunds of lines sold pages earlier,
sales sharing a timestamp across a page boundary (read twice), a shop nobody listed appearing
mid-stream (a location the overlapped page would have to create), a malformed sale, and edits.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from core.connectors import context_for, get_connector
from core.runtime import Runtime
from core.settings import Settings
from core.sync import SyncOptions, SyncProgress, run_sync
from core.sync.ingest import ingest_page
from core.sync.lease import lock_connector
from tests.test_sync_kill import dump, reference_rt
from tests.testpos.fake import FakePOS
from tests.testpos.fixtures import add_testpos

__all__ = ["reference_rt"]  # the fixture, imported for pytest

OVERLAP = SyncOptions(retry_base_delay=0.01, retry_max_delay=0.05)
SERIAL = SyncOptions(retry_base_delay=0.01, retry_max_delay=0.05, overlap_pages=False)


class Linger:
    """After each sales page commits, hold the sales checkpoint row for a moment from another
    connection: the next page, already under way, writes and then waits inside its transaction to
    store its checkpoint, while the page after it reads. The fake POS answers more slowly than a
    small page commits, so without this the pages of a test would hardly ever overlap."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.holders: list[asyncio.Task[None]] = []

    async def __call__(self, progress: SyncProgress) -> None:
        if progress.stream == "sales":
            held = asyncio.Event()
            self.holders.append(asyncio.create_task(self._hold(held)))
            await held.wait()

    async def _hold(self, held: asyncio.Event) -> None:
        async with self.rt.db.engine.begin() as conn:
            await conn.execute(text("SELECT 1 FROM checkpoint WHERE stream = 'sales' FOR UPDATE"))
            held.set()
            await asyncio.sleep(0.1)

    async def done(self) -> None:
        await asyncio.gather(*self.holders)


@pytest.fixture(autouse=True)
def _postgres_only(settings: Settings) -> None:
    if settings.is_sqlite:
        pytest.skip("pages overlap on PostgreSQL only (SQLite has one writer)")


def populate(pos: FakePOS) -> None:
    pos.generate(seed=5, shops=3, employees=5, customers=40, items=15, sales=120)
    # Sales sharing one timestamp across page boundaries: read again by the next page's `>=` cursor.
    stamp = pos.tick()
    for ext in ("T40", "T41", "T42", "T43"):
        pos.edit("sales", ext, updated_at=stamp)
    sale = pos.get_record("sales", "T3")
    pos.put("sales", {**sale, "id": "TBAD", "total": "12,00", "lines": []})
    pos.put("sales", {**sale, "id": "TNEWSHOP", "shop_id": "S77", "lines": []})
    for i in range(121, 140):
        pos.put("sales", {**sale, "id": f"T{i}", "lines": [
            {**line, "id": f"{line['id']}-{i}", "refund_of": None} for line in sale["lines"]]})


async def test_overlapped_pages_store_exactly_what_serial_pages_store(
    pos_rt: Runtime, reference_rt: Runtime, fake_pos: FakePOS
) -> None:
    populate(fake_pos)
    cid = await add_testpos(pos_rt, fake_pos, page_size=7, lookback_seconds=0)
    ref_cid = await add_testpos(reference_rt, fake_pos, page_size=7, lookback_seconds=0)
    for _ in range(2):
        linger = Linger(pos_rt)
        runs = [await run_sync(pos_rt, cid, options=OVERLAP, on_progress=linger),
                await run_sync(reference_rt, ref_cid, options=SERIAL)]
        await linger.done()
        assert [r.status for r in runs] == ["succeeded", "succeeded"]
        assert runs[0].stats["sales"] == {**runs[1].stats["sales"], "seconds": runs[0].stats["sales"]["seconds"]}
        got, want = await dump(pos_rt, cid), await dump(reference_rt, ref_cid)
        for key in want:
            assert got[key] == want[key], f"{key} differs"
        # Edits everywhere for the incremental run: updated sales, changed lines, a refund of a refund's sale.
        for ext in ("T2", "T9", "T41", "T77", "T120"):
            fake_pos.edit("sales", ext, status="voided")
        fake_pos.put("sales", {**fake_pos.get_record("sales", "T5"), "id": "T500", "lines": [
            {**fake_pos.get_record("sales", "T5")["lines"][0], "id": "L500", "qty": -1, "refund_of":
             fake_pos.get_record("sales", "T5")["lines"][0]["id"]}]})


async def test_a_replay_between_two_pages_is_seen_by_the_next_page(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    """A replay of the error queue writes between page 2's commit and page 3's, for a sale of page 3
    (T12). Page 3 read before the replay (it overlapped page 2), so it must notice and read again.

    To put the replay exactly there, the test holds a row page 2 updates (T9) until the replay is
    queued for the connector's lock behind page 2 and page 3 has read and planned: the replay then
    takes the lock as page 2 commits, before page 3 can."""
    fake_pos.generate(seed=3, shops=2, customers=10, items=6, sales=14)  # no refunds: pages do not depend
    cid = await add_testpos(pos_rt, fake_pos, page_size=5, lookback_seconds=0)
    await run_sync(pos_rt, cid, options=OVERLAP)
    for i in range(1, 15):
        fake_pos.edit("sales", f"T{i}", status="layaway")
    newer = {**fake_pos.get_record("sales", "T12"), "status": "voided", "updated_at": "2100-01-01T00:00:00Z"}
    replayed: list[str] = []
    replays: list[asyncio.Task[None]] = []

    async def until(condition: str) -> None:
        for _ in range(1000):
            async with pos_rt.db.engine.connect() as conn:
                if (await conn.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND " + condition
                ))).scalar_one():
                    return
            await asyncio.sleep(0.01)
        raise AssertionError(f"never: {condition}")

    waiting = "wait_event_type = 'Lock'"
    waiting_twice = f"(SELECT count(*) FROM pg_stat_activity WHERE {waiting}) >= 2"
    # A page's last read before it waits for the previous page is the lookup of its sales' lines.
    planned = "state = 'idle in transaction' AND query LIKE '%FROM sale_line WHERE connector_id%'"

    async def run_replay() -> None:
        replayed.append(await replay(pos_rt, cid, newer))

    async with pos_rt.db.engine.connect() as holder:
        await holder.begin()
        t9 = (await holder.execute(text(
            "SELECT r.unified_id FROM external_ref r WHERE r.connector_id = :c AND r.object_type = 'sale'"
            " AND r.external_id = 'T9'"), {"c": cid})).scalar_one()
        await holder.execute(text("SELECT 1 FROM sale WHERE id = :id FOR UPDATE"), {"id": t9})

        async def steer() -> None:
            await until(waiting)  # page 2 holds the connector's lock and waits for T9
            replays.append(asyncio.create_task(run_replay()))
            await until(waiting_twice)  # the replay waits for the connector's lock, behind page 2
            await until(planned)  # page 3 has read T12 and waits for page 2
            await holder.commit()  # page 2 goes on and commits; the replay comes next, then page 3

        steering: list[asyncio.Task[None]] = []

        async def after_page(progress: SyncProgress) -> None:
            if progress.stream == "sales" and not steering:  # page 1 committed
                steering.append(asyncio.create_task(steer()))

        run = await run_sync(pos_rt, cid, options=OVERLAP, on_progress=after_page)
        await asyncio.gather(*steering)
    await asyncio.gather(*replays)
    assert run.status == "succeeded" and run.errors == 0 and replayed == ["updated"]
    store = await dump(pos_rt, cid)
    statuses = {sale[0]: sale[5] for sale in store["sales"]}
    # The newer, replayed version of T12 stays: the page's older one is not applied over it.
    assert statuses == {**{f"T{i}": "layaway" for i in range(1, 15)}, "T12": "voided"}
    assert run.stats["sales"]["updated"] == 13 and run.stats["sales"]["unchanged"] == 1


async def replay(rt: Runtime, cid: int, payload: dict[str, Any]) -> str:
    """What a replay from the error queue does: under the connector's lock, through the ingest path."""
    async with rt.db.session() as session:
        connector = await get_connector(session, cid)
    ctype = rt.registry.connector_type(connector.type)
    stream = next(s for s in ctype.streams(context_for(rt, connector)) if s.name == "sales")
    async with rt.db.transaction() as session:
        await lock_connector(await session.connection(), cid)
        result = await ingest_page(session, connector_id=cid, connector_type=ctype.name, stream=stream,
                                   payloads=[payload], run_id=None)
    return result.outcomes[0].status
