"""Writes to the error queue (``sync_error``) from the ingest path.

The same bad record read again (a look-back window, a resumed run, a replay that fails again) updates
its open row instead of piling up copies. A record that later ingests fine — because the source fixed
it, or the plugin was fixed and the error replayed — closes its open rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import SyncError, utcnow
from core.sync import refs as refs_mod

error_t = SyncError.__table__  # type: ignore[attr-defined]


@dataclass
class Failure:
    payload: Any
    external_id: str | None
    reason: str
    kind: str
    unresolved: dict[str, list[str]]


async def record_failures(
    conn: AsyncConnection, *, connector_id: int, stream: str, object_type: str, run_id: int | None,
    failures: list[Failure], connector_type: str,
) -> list[int]:
    """Open (or refresh) one error row per failed record; returns their ids in ``failures`` order."""
    if not failures:
        return []
    now = utcnow()
    open_rows = await _open_rows(conn, connector_id, stream, failures)
    ids: list[int] = []
    for failure in failures:
        context = {
            "kind": failure.kind,
            "object_type": object_type,
            "connector_type": connector_type,
            "run_id": run_id,
            "last_seen_at": now.isoformat(),
        }
        if failure.unresolved:
            context["unresolved"] = failure.unresolved
        match = _find(open_rows, failure)
        if match is not None:
            row_id, attempts = match
            await conn.execute(
                update(error_t).where(error_t.c.id == row_id).values(
                    payload=failure.payload, reason=failure.reason, context=context, attempts=attempts + 1,
                    run_id=run_id,
                )
            )
            ids.append(row_id)
            continue
        result = await conn.execute(
            insert(error_t).returning(error_t.c.id),
            [{
                "connector_id": connector_id, "stage": "sync", "stream": stream,
                "external_id": (failure.external_id or None) and failure.external_id[:255],
                "payload": failure.payload, "context": context, "reason": failure.reason, "state": "open",
                "attempts": 1, "run_id": run_id, "created_at": now, "replayed_at": None,
            }],
        )
        new_id = result.scalar_one()
        open_rows.append((new_id, failure.external_id, failure.payload, 1))
        ids.append(new_id)
    return ids


async def _open_rows(
    conn: AsyncConnection, connector_id: int, stream: str, failures: list[Failure]
) -> list[tuple[int, str | None, Any, int]]:
    ext_ids = sorted({f.external_id for f in failures if f.external_id})
    base = and_(error_t.c.connector_id == connector_id, error_t.c.stream == stream, error_t.c.state == "open")
    out: list[tuple[int, str | None, Any, int]] = []
    cols = (error_t.c.id, error_t.c.external_id, error_t.c.payload, error_t.c.attempts)
    for part in refs_mod.chunks(ext_ids):
        rows = await conn.execute(select(*cols).where(base, error_t.c.external_id.in_(part)))
        out += [tuple(r) for r in rows]  # type: ignore[misc]
    if any(not f.external_id for f in failures):
        # Records without a usable id are matched by their payload (rare: a payload too broken to name).
        rows = await conn.execute(select(*cols).where(base, error_t.c.external_id.is_(None)).limit(1000))
        out += [tuple(r) for r in rows]  # type: ignore[misc]
    return out


def _find(rows: list[tuple[int, str | None, Any, int]], failure: Failure) -> tuple[int, int] | None:
    for row_id, ext, payload, attempts in rows:
        if failure.external_id and ext == failure.external_id:
            return row_id, attempts
        if not failure.external_id and ext is None and payload == failure.payload:
            return row_id, attempts
    return None


async def close_resolved(conn: AsyncConnection, *, connector_id: int, stream: str, external_ids: list[str]) -> int:
    """Mark open errors of records that have now been ingested as resolved (state ``replayed``)."""
    closed = 0
    for part in refs_mod.chunks(sorted(set(external_ids))):
        result = await conn.execute(
            update(error_t)
            .where(error_t.c.connector_id == connector_id, error_t.c.stream == stream, error_t.c.state == "open",
                   error_t.c.external_id.in_(part))
            .values(state="replayed", replayed_at=utcnow())
        )
        closed += result.rowcount or 0
    return closed


async def close_ids(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(
            update(error_t).where(error_t.c.id.in_(ids), error_t.c.state == "open")
            .values(state="replayed", replayed_at=utcnow())
        )
