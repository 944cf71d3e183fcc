"""Jobs: Redis only schedules. Losing Redis' state mid-way loses no work, because the periodic tick
re-derives what is due from the database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from core.jobs import create_worker, due_connectors, enqueue_sync, redis_pool, tick
from core.models import Connector, ExternalRef, Sale, SyncRun
from core.runtime import Runtime
from tests.testpos.fake import FakePOS
from tests.testpos.fixtures import add_testpos


async def _wait_for(predicate: Any, seconds: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _refs(rt: Runtime, connector_id: int, object_type: str) -> set[str]:
    async with rt.db.session() as s:
        rows = await s.exec(
            select(ExternalRef.external_id).where(
                ExternalRef.connector_id == connector_id, ExternalRef.object_type == object_type
            )
        )
        return set(rows.all())


async def _lose_redis_state(rt: Runtime) -> None:
    pool = await redis_pool(rt)
    if rt.settings.redis_url:
        # The shared server's other databases belong to others; ours is the whole of our state.
        await pool.flushdb()
    else:
        await pool.flushall()
    assert await pool.zcard(rt.settings.queue_name) == 0


async def test_enqueue_is_deduplicated_by_job_id(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    cid = await add_testpos(pos_rt, fake_pos)
    first = await enqueue_sync(pos_rt, cid)
    assert first is not None and first.endswith(f":sync:{cid}")
    assert await enqueue_sync(pos_rt, cid) is None  # already queued
    assert (await tick({"clasp": pos_rt}))["queued_syncs"] == []
    await _lose_redis_state(pos_rt)
    # Gone from Redis, but the database still says the connector is due: the tick queues it again.
    assert (await tick({"clasp": pos_rt}))["queued_syncs"] == [cid]


async def test_due_connectors_respects_enabled_schedule_and_lease(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    from datetime import timedelta

    from core.models import utcnow

    a = await add_testpos(pos_rt, fake_pos, name="A")
    b = await add_testpos(pos_rt, fake_pos, name="B")
    c = await add_testpos(pos_rt, fake_pos, name="C")
    d = await add_testpos(pos_rt, fake_pos, name="D")
    async with pos_rt.db.transaction() as s:
        (await s.get(Connector, b)).enabled = False  # type: ignore[union-attr]
        (await s.get(Connector, c)).next_sync_at = utcnow() + timedelta(minutes=5)  # type: ignore[union-attr]
        held = await s.get(Connector, d)
        held.lease_owner, held.lease_expires_at = "other-worker", utcnow() + timedelta(minutes=1)  # type: ignore[union-attr]
    assert await due_connectors(pos_rt) == [a]


async def test_redis_flushed_mid_sync_loses_nothing(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=40, sales=80)
    fake_pos.latency = 0.03  # slow pages, so the flush lands while a run is in progress
    a = await add_testpos(pos_rt, fake_pos, name="A")
    b = await add_testpos(pos_rt, fake_pos, name="B")
    pos_rt.settings = pos_rt.settings.model_copy(update={"tick_seconds": 1})

    # One job at a time: while A syncs, B's job sits in the Redis queue — and is lost with it.
    worker = await create_worker(pos_rt, max_jobs=1, poll_delay=0.05)
    task = asyncio.create_task(worker.async_run())
    try:

        async def a_is_midway() -> bool:
            async with pos_rt.db.session() as s:
                run = (await s.exec(select(SyncRun).where(SyncRun.connector_id == a))).first()
                return run is not None and run.status == "running" and run.pages >= 2

        await _wait_for(a_is_midway, what="A's sync to be under way")
        pool = await redis_pool(pos_rt)
        assert await pool.zcard(pos_rt.settings.queue_name) >= 1  # B is waiting in Redis
        await _lose_redis_state(pos_rt)

        async def both_synced() -> bool:
            async with pos_rt.db.session() as s:
                stmt = select(func.count(func.distinct(SyncRun.connector_id))).where(
                    col(SyncRun.status) == "succeeded"
                )
                return (await s.exec(stmt)).one() == 2

        await _wait_for(both_synced, what="both connectors to finish syncing")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # As the worker service does: close() cancels a job still running (a cron tick), and gathering
        # it re-raises that cancellation.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()

    for cid in (a, b):
        assert await _refs(pos_rt, cid, "sale") == set(fake_pos.tables["sales"])
        assert await _refs(pos_rt, cid, "client") == set(fake_pos.tables["customers"])
        assert await _refs(pos_rt, cid, "location") == set(fake_pos.tables["shops"])
    async with pos_rt.db.session() as s:
        # Each connector's copy of each sale landed exactly once.
        assert (await s.exec(select(func.count()).select_from(Sale))).one() == 2 * len(fake_pos.tables["sales"])
        runs = (await s.exec(select(SyncRun).where(SyncRun.connector_id == a))).all()
    assert [r.status for r in runs] == ["succeeded"]
