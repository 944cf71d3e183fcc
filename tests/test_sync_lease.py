"""The per-connector lease: never two runs of one connector at once, across workers; crashed runs are taken over."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, update
from sqlmodel import select

from core.models import Connector, Sale, SyncRun, utcnow
from core.plugins import load_plugins
from core.runtime import Runtime, create_runtime
from core.settings import Settings
from core.sync import SyncBusy, SyncFailed, SyncOptions, SyncProgress, run_sync
from tests.testpos import plugin as testpos_plugin
from tests.testpos.fake import FakePOS
from tests.testpos.fixtures import add_testpos

FAST = SyncOptions(retry_base_delay=0.01, retry_max_delay=0.05)


async def sales(rt: Runtime) -> int:
    async with rt.db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Sale))).scalar_one())


async def test_two_workers_never_run_one_connector_at_once(
    pos_rt: Runtime, fake_pos: FakePOS, settings: Settings
) -> None:
    fake_pos.generate(customers=5, sales=30)
    fake_pos.latency = 0.05
    cid = await add_testpos(pos_rt, fake_pos)
    # A second worker: its own runtime, engine and connection pool on the same database.
    other = create_runtime(settings, plugins=load_plugins(settings, extra=[testpos_plugin]))
    try:
        results = await asyncio.gather(
            run_sync(pos_rt, cid, options=FAST), run_sync(other, cid, options=FAST), return_exceptions=True
        )
    finally:
        await other.close()
    busy = [r for r in results if isinstance(r, SyncBusy)]
    done = [r for r in results if isinstance(r, SyncRun)]
    assert len(busy) == 1 and len(done) == 1, results
    assert done[0].status == "succeeded"
    assert "already syncing" in str(busy[0]) and busy[0].owner
    assert await sales(pos_rt) == 30
    async with pos_rt.db.session() as session:
        runs = (await session.exec(select(SyncRun))).all()
    assert len(runs) == 1  # the refused attempt left no run row behind


async def test_live_lease_of_another_worker_is_respected(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    cid = await add_testpos(pos_rt, fake_pos)
    async with pos_rt.db.engine.begin() as conn:
        await conn.execute(update(Connector).where(Connector.id == cid).values(
            lease_owner="worker-b:4242:abcd", lease_expires_at=utcnow() + timedelta(minutes=1)))
    with pytest.raises(SyncBusy, match="worker-b:4242:abcd"):
        await run_sync(pos_rt, cid, options=FAST)


async def test_expired_lease_is_taken_over_and_the_dead_run_marked(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=5)
    cid = await add_testpos(pos_rt, fake_pos)
    async with pos_rt.db.transaction() as session:
        dead = SyncRun(connector_id=cid, status="running", trigger="schedule")
        session.add(dead)
        await session.flush()
        dead_id = dead.id
        connector = await session.get(Connector, cid)
        assert connector is not None
        connector.lease_owner = "crashed-host:99:dead"
        connector.lease_expires_at = utcnow() - timedelta(seconds=1)
        session.add(connector)
    run = await run_sync(pos_rt, cid, options=FAST)
    assert run.status == "succeeded"
    async with pos_rt.db.session() as session:
        old = await session.get(SyncRun, dead_id)
        assert old is not None and old.status == "interrupted" and old.finished_at is not None
        connector = await session.get(Connector, cid)
        assert connector is not None and connector.lease_owner is None
    assert await sales(pos_rt) == 5


async def test_a_run_that_lost_its_lease_commits_nothing_more(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=35)
    cid = await add_testpos(pos_rt, fake_pos)

    async def steal(progress: SyncProgress) -> None:
        # Simulates a stall past expiry after which another worker took the connector over.
        if progress.stream == "sales":
            async with pos_rt.db.engine.begin() as conn:
                await conn.execute(update(Connector).where(Connector.id == cid).values(
                    lease_owner="thief:1:x", lease_expires_at=utcnow() + timedelta(minutes=5)))

    with pytest.raises(SyncFailed) as failed:
        await run_sync(pos_rt, cid, on_progress=steal, options=FAST)
    assert failed.value.run.status == "interrupted"
    assert "taken over" in (failed.value.run.message or "")
    assert await sales(pos_rt) == 10  # only the page committed before the takeover
    async with pos_rt.db.session() as session:
        connector = await session.get(Connector, cid)
        assert connector is not None and connector.lease_owner == "thief:1:x"  # not released by the loser


async def test_lease_is_renewed_while_a_slow_page_is_fetched(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=3)
    fake_pos.latency = 0.6
    cid = await add_testpos(pos_rt, fake_pos)
    opts = SyncOptions(lease_seconds=0.5, renew_seconds=0.1, retry_base_delay=0.01)
    run = await run_sync(pos_rt, cid, options=opts)
    # Each request outlasts the lease; background renewal kept it, so no page was fenced off.
    assert run.status == "succeeded"
    assert await sales(pos_rt) == 3
