"""Computing credit rows: for a batch of sales, gather the facts and touches, ask every registered
model, and replace the sales' credit rows in the caller's transaction.

Set-based: one query per kind of fact for the whole batch (sales, their lines, refunds of those
lines, touches and replies of the batch's clients), then plain Python per sale. A sale earns credit
only when it is completed, has a client, and its net revenue is positive — a fully refunded sale
credits nobody, and a return rung up on its own is not a sale to reward.

Revenue is pre-tax: each line's total is scaled by its own sale's subtotal over the sum of that
sale's lines (Lightspeed's line totals include tax, other POSes' may not), and refunds — wherever
and whenever rung up, in completed sales — are taken off the sale whose line they refund.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, any_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from core.models import Attribution, Location, Outreach, Sale, SaleLine, SyncError, Task, utcnow
from core.plugin import AttributionModel, Credit, SaleFacts, Touch
from core.timezones import zone

log = logging.getLogger(__name__)

STAGE = "attribution"
BATCH = 1000
TEXT_CHANNELS = ("sms", "mms", "email")
TASK_KINDS = ("call", "text")

attribution_t = Attribution.__table__  # type: ignore[attr-defined]
error_t = SyncError.__table__  # type: ignore[attr-defined]


def _any(conn: AsyncConnection, column: Any, ids: Sequence[int]) -> Any:
    """``column IN ids``; on PostgreSQL as ``= ANY(array)``, one parameter instead of a thousand
    (SQLAlchemy's expansion of a long IN list costs more Python than the query)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger)))
    return column.in_(ids)


@dataclass
class RecomputeResult:
    sales: int = 0  # sales looked at
    credited: int = 0  # sales that earned credit from at least one model
    rows: int = 0  # credit rows written
    errors: list[str] = field(default_factory=list)

    def add(self, other: RecomputeResult) -> None:
        self.sales += other.sales
        self.credited += other.credited
        self.rows += other.rows
        self.errors += other.errors


@dataclass
class _Sale:
    id: int
    client_id: int | None
    location_id: int
    occurred_at: datetime
    status: str
    currency: str


async def _pre_tax_ratios(conn: AsyncConnection, sale_ids: Iterable[int]) -> dict[int, float]:
    """Per sale, what one unit of line total is worth before tax: the sale's subtotal over the sum of
    its lines. Lightspeed's line totals include tax (ratio subtotal/total); a POS whose lines are
    pre-tax gets 1. A sale without a subtotal uses total less tax; lines summing to 0 count as is."""
    ids = sorted(set(sale_ids))
    if not ids:
        return {}
    stmt = (
        select(Sale.id, Sale.subtotal_minor, Sale.tax_minor, Sale.total_minor, func.sum(SaleLine.total_minor))
        .join(SaleLine, SaleLine.sale_id == Sale.id)  # type: ignore[arg-type]
        .where(_any(conn, Sale.id, ids))
        .group_by(Sale.id, Sale.subtotal_minor, Sale.tax_minor, Sale.total_minor)
    )
    out: dict[int, float] = {}
    for sid, subtotal, tax, total, lines in (await conn.execute(stmt)).all():
        base = int(subtotal) if subtotal else int(total) - int(tax)
        out[int(sid)] = base / int(lines) if lines else 1.0
    return out


async def net_revenue(conn: AsyncConnection, sale_ids: Sequence[int]) -> dict[int, int]:
    """Each sale's pre-tax revenue: its own lines (refund lines excluded) less refunds of them."""
    if not sale_ids:
        return {}
    own = select(SaleLine.sale_id, SaleLine.total_minor).where(
        _any(conn, SaleLine.sale_id, sale_ids), SaleLine.parent_line_id.is_(None)  # type: ignore[union-attr]
    )
    own_rows = [(int(s), int(t)) for s, t in (await conn.execute(own)).all()]
    parent = aliased(SaleLine)
    refund_sale = aliased(Sale)
    refunds = (
        select(parent.sale_id, SaleLine.sale_id, SaleLine.total_minor)
        .join(parent, parent.id == SaleLine.parent_line_id)  # type: ignore[arg-type]
        .join(refund_sale, refund_sale.id == SaleLine.sale_id)  # type: ignore[arg-type]
        .where(_any(conn, parent.sale_id, sale_ids), refund_sale.status == "completed")
    )
    refund_rows = [(int(p), int(r), int(t)) for p, r, t in (await conn.execute(refunds)).all()]
    ratio = await _pre_tax_ratios(conn, [s for s, _ in own_rows] + [r for _, r, _ in refund_rows])
    amounts: dict[int, float] = defaultdict(float)
    for sid, total in own_rows:
        amounts[sid] += total * ratio.get(sid, 1.0)
    for sid, refund_sid, total in refund_rows:
        amounts[sid] += total * ratio.get(refund_sid, 1.0)
    return {sid: round(v) for sid, v in amounts.items()}


@dataclass
class _Touches:
    by_client: dict[int, list[Touch]]  # oldest first
    replies: dict[int, list[datetime]]  # oldest first


async def _touches(conn: AsyncConnection, client_ids: Sequence[int], lo: datetime, hi: datetime) -> _Touches:
    by_client: dict[int, list[Touch]] = defaultdict(list)
    replies: dict[int, list[datetime]] = defaultdict(list)
    if not client_ids:
        return _Touches(by_client, replies)
    texts = select(
        Outreach.id, Outreach.client_id, Outreach.delivered_at, Outreach.channel, Outreach.associate_id,
        Outreach.location_id, Outreach.automation_id,
    ).where(
        _any(conn, Outreach.client_id, client_ids),
        Outreach.direction == "outbound",
        Outreach.state == "delivered",
        Outreach.channel.in_(TEXT_CHANNELS),  # type: ignore[attr-defined]
        Outreach.delivered_at >= lo,  # type: ignore[operator]
        Outreach.delivered_at <= hi,  # type: ignore[operator]
    )
    for oid, cid, at, channel, assoc, loc, automation in (await conn.execute(texts)).all():
        by_client[int(cid)].append(Touch("outreach", int(oid), at, channel, assoc, loc, automation is not None))
    tasks = select(
        Task.id, Task.client_id, Task.done_at, Task.kind, Task.associate_id, Task.location_id, Task.automation_id
    ).where(
        _any(conn, Task.client_id, client_ids),
        Task.state == "done",
        Task.kind.in_(TASK_KINDS),  # type: ignore[attr-defined]
        Task.done_at >= lo,  # type: ignore[operator]
        Task.done_at <= hi,  # type: ignore[operator]
        # A task completed by sending its text is touched by that text once it is delivered (a
        # failed text touched nobody); counting the task too would credit one touch twice.
        ~exists().where(Outreach.task_id == Task.id),
    )
    for tid, cid, at, kind, assoc, loc, _automation in (await conn.execute(tasks)).all():
        # A task, even one an automation created, is a person's call or text: never "automated".
        by_client[int(cid)].append(Touch("task", int(tid), at, kind, assoc, loc, False))
    # An inbound row's sent_at is when the provider received it.
    received = func.coalesce(Outreach.sent_at, Outreach.created_at)
    inbound = select(Outreach.client_id, received).where(
        _any(conn, Outreach.client_id, client_ids),
        Outreach.direction == "inbound",
        received > lo,
        received <= hi,
    )
    for cid, at in (await conn.execute(inbound)).all():
        replies[int(cid)].append(at)
    for touches in by_client.values():
        touches.sort(key=lambda t: (t.at, t.kind, t.id))
    for times in replies.values():
        times.sort()
    return _Touches(by_client, replies)


def touches_for(sale: _Sale, facts: _Touches, window: timedelta) -> list[Touch]:
    """The client's touches in [sale - window, sale], newest first, each with its reply (if any)."""
    assert sale.client_id is not None
    history = [t for t in facts.by_client.get(sale.client_id, ()) if t.at <= sale.occurred_at]
    if not history:
        return []
    replies = facts.replies.get(sale.client_id, [])
    start = sale.occurred_at - window
    out: list[Touch] = []
    for i, touch in enumerate(history):
        if touch.at < start:
            continue
        # A reply belongs to the latest touch before it, and only counts if it came before the sale.
        until = history[i + 1].at if i + 1 < len(history) else sale.occurred_at
        until = min(until, sale.occurred_at)
        replied = next((r for r in replies if touch.at < r <= until), None)
        out.append(Touch(touch.kind, touch.id, touch.at, touch.channel, touch.associate_id, touch.location_id,
                         touch.automated, replied))
    out.reverse()
    return out


def split(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` shared by ``weights`` in whole minor units that add up exactly (largest remainder)."""
    raw = [total * w for w in weights]
    shares = [math.floor(r) for r in raw]
    left = total - sum(shares)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - shares[i]), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


class ModelProblem(ValueError):
    """A model returned something that cannot be stored; the sale goes to the error queue."""


def checked(model: AttributionModel, sale: SaleFacts, touches: Sequence[Touch]) -> list[Credit]:
    credits = list(model.credit(sale, touches))
    if not credits:
        return []
    offered = {(t.kind, t.id) for t in touches}
    seen: set[tuple[str, int]] = set()
    for c in credits:
        if not isinstance(c, Credit):
            raise ModelProblem(f"returned {c!r}, not a Credit")
        key = (c.touch.kind, c.touch.id)
        if key not in offered:
            raise ModelProblem(f"credited {c.touch.kind} {c.touch.id}, which is not one of the sale's touches")
        if key in seen:
            raise ModelProblem(f"credited {c.touch.kind} {c.touch.id} twice")
        seen.add(key)
        if not (c.weight > 0 and math.isfinite(c.weight)):
            raise ModelProblem(f"gave {c.touch.kind} {c.touch.id} weight {c.weight!r}; weights must be positive")
    total = sum(c.weight for c in credits)
    if abs(total - 1.0) > 1e-6:
        raise ModelProblem(f"weights add up to {total:g}, not 1")
    return credits


async def _zones(conn: AsyncConnection, location_ids: Iterable[int]) -> dict[int, ZoneInfo]:
    ids = sorted(set(location_ids))
    rows = (await conn.execute(select(Location.id, Location.timezone).where(Location.id.in_(ids)))).all()  # type: ignore[union-attr]
    return {int(lid): zone(tz) for lid, tz in rows}


async def recompute_sales(
    conn: AsyncConnection,
    models: Mapping[str, AttributionModel],
    sale_ids: Iterable[int],
    *,
    window_days: int,
) -> RecomputeResult:
    """Replace the credit rows of ``sale_ids`` (every model) in the caller's transaction."""
    ids = sorted(set(int(i) for i in sale_ids))
    if len(ids) > BATCH:
        # Batches of whole clients: a client's touches are then read once, not once per batch that
        # holds one of their sales (sale ids are in arrival order, a client's sales spread out).
        client_of: dict[int, int] = {}
        for start in range(0, len(ids), 10 * BATCH):
            chunk = ids[start : start + 10 * BATCH]
            stmt = select(Sale.id, Sale.client_id).where(_any(conn, Sale.id, chunk))
            client_of.update({int(i): int(c or 0) for i, c in (await conn.execute(stmt)).all()})
        ids.sort(key=lambda i: (client_of.get(i, 0), i))
    result = RecomputeResult()
    for start in range(0, len(ids), BATCH):
        result.add(await _recompute_batch(conn, models, ids[start : start + BATCH], timedelta(days=window_days)))
    return result


async def _recompute_batch(
    conn: AsyncConnection, models: Mapping[str, AttributionModel], ids: list[int], window: timedelta
) -> RecomputeResult:
    result = RecomputeResult(sales=len(ids))
    stmt = select(Sale.id, Sale.client_id, Sale.location_id, Sale.occurred_at, Sale.status, Sale.currency).where(
        _any(conn, Sale.id, ids)
    )
    sales = [_Sale(int(r[0]), r[1], int(r[2]), r[3], r[4], r[5]) for r in (await conn.execute(stmt)).all()]
    candidates = [s for s in sales if s.status == "completed" and s.client_id is not None]
    revenue = await net_revenue(conn, [s.id for s in candidates])
    candidates = [s for s in candidates if revenue.get(s.id, 0) > 0]
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    if candidates:
        lo = min(s.occurred_at for s in candidates) - window
        hi = max(s.occurred_at for s in candidates)
        facts = await _touches(conn, sorted({s.client_id for s in candidates if s.client_id}), lo, hi)
        zones = await _zones(conn, (s.location_id for s in candidates))
        now = utcnow()
        for sale in candidates:
            touches = touches_for(sale, facts, window)
            if not touches:
                continue
            assert sale.client_id is not None
            sale_facts = SaleFacts(sale.id, sale.client_id, sale.location_id, sale.occurred_at,
                                   revenue[sale.id], sale.currency)
            sale_day: date = sale.occurred_at.astimezone(zones.get(sale.location_id) or zone(None)).date()
            credited = False
            for name, model in models.items():
                try:
                    credits = checked(model, sale_facts, touches)
                except Exception as exc:  # a plugin's bug must not stop the other sales
                    log.warning("attribution model %s failed on sale %s: %s", name, sale.id, exc)
                    failures.append({"sale_id": sale.id, "model": name, "reason": f"{type(exc).__name__}: {exc}"})
                    result.errors.append(f"sale {sale.id}, model {name}: {exc}")
                    continue
                shares = split(sale_facts.revenue_minor, [c.weight for c in credits])
                for c, share in zip(credits, shares, strict=True):
                    credited = True
                    rows.append({
                        "sale_id": sale.id, "model": name, "touch": f"{c.touch.kind}:{c.touch.id}",
                        "outreach_id": c.touch.id if c.touch.kind == "outreach" else None,
                        "task_id": c.touch.id if c.touch.kind == "task" else None,
                        "client_id": sale.client_id, "associate_id": c.touch.associate_id,
                        "outreach_location_id": c.touch.location_id, "sale_location_id": sale.location_id,
                        "touch_at": c.touch.at, "sale_at": sale.occurred_at, "sale_day": sale_day,
                        "weight": c.weight, "revenue_minor": share, "currency": sale.currency, "computed_at": now,
                    })
            result.credited += credited
    await conn.execute(delete(attribution_t).where(_any(conn, attribution_t.c.sale_id, ids)))
    if rows:
        await conn.execute(insert(attribution_t), rows)
    result.rows = len(rows)
    await _record_problems(conn, ids, models, failures)
    return result


async def _record_problems(
    conn: AsyncConnection, ids: list[int], models: Iterable[str], failures: list[dict[str, Any]]
) -> None:
    """One open error-queue row per failing (sale, model); when a recompute of the sale no longer
    fails for that model (it succeeded, or there is nothing left to credit), the row is replayed."""
    now = utcnow()
    failed = {(f["sale_id"], f["model"]): f for f in failures}
    stmt = select(error_t.c.id, error_t.c.external_id, error_t.c.stream).where(
        error_t.c.stage == STAGE, error_t.c.state == "open", error_t.c.external_id.in_([str(i) for i in ids])
    )
    open_rows = (await conn.execute(stmt)).all()
    known = set(models)
    fixed = [eid for eid, ext, name in open_rows if (int(ext), name) not in failed and name in known]
    if fixed:
        await conn.execute(update(error_t).where(error_t.c.id.in_(fixed)).values(state="replayed", replayed_at=now))
    still_open = {(int(ext), name): eid for eid, ext, name in open_rows}
    for key, f in failed.items():
        if key in still_open:
            await conn.execute(update(error_t).where(error_t.c.id == still_open[key])
                               .values(attempts=error_t.c.attempts + 1, reason=f["reason"]))
            continue
        await conn.execute(insert(error_t).values(
            stage=STAGE, stream=f["model"], external_id=str(f["sale_id"]),
            payload={"sale_id": f["sale_id"], "model": f["model"]},
            context={"sale_id": f["sale_id"], "model": f["model"]},
            reason=f"attribution model {f['model']!r} failed: {f['reason']}", state="open", attempts=1,
            created_at=now,
        ))
