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
    """A replay of the error queue writes between page 1's commit and page 2's, for a sale of page 2
    (T8). Page 2 read before the replay (it overlapped page 1), so it must notice and read again."""
    fake_pos.generate(seed=3, shops=2, customers=10, items=6, sales=14)  # no refunds: pages do not depend
    cid = await add_testpos(pos_rt, fake_pos, page_size=5, lookback_seconds=0)
    await run_sync(pos_rt, cid, options=OVERLAP)
    for i in range(1, 15):
        fake_pos.edit("sales", f"T{i}", status="layaway")
    newer = {**fake_pos.get_record("sales", "T8"), "status": "voided", "updated_at": "2100-01-01T00:00:00Z"}
    replayed: list[str] = []

    async def replay_once(progress: SyncProgress) -> None:
        if progress.stream == "sales" and not replayed:
            await asyncio.sleep(0.05)  # page 2 has read by now, and planned to update T8
            replayed.append(await replay(pos_rt, cid, newer))

    run = await run_sync(pos_rt, cid, options=OVERLAP, on_progress=replay_once)
    assert run.status == "succeeded" and run.errors == 0 and replayed == ["updated"]
    store = await dump(pos_rt, cid)
    statuses = {sale[0]: sale[5] for sale in store["sales"]}
    # The newer, replayed version of T8 stays: the page's older one is not applied over it.
    assert statuses == {**{f"T{i}": "layaway" for i in range(1, 15)}, "T8": "voided"}
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
