"""The small types shared by the ingest path: a decoded item, its outcome, the page's context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from core.sync.feedrows import FeedBatch
from core.sync.refs import RefCache

CREATED, UPDATED, UNCHANGED, FAILED = "created", "updated", "unchanged", "failed"


@dataclass(slots=True)
class Item:
    index: int  # position of the payload in its page
    payload: Any
    record: Any  # the decoded core.plugin record
    hash: str

    @property
    def external_id(self) -> str:
        return self.record.external_id


@dataclass(slots=True)
class Outcome:
    status: str
    reason: str = ""
    # Why it failed: "decode", "invalid", "unresolved_reference" (retried after every run), "ingest".
    kind: str = ""
    unresolved: dict[str, list[str]] = field(default_factory=dict)
    # Stored, but something was dropped (e.g. an invalid email): queued so a person can fix the source.
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def failed(cls, reason: str, kind: str = "invalid", unresolved: dict[str, list[str]] | None = None) -> Outcome:
        return cls(FAILED, reason, kind, unresolved or {})


# The plain outcomes, shared: a page hands out thousands of them, and an Outcome with its own empty
# dict and list is three objects for the allocator and the garbage collector. Never mutate these.
OK: dict[str, Outcome] = {status: Outcome(status) for status in (CREATED, UPDATED, UNCHANGED)}


@dataclass
class UpsertContext:
    session: AsyncSession
    conn: AsyncConnection
    connector_id: int
    origin: str
    now: datetime
    feed: FeedBatch
    # An overlapped page (see core.sync.pipeline) reads while the previous page commits; ``gate`` is
    # awaited before its first write and takes the connector's lock, ``relock`` takes it again after a
    # savepoint that held it was rolled back.
    gate: Callable[[], Awaitable[Any]] | None = None
    relock: Callable[[], Awaitable[Any]] | None = None
    overlapping: bool = False
    # The run's cache of references that never move (see refs.RefCache); a fresh one per page otherwise.
    ref_cache: RefCache = field(default_factory=RefCache)
    _gate_passed: bool = False

    @classmethod
    async def open(cls, session: AsyncSession, connector_id: int, now: datetime,
                   gate: Callable[[], Awaitable[Any]] | None = None,
                   relock: Callable[[], Awaitable[Any]] | None = None,
                   ref_cache: RefCache | None = None) -> UpsertContext:
        origin = f"connector:{connector_id}"
        conn = await session.connection()
        feed = FeedBatch(origin, connector_id, as_json=conn.dialect.name == "postgresql")
        return cls(session, conn, connector_id, origin, now, feed, gate, relock, overlapping=gate is not None,
                   ref_cache=ref_cache or RefCache())

    async def before_writes(self) -> None:
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate()
            self._gate_passed = True

    async def after_rollback(self) -> None:
        """A savepoint was rolled back: if the gate was passed inside it, its lock went with it."""
        if self._gate_passed and self.relock is not None:
            self._gate_passed = False
            await self.relock()

    def alone(self) -> None:
        """Called before a write that the previous page might also make (creating a location): an
        overlapping page cannot see that page's rows, so it stops and is done again after it."""
        if self.overlapping:
            raise MustWait()


class MustWait(Exception):
    """Not the page's fault: the engine runs it again once the previous page has committed (the page
    needs that page's rows, or the previous page failed, or another writer came in between)."""


def is_stale(record_updated: datetime | None, stored_updated: datetime | None) -> bool:
    """An older version of a record (a late replay, an out-of-order page) must not overwrite a newer one."""
    return record_updated is not None and stored_updated is not None and record_updated < stored_updated
