"""Re-running queued records through the ingest path: manual replays and the end-of-run retry."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import SyncError, utcnow
from core.plugin import ConnectorType, Stream
from core.runtime import Runtime
from core.sync.ingest import ingest_page
from core.sync.queue import close_ids

error_t = SyncError.__table__  # type: ignore[attr-defined]
Fence = Callable[[AsyncConnection], Awaitable[None]]
BATCH = 500


@dataclass
class QueuedRecord:
    id: int
    stream: str | None
    external_id: str | None
    payload: Any


@dataclass
class Replayed:
    error_id: int
    ok: bool
    message: str


async def replay_records(
    rt: Runtime, connector_id: int, ctype: ConnectorType, streams: list[Stream], records: list[QueuedRecord], *,
    run_id: int | None, fence: Fence,
) -> list[Replayed]:
    """Ingest queued payloads again, stream by stream in the connector type's order, in batches."""
    by_name = {s.name: s for s in streams}
    order = {s.name: i for i, s in enumerate(streams)}
    groups: dict[str, list[QueuedRecord]] = defaultdict(list)
    out: list[Replayed] = []
    for rec in records:
        if rec.stream in by_name:
            groups[rec.stream].append(rec)  # type: ignore[index]
        else:
            out.append(Replayed(rec.id, False, f"connector type {ctype.name} has no stream {rec.stream!r} any more"))
    for name in sorted(groups, key=order.__getitem__):
        stream = by_name[name]
        queued = groups[name]
        for start in range(0, len(queued), BATCH):
            batch = queued[start : start + BATCH]
            async with rt.db.transaction() as session:
                conn = await session.connection()
                await fence(conn)
                result = await ingest_page(
                    session, connector_id=connector_id, connector_type=ctype.name, stream=stream,
                    payloads=[r.payload for r in batch], run_id=run_id, close_errors=True,
                )
                ok_ids, superseded = [], []
                for rec, outcome, new_error in zip(batch, result.outcomes, result.error_ids, strict=True):
                    if outcome.status != "failed" and not outcome.warnings:
                        ok_ids.append(rec.id)
                        out.append(Replayed(rec.id, True, f"ingested ({outcome.status})"))
                        continue
                    if new_error is not None and new_error != rec.id:
                        # It now fails under another id (it could not be named before): one open row is enough.
                        superseded.append((rec.id, new_error))
                    out.append(Replayed(rec.id, False, outcome.reason or "; ".join(outcome.warnings)))
                await close_ids(conn, ok_ids)
                for old, new in superseded:
                    await conn.execute(
                        update(error_t).where(error_t.c.id == old, error_t.c.state == "open")
                        .values(state="dismissed", replayed_at=utcnow(),
                                reason=error_t.c.reason + f" [superseded by error {new}]")
                    )
    return out


async def queued(conn: AsyncConnection, *, connector_id: int | None = None, ids: list[int] | None = None,
                 limit: int = 5000) -> list[tuple[QueuedRecord, int, dict[str, Any]]]:
    """Open queued records (with their connector id and context), oldest first."""
    stmt = select(error_t.c.id, error_t.c.stream, error_t.c.external_id, error_t.c.payload, error_t.c.connector_id,
                  error_t.c.context).where(error_t.c.state == "open", error_t.c.stage == "sync")
    if connector_id is not None:
        stmt = stmt.where(error_t.c.connector_id == connector_id)
    if ids is not None:
        stmt = stmt.where(error_t.c.id.in_(ids))
    rows = await conn.execute(stmt.order_by(error_t.c.id).limit(limit))
    return [(QueuedRecord(r[0], r[1], r[2], r[3]), r[4], r[5] or {}) for r in rows]


async def retry_unresolved(
    rt: Runtime, connector_id: int, ctype: ConnectorType, streams: list[Stream], *, run_id: int,
    fence: Fence, limit: int,
) -> int:
    """At the end of a run, retry records that failed only because a reference was not synced yet."""
    async with rt.db.engine.connect() as conn:
        rows = await queued(conn, connector_id=connector_id, limit=limit)
    records = [rec for rec, _, context in rows if context.get("kind") == "unresolved_reference"]
    if not records:
        return 0
    results = await replay_records(rt, connector_id, ctype, streams, records, run_id=run_id, fence=fence)
    return sum(1 for r in results if r.ok)
