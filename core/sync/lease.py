"""The per-connector sync lease: one run at a time per connector, across any number of workers.

The lease lives on the connector row (``lease_owner``, ``lease_expires_at``). Taking it is one atomic
``UPDATE ... WHERE lease is free or expired``, so two workers racing for it cannot both win. Every
page transaction starts by renewing the lease *for this owner only*; a run whose lease was taken
over (because it stalled past expiry) therefore fails that renewal and can never commit a page
after another worker has started. Starting each page transaction with this write also makes SQLite
take its write lock up front instead of failing a read-then-write upgrade under concurrency.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from datetime import datetime, timedelta

from sqlalchemy import Update, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Database
from core.models import Connector, SyncRun, utcnow
from core.sync.exceptions import LeaseLost

connector_t = Connector.__table__  # type: ignore[attr-defined]
run_t = SyncRun.__table__  # type: ignore[attr-defined]


def new_owner() -> str:
    """Names the holder for people reading the panel: host, process and a token unique to the run."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def acquire(conn: AsyncConnection, connector_id: int, owner: str, seconds: float) -> bool:
    now = utcnow()
    result = await conn.execute(
        update(connector_t)
        .where(
            connector_t.c.id == connector_id,
            or_(connector_t.c.lease_owner.is_(None), connector_t.c.lease_expires_at.is_(None),
                connector_t.c.lease_expires_at < now),
        )
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds))
    )
    return result.rowcount == 1


async def holder(conn: AsyncConnection, connector_id: int) -> tuple[str | None, datetime | None]:
    row = (
        await conn.execute(
            select(connector_t.c.lease_owner, connector_t.c.lease_expires_at).where(connector_t.c.id == connector_id)
        )
    ).first()
    return (row[0], row[1]) if row else (None, None)


def renewal(connector_id: int, owner: str, seconds: float) -> Update:
    """The statement that extends this owner's lease (it updates no row once the lease is not ours)."""
    return (
        update(connector_t)
        .where(connector_t.c.id == connector_id, connector_t.c.lease_owner == owner)
        .values(lease_expires_at=utcnow() + timedelta(seconds=seconds))
    )


def lost(connector_id: int) -> LeaseLost:
    return LeaseLost(f"the sync lease of connector {connector_id} was taken over by another worker")


async def renew(conn: AsyncConnection, connector_id: int, owner: str, seconds: float) -> None:
    """Extend this owner's lease; raise :class:`LeaseLost` if it is no longer ours."""
    result = await conn.execute(renewal(connector_id, owner, seconds))
    if result.rowcount != 1:
        raise lost(connector_id)


async def lock_connector(conn: AsyncConnection, connector_id: int) -> None:
    """Serialise with page transactions without touching the lease (used by replays).

    A no-op write takes the connector's row lock (PostgreSQL) or the write lock (SQLite) first, the
    same lock every page transaction takes first, so a replay never interleaves with a page.
    """
    await conn.execute(
        update(connector_t).where(connector_t.c.id == connector_id).values(lease_owner=connector_t.c.lease_owner)
    )


async def release(conn: AsyncConnection, connector_id: int, owner: str) -> None:
    await conn.execute(
        update(connector_t)
        .where(connector_t.c.id == connector_id, connector_t.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


async def mark_orphaned_runs(conn: AsyncConnection, connector_id: int, except_run: int | None = None) -> None:
    """Runs still 'running' when we hold the lease belong to a process that died: say so."""
    cond = and_(run_t.c.connector_id == connector_id, run_t.c.status == "running")
    if except_run is not None:
        cond = and_(cond, run_t.c.id != except_run)
    await conn.execute(
        update(run_t)
        .where(cond)
        .values(status="interrupted", finished_at=utcnow(),
                message="the worker running this sync stopped before finishing (its lease expired)")
    )


class LeaseKeeper:
    """Renews the lease in the background while a slow page is being fetched.

    Page transactions renew it too; ``lock`` keeps the two from writing the connector row at the same
    time from this process (on SQLite that would make the page transaction fail to get its write lock).
    """

    def __init__(self, db: Database, connector_id: int, owner: str, seconds: float, every: float) -> None:
        self.db = db
        self.connector_id = connector_id
        self.owner = owner
        self.seconds = seconds
        self.every = every
        self.lock = asyncio.Lock()
        self.lost = False
        self.renewed = 0.0  # monotonic time of the last renewal, by this keeper or a page commit
        self.run_id: int | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, run_id: int) -> None:
        self.run_id = run_id
        self._task = asyncio.create_task(self._loop(), name=f"sync-lease-{self.connector_id}")

    def touch(self) -> None:
        """A page commit renewed the lease: the next background renewal can wait."""
        self.renewed = time.monotonic()

    async def _loop(self) -> None:
        self.touch()
        while True:
            # While pages commit, they renew the lease: renewing it here as well would only make the
            # next overlapped page find another writer of the connector row and run again alone.
            await asyncio.sleep(max(0.0, self.renewed + self.every - time.monotonic()))
            if time.monotonic() - self.renewed < self.every:
                continue
            try:
                async with self.lock, self.db.engine.begin() as conn:
                    await renew(conn, self.connector_id, self.owner, self.seconds)
                    # The panel reads a stale heartbeat as a stuck run: keep it fresh during slow fetches.
                    await conn.execute(update(run_t).where(run_t.c.id == self.run_id).values(heartbeat_at=utcnow()))
                self.touch()
            except LeaseLost:
                self.lost = True
                return
            except Exception:  # a failed renewal is retried; the page commit fences anyway
                continue

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
