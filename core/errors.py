"""The error queue: records a sync could not ingest, listed for people and replayed after a fix.

A replay takes the stored raw payload through the same decode → normalise → identity → upsert path
as a sync (``core.sync.ingest``), using the connector's *current* settings and plugin code — so fixing
the plugin or a setting and replaying is the whole repair. Upserts are keyed on external references,
so a replay never creates a duplicate, however often it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.connectors import context_for
from core.models import Connector, SyncError, utcnow
from core.runtime import Runtime
from core.sync import lease
from core.sync.replay import QueuedRecord, queued, replay_records

STATES = ("open", "replayed", "dismissed")


@dataclass
class ReplayResult:
    error_id: int
    ok: bool
    message: str


async def list_errors(
    session: AsyncSession, *, state: str | None = "open", connector_id: int | None = None, limit: int = 100
) -> list[SyncError]:
    """Newest first. ``state=None`` lists every state."""
    stmt = select(SyncError)
    if state is not None:
        if state not in STATES:
            raise ValueError(f"unknown error state {state!r} (one of {', '.join(STATES)})")
        stmt = stmt.where(SyncError.state == state)
    if connector_id is not None:
        stmt = stmt.where(SyncError.connector_id == connector_id)
    stmt = stmt.order_by(col(SyncError.created_at).desc(), col(SyncError.id).desc()).limit(limit)
    return list((await session.exec(stmt)).all())


async def count_errors(session: AsyncSession, *, state: str = "open", connector_id: int | None = None) -> int:
    from sqlalchemy import func

    stmt = select(func.count()).select_from(SyncError).where(SyncError.state == state)
    if connector_id is not None:
        stmt = stmt.where(SyncError.connector_id == connector_id)
    return int((await session.exec(stmt)).one())  # type: ignore[call-overload]


# Stages whose errors are replayed by re-running the record (an automation's: re-evaluating its
# clients after the template is fixed); outbox errors are fixed by requeueing the message.
REPLAYABLE_STAGES = ("sync", "writeback", "crm_push", "automation", "attribution")


async def replay_error(rt: Runtime, error_id: int) -> ReplayResult:
    async with rt.db.session() as session:
        error = await session.get(SyncError, error_id)
    if error is None:
        return ReplayResult(error_id, False, f"no error {error_id}")
    if error.state != "open":
        return ReplayResult(error_id, error.state == "replayed", f"already {error.state}")
    # Outbound stages replay through their own path (the record is rebuilt from the store).
    if error.stage == "writeback":
        from core.writeback import replay_writeback

        return await replay_writeback(rt, error_id)
    if error.stage == "automation":
        from core.automations.review import replay_error as replay_automation

        ok, message = await replay_automation(rt, error_id)
        return ReplayResult(error_id, ok, message)
    if error.stage == "attribution":
        from core.attribution.jobs import replay_error as replay_attribution

        ok, message = await replay_attribution(rt, error_id)
        return ReplayResult(error_id, ok, message)
    if error.stage == "crm_push":
        from core.crm import replay_push_error

        pushed = await replay_push_error(rt, error_id)
        return ReplayResult(pushed.error_id, pushed.ok, pushed.message)
    results = await _replay(rt, error.connector_id, [error_id])
    return results[0] if results else ReplayResult(error_id, False, "not replayable (no connector or stage)")


async def replay_all(
    rt: Runtime, *, connector_id: int | None = None, stage: str | None = None
) -> list[ReplayResult]:
    """Replay every open error (of one connector and/or one stage) through its stage's own path."""
    out: list[ReplayResult] = []
    if stage in (None, "sync"):
        async with rt.db.engine.connect() as conn:
            rows = await queued(conn, connector_id=connector_id, limit=100_000)
        by_connector: dict[int | None, list[int]] = {}
        for rec, cid, _ in rows:
            by_connector.setdefault(cid, []).append(rec.id)
        for cid, ids in by_connector.items():
            out += await _replay(rt, cid, ids)
    if stage in (None, "writeback"):
        from core.writeback import replay_all_writeback

        out += await replay_all_writeback(rt, connector_id=connector_id)
    if stage in (None, "crm_push"):
        from core.crm import replay_all_push

        pushed = await replay_all_push(rt, connector_id=connector_id)
        out += [ReplayResult(r.error_id, r.ok, r.message) for r in pushed]
    if stage in (None, "attribution") and connector_id is None:
        from core.attribution.jobs import replay_error as replay_attribution

        async with rt.db.session() as session:
            stmt = select(SyncError.id).where(SyncError.stage == "attribution", SyncError.state == "open")
            ids = list((await session.exec(stmt)).all())
        for eid in ids:
            ok, message = await replay_attribution(rt, int(eid))  # type: ignore[arg-type]
            out.append(ReplayResult(int(eid), ok, message))  # type: ignore[arg-type]
    return out


async def dismiss_error(session: AsyncSession, error_id: int) -> bool:
    """Close an error without replaying it (the record is not wanted); returns False if not open."""
    error = await session.get(SyncError, error_id)
    if error is None or error.state != "open":
        return False
    error.state = "dismissed"
    error.replayed_at = utcnow()
    session.add(error)
    await session.flush()
    return True


async def _replay(rt: Runtime, connector_id: int | None, ids: list[int]) -> list[ReplayResult]:
    if connector_id is None:
        return [ReplayResult(i, False, "this error belongs to no connector and cannot be replayed") for i in ids]
    async with rt.db.session() as session:
        connector = await session.get(Connector, connector_id)
    if connector is None:
        return [ReplayResult(i, False, f"connector {connector_id} no longer exists") for i in ids]
    try:
        ctype = rt.registry.connector_type(connector.type)
        ctx = context_for(rt, connector)
        streams = ctype.streams(ctx)
    except Exception as exc:  # plugin missing or settings invalid: say so per error
        return [ReplayResult(i, False, f"cannot load connector {connector.name!r}: {exc}") for i in ids]
    results: list[ReplayResult] = []
    for start in range(0, len(ids), 1000):
        async with rt.db.engine.connect() as conn:
            rows = await queued(conn, ids=ids[start : start + 1000], limit=1000)
        records: list[QueuedRecord] = [rec for rec, _, _ in rows]

        async def fence(conn, _cid: int = connector_id) -> None:  # type: ignore[no-untyped-def]
            await lease.lock_connector(conn, _cid)

        done = await replay_records(rt, connector_id, ctype, streams, records, run_id=None, fence=fence)
        results += [ReplayResult(r.error_id, r.ok, r.message) for r in done]
    return results
