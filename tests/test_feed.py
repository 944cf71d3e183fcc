"""The change-feed API: consumers never skip a row, whatever order transactions commit in."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from core import feed
from core.db import Database
from core.models import ChangeFeed, utcnow


async def _append(db: Database, n: int, *, age: timedelta) -> list[int]:
    ids = []
    async with db.transaction() as s:
        for i in range(n):
            row = await feed.append(s, entity="client", entity_id=i + 1, op="update", origin="system")
            ids.append(row.id)
        await s.exec(  # type: ignore[call-overload]
            update(ChangeFeed).where(ChangeFeed.id.in_(ids)).values(created_at=utcnow() - age)  # type: ignore[union-attr]
        )
    return ids


async def test_read_stops_before_the_first_row_still_settling(db: Database) -> None:
    old = await _append(db, 2, age=timedelta(minutes=1))
    young = await _append(db, 1, age=timedelta(seconds=0))
    # A row above the young one, stamped early (a page's rows carry the page's start time).
    late = await _append(db, 1, age=timedelta(minutes=1))
    async with db.session() as s:
        rows = await feed.read(s, 0)
        assert [r.id for r in rows] == old  # not `late`, or the consumer would move past `young`
        assert [r.id for r in await feed.read(s, 0, settle=timedelta(0))] == old + young + late


async def test_consumer_position_only_moves_forward(db: Database) -> None:
    ids = await _append(db, 3, age=timedelta(minutes=1))
    async with db.transaction() as s:
        consumer = await feed.claim(s, "test")
        assert consumer.position == 0
        await feed.advance(s, "test", ids[2])
    async with db.transaction() as s:
        await feed.advance(s, "test", ids[0])  # an older position is ignored
    async with db.transaction() as s:
        assert (await feed.claim(s, "test")).position == ids[2]
        assert await feed.lag(s, "test") == 0
        assert await feed.head(s) == ids[2]
