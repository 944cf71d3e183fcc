"""Keeping credit current from the change feed (consumer ``attribution``).

What a feed row asks to recompute:

- ``sale``: that sale, and the sales whose lines it refunds (a refund lowers their revenue);
- ``client`` merge or unmerge: every sale of the clients involved (touches and sales move between
  profiles);
- ``outreach`` / ``task`` (a text delivered, a reply received, a task done — see
  :func:`core.attribution.touches.touch_changed`): the client's sales from the touch's time to a
  window later, which is every sale the touch could be credited for, or change the reply of.

Far behind (a first backfill), one full pass is cheaper than reading row by row: every sale of a
client who was ever touched, and every sale holding credit now. A new window in the settings asks
for the same full pass. Both jobs hold the consumer's row lock, so two workers never write the same
sale's credit at once, and both are safe to run twice: a recompute replaces rows, it never adds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, union
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased
from sqlmodel.ext.asyncio.session import AsyncSession

from core import feed
from core.attribution.engine import RecomputeResult, recompute_sales
from core.attribution.settings import AttributionSettings, load_attribution_settings, save_attribution_settings
from core.models import Attribution, ChangeFeed, Outreach, Sale, SaleLine, Task, utcnow
from core.runtime import Runtime

log = logging.getLogger(__name__)

CONSUMER = "attribution"
ENTITIES = ["sale", "client", "outreach", "task"]
BATCH = 5000
FULL_PASS_LAG = 50_000


async def _settled_head(session: AsyncSession, settle: timedelta) -> int:
    """Where a full pass may move the checkpoint: before the first row still settling (a lower id
    may yet commit above it, see :mod:`core.feed`), so those rows are read again incrementally."""
    cutoff = utcnow() - settle
    stmt = select(func.min(ChangeFeed.id)).where(ChangeFeed.created_at > cutoff)  # type: ignore[arg-type,operator]
    first = (await (await session.connection()).execute(stmt)).scalar()
    return int(first) - 1 if first is not None else await feed.head(session)


async def _sales_to_recompute(conn: AsyncConnection, rows: list[Any], window: timedelta) -> set[int]:
    sale_ids: set[int] = set()
    clients: set[int] = set()
    touched: list[tuple[int, datetime]] = []
    for row in rows:
        changes = row.changes or {}
        if row.entity == "sale":
            sale_ids.add(int(row.entity_id))
        elif row.entity == "client" and row.op in ("merge", "unmerge"):
            clients.add(int(row.entity_id))
            for key in ("absorbed_id", "merged_into_id", "restored_id"):
                if changes.get(key):
                    clients.add(int(changes[key]))
        elif row.entity in ("outreach", "task") and changes.get("client_id") and changes.get("at"):
            touched.append((int(changes["client_id"]), datetime.fromisoformat(changes["at"])))
    if sale_ids:
        # Sales whose lines these sales refund.
        parent = aliased(SaleLine)
        stmt = (
            select(parent.sale_id)
            .join(SaleLine, SaleLine.parent_line_id == parent.id)  # type: ignore[arg-type]
            .where(SaleLine.sale_id.in_(sorted(sale_ids)))  # type: ignore[attr-defined]
            .distinct()
        )
        sale_ids.update(int(s) for s in (await conn.execute(stmt)).scalars().all())
    if clients:
        stmt = select(Sale.id).where(Sale.client_id.in_(sorted(clients)))  # type: ignore[union-attr]
        sale_ids.update(int(s) for s in (await conn.execute(stmt)).scalars().all())
    if touched:
        # One query for every touched client (a bulk send delivers thousands at once), narrowed per
        # client here: a touch can change the credit of its client's sales from it to a window later.
        spans: dict[int, tuple[datetime, datetime]] = {}
        for cid, at in touched:
            lo, hi = spans.get(cid, (at, at))
            spans[cid] = (min(lo, at), max(hi, at))
        stmt = select(Sale.id, Sale.client_id, Sale.occurred_at).where(
            Sale.client_id.in_(sorted(spans)),  # type: ignore[union-attr]
            Sale.occurred_at >= min(lo for lo, _ in spans.values()),  # type: ignore[operator]
            Sale.occurred_at <= max(hi for _, hi in spans.values()) + window,  # type: ignore[operator]
        )
        for sid, cid, occurred in (await conn.execute(stmt)).all():
            lo, hi = spans[int(cid)]
            if lo <= occurred <= hi + window:
                sale_ids.add(int(sid))
    return sale_ids


async def _all_candidates(conn: AsyncConnection) -> list[int]:
    """Every sale that could hold credit: sales of clients ever touched, and sales holding credit."""
    touched = union(
        select(Outreach.client_id).where(Outreach.direction == "outbound", Outreach.state == "delivered",
                                         Outreach.client_id.is_not(None)),  # type: ignore[union-attr]
        select(Task.client_id).where(Task.state == "done", Task.client_id.is_not(None)),  # type: ignore[union-attr]
    ).subquery()
    stmt = union(
        select(Sale.id).where(Sale.client_id.in_(select(touched.c.client_id))),  # type: ignore[union-attr]
        select(Attribution.sale_id),
    )
    return sorted(int(s) for s in (await conn.execute(stmt)).scalars().all())


async def recompute_all(rt: Runtime) -> RecomputeResult:
    """Recompute every sale that could hold credit (after a settings change, or from the CLI)."""
    async with rt.db.transaction() as session:
        await feed.claim(session, CONSUMER)
        settings = await load_attribution_settings(session)
        head = await _settled_head(session, feed.SETTLE)
        result = await _full_pass(rt, session, settings)
        await feed.advance(session, CONSUMER, head)
    return result


async def _full_pass(rt: Runtime, session: AsyncSession, settings: AttributionSettings) -> RecomputeResult:
    conn = await session.connection()
    ids = await _all_candidates(conn)
    result = await recompute_sales(conn, rt.registry.attribution_models, ids, window_days=settings.window_days)
    if settings.recompute_requested_at is not None:
        settings.recompute_requested_at = None
        await save_attribution_settings(session, settings)
    log.info("attribution: full pass over %d sales, %d credited", result.sales, result.credited)
    return result


async def consume_feed(rt: Runtime, *, settle: timedelta = feed.SETTLE) -> dict[str, Any]:
    """One pass over the change feed; returns counts of what it did. ``settle``: see
    :func:`core.feed.read` (zero reads up to the head, for a caller that knows no ingest is running)."""
    async with rt.db.transaction() as session:
        consumer = await feed.claim(session, CONSUMER)
        settings = await load_attribution_settings(session)
        head = await feed.head(session)
        if settings.recompute_requested_at is not None or head - consumer.position > FULL_PASS_LAG:
            settled = await _settled_head(session, settle)
            result = await _full_pass(rt, session, settings)
            await feed.advance(session, CONSUMER, settled)
            return {"full_pass": 1, "rows": 0, "sales": result.sales, "credited": result.credited,
                    "errors": len(result.errors)}
        rows = await feed.read(session, consumer.position, limit=BATCH, entities=ENTITIES, settle=settle)
        if not rows:
            return {"full_pass": 0, "rows": 0, "sales": 0, "credited": 0, "errors": 0}
        conn = await session.connection()
        ids = await _sales_to_recompute(conn, rows, timedelta(days=settings.window_days))
        result = await recompute_sales(conn, rt.registry.attribution_models, ids, window_days=settings.window_days)
        await feed.advance(session, CONSUMER, rows[-1].id)  # type: ignore[arg-type]
    return {"full_pass": 0, "rows": len(rows), "sales": result.sales, "credited": result.credited,
            "errors": len(result.errors)}


async def recompute(rt: Runtime, sale_ids: Iterable[int]) -> RecomputeResult:
    """Recompute named sales now (replaying an error, or a person asking)."""
    async with rt.db.transaction() as session:
        await feed.claim(session, CONSUMER)
        settings = await load_attribution_settings(session)
        return await recompute_sales(await session.connection(), rt.registry.attribution_models, sale_ids,
                                     window_days=settings.window_days)


async def replay_error(rt: Runtime, error_id: int) -> tuple[bool, str]:
    """Re-run a sale whose model failed (after the plugin was fixed); the row is marked replayed when
    every model now succeeds for it."""
    from core.models import SyncError

    async with rt.db.session() as session:
        error = await session.get(SyncError, error_id)
    if error is None or error.stage != "attribution":
        return False, f"no attribution error {error_id}"
    sale_id = (error.payload or {}).get("sale_id") if isinstance(error.payload, dict) else None
    if not sale_id:
        return False, "the error names no sale"
    result = await recompute(rt, [int(sale_id)])
    async with rt.db.session() as session:
        error = await session.get(SyncError, error_id)
    if error is not None and error.state == "replayed":
        return True, f"sale {sale_id} credited again ({result.rows} credit rows)"
    return False, "; ".join(result.errors) or "the model still fails"


async def attribution_feed(ctx: dict[str, Any]) -> dict[str, Any]:
    rt: Runtime = ctx["clasp"]
    return await consume_feed(rt)
