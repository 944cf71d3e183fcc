"""Performance reports over the attribution credit rows, outreach and Today tasks.

Every figure is one set-based query (SQLite and PostgreSQL alike) over a period of report-zone
calendar days, for one attribution model, limited to what a :class:`~core.access.Principal` may see:

- owner: everything;
- manager: associates of their stores, their stores, and credit whose sale *or* outreach happened
  at one of their stores (so a text from their store that sold elsewhere still counts for them);
- associate: only rows of their own associate record (nothing when their user has no associate).

Definitions (the panel's help text repeats them):

- *sent* / *delivered*: outbound sms, mms or email whose ``sent_at`` / ``delivered_at`` is in the
  period; *replies*: inbound messages created in the period, counted for the conversation's
  associate and store; *tasks done*: Today tasks marked done in the period.
- *attributed sales*: the sum of credit weights of sales rung up in the period (fractional when a
  model shares a sale); *attributed revenue*: the sum of credited net revenue, per currency.
- *cross-store*: credit whose sale store differs from the store the touch came from.
- *repeat-client rate*: of the distinct clients credited in the period, the share who had a
  completed purchase (positive total, any store) before a credited sale.
- *leaderboard points*: distinct (client, sale's local day) pairs among an associate's credit —
  at most one point per client per day, however many sales or touches that day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, distinct, exists, false, func, or_, select, true
from sqlalchemy.sql import ColumnElement
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal
from core.attribution.settings import report_zone
from core.models import Associate, Attribution, Location, Outreach, Sale, Task

MESSAGE_CHANNELS = ("sms", "mms", "email")
DAILY_UP_TO = 31  # longer periods are charted per week
MAX_DAYS = 3 * 366

Money = dict[str, int]  # currency → minor units


# ------------------------------------------------------------------------------------------- period


@dataclass(frozen=True)
class Bucket:
    """One step of a trend: calendar days ``first``..``last`` in the report zone."""

    first: date
    last: date
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    label: str


@dataclass(frozen=True)
class Period:
    """Report-zone calendar days ``first``..``last`` (inclusive), read once into UTC bounds."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return _midnight(self.first, self.zone)

    @property
    def end(self) -> datetime:
        return _midnight(self.last + timedelta(days=1), self.zone)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def daily(self) -> bool:
        return self.days <= DAILY_UP_TO

    def buckets(self) -> list[Bucket]:
        """Days for a short period, else Monday-to-Sunday weeks clipped to the period."""
        out: list[Bucket] = []
        day = self.first
        while day <= self.last:
            if self.daily:
                last = day
            else:
                last = min(day + timedelta(days=6 - day.weekday()), self.last)
            label = f"{day:%b} {day.day}"
            end = _midnight(last + timedelta(days=1), self.zone)
            out.append(Bucket(day, last, _midnight(day, self.zone), end, label))
            day = last + timedelta(days=1)
        return out


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def _between(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


# ------------------------------------------------------------------------------------------ figures


@dataclass
class Figures:
    """One row's numbers. Revenue is per currency: a chain may sell in several."""

    sent: int = 0
    delivered: int = 0
    replies: int = 0
    tasks_done: int = 0
    sales: float = 0.0
    revenue: Money = field(default_factory=dict)
    cross_store_revenue: Money = field(default_factory=dict)
    clients: int = 0
    repeat_clients: int = 0

    @property
    def repeat_rate(self) -> float | None:
        return self.repeat_clients / self.clients if self.clients else None

    @property
    def empty(self) -> bool:
        return not (self.sent or self.delivered or self.replies or self.tasks_done or self.sales or self.clients)


@dataclass
class AssociateRow:
    associate_id: int | None  # None: touches no associate owns (automations, unassigned numbers)
    name: str
    location_id: int | None
    location: str
    figures: Figures


@dataclass
class LocationRow:
    """A store: its own activity, credit its outreach earned (``figures``, some of it for sales
    at other stores), and credit its sales gave to outreach (some of it from other stores)."""

    location_id: int
    name: str
    figures: Figures
    sold_here_sales: float = 0.0
    sold_here_revenue: Money = field(default_factory=dict)
    sold_here_from_elsewhere: Money = field(default_factory=dict)


@dataclass
class LeaderRow:
    rank: int
    associate_id: int
    name: str
    location: str
    points: int
    sales: float
    revenue: Money


@dataclass
class Matrix:
    """Credit by the store the touch came from (rows) × the store of the sale (columns)."""

    outreach_locations: list[tuple[int | None, str]]
    sale_locations: list[tuple[int | None, str]]
    revenue: dict[tuple[int | None, int | None], Money]
    sales: dict[tuple[int | None, int | None], float]

    def cross_store(self) -> Money:
        out: Money = defaultdict(int)
        for (o, s), money in self.revenue.items():
            if o is not None and s is not None and o != s:
                _add(out, money)
        return dict(out)


@dataclass
class TrendPoint:
    bucket: Bucket
    delivered: int = 0
    sales: float = 0.0
    revenue: Money = field(default_factory=dict)


@dataclass
class Report:
    period: Period
    model: str
    totals: Figures
    associates: list[AssociateRow]
    locations: list[LocationRow]
    leaderboard: list[LeaderRow]
    matrix: Matrix
    trend: list[TrendPoint]
    currencies: list[str]  # by credited revenue, largest first
    unlinked: bool = False  # an associate user with no associate record: nothing to show


def _add(into: Money, money: Money) -> None:
    for cur, minor in money.items():
        into[cur] = into.get(cur, 0) + minor


# -------------------------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class Scope:
    """WHERE clauses for one principal: per kind of row and per way of grouping."""

    principal: Principal

    @property
    def _locs(self) -> list[int]:
        return sorted(self.principal.location_ids)

    @property
    def unlinked(self) -> bool:
        return self.principal.role == "associate" and self.principal.associate_id is None

    def _own(self, associate_col: Any) -> ColumnElement[bool]:
        aid = self.principal.associate_id
        return associate_col == aid if aid is not None else false()

    def by_associate(self, associate_col: Any, location_col: Any) -> ColumnElement[bool]:
        """Rows counted for an associate: a manager's are their stores' associates (and touches
        with no associate made at their stores)."""
        p = self.principal
        if p.is_owner:
            return true()
        if p.role != "manager":
            return self._own(associate_col)
        if not self._locs:
            return false()
        staff = select(Associate.id).where(col(Associate.location_id).in_(self._locs))
        return or_(associate_col.in_(staff), and_(associate_col.is_(None), location_col.in_(self._locs)))

    def by_location(self, associate_col: Any, location_col: Any) -> ColumnElement[bool]:
        p = self.principal
        if p.is_owner:
            return true()
        if p.role != "manager":
            return self._own(associate_col)
        return location_col.in_(self._locs) if self._locs else false()

    def credit(self) -> ColumnElement[bool]:
        """Credit rows: a manager's are those whose sale or touch happened at one of their stores."""
        p = self.principal
        if p.is_owner:
            return true()
        if p.role != "manager":
            return self._own(col(Attribution.associate_id))
        if not self._locs:
            return false()
        return or_(
            col(Attribution.sale_location_id).in_(self._locs), col(Attribution.outreach_location_id).in_(self._locs)
        )

    def associate_clause(self) -> ColumnElement[bool]:
        """Associates listed even without activity."""
        p = self.principal
        if p.is_owner:
            return true()
        if p.role == "manager":
            return col(Associate.location_id).in_(self._locs) if self._locs else false()
        return self._own(col(Associate.id))

    def location_listed(self, location_id: int | None) -> bool:
        """Stores shown as rows: a manager's own only (credit they share with another store is in
        the matrix); an associate's assigned stores plus any store with activity of theirs."""
        p = self.principal
        if p.is_owner or p.role != "manager":
            return True
        return location_id in p.location_ids


# ------------------------------------------------------------------------------------------ queries

_O = Outreach
_A = Attribution


def _cross() -> ColumnElement[bool]:
    return and_(
        col(_A.sale_location_id).is_not(None),
        col(_A.outreach_location_id).is_not(None),
        col(_A.sale_location_id) != col(_A.outreach_location_id),
    )


def _keyed(key: Any | None, *columns: Any) -> tuple[list[Any], list[Any]]:
    """(select columns, group by) with an optional leading grouping key."""
    if key is None:
        return list(columns), []
    return [key, *columns], [key]


async def outreach_counts(
    session: AsyncSession, period: Period, key: Any | None, where: ColumnElement[bool]
) -> dict[Any, tuple[int, int, int]]:
    """(sent, delivered, replies) per ``key`` (an Outreach column; None: one total under None)."""
    start, end = period.start, period.end
    outbound = and_(col(_O.direction) == "outbound", col(_O.channel).in_(MESSAGE_CHANNELS))
    sent = func.sum(case((and_(outbound, _between(col(_O.sent_at), start, end)), 1), else_=0))
    delivered = func.sum(case((and_(outbound, _between(col(_O.delivered_at), start, end)), 1), else_=0))
    inbound = col(_O.direction) == "inbound"
    replies = func.sum(case((and_(inbound, _between(col(_O.created_at), start, end)), 1), else_=0))
    columns, group = _keyed(key, sent, delivered, replies)
    stmt = (
        select(*columns)
        .where(
            or_(
                _between(col(_O.sent_at), start, end),
                _between(col(_O.delivered_at), start, end),
                _between(col(_O.created_at), start, end),
            ),
            where,
        )
        .group_by(*group)
    )
    out: dict[Any, tuple[int, int, int]] = {}
    for row in (await session.exec(stmt)).all():
        k, rest = (row[0], row[1:]) if key is not None else (None, row)
        out[k] = (int(rest[0] or 0), int(rest[1] or 0), int(rest[2] or 0))
    return out


async def tasks_done(
    session: AsyncSession, period: Period, key: Any | None, where: ColumnElement[bool]
) -> dict[Any, int]:
    columns, group = _keyed(key, func.count())
    stmt = (
        select(*columns)
        .where(col(Task.state) == "done", _between(col(Task.done_at), period.start, period.end), where)
        .group_by(*group)
    )
    rows = (await session.exec(stmt)).all()
    return {(row[0] if key is not None else None): int(row[-1]) for row in rows}


def _credit_where(period: Period, model: str, where: ColumnElement[bool]) -> list[ColumnElement[bool]]:
    return [col(_A.model) == model, _between(col(_A.sale_at), period.start, period.end), where]


async def credit_sums(
    session: AsyncSession, period: Period, model: str, key: Any | None, where: ColumnElement[bool]
) -> dict[Any, tuple[float, Money, Money]]:
    """(attributed sales, revenue, cross-store revenue) per ``key`` (an Attribution column)."""
    columns, group = _keyed(
        key,
        col(_A.currency),
        func.sum(col(_A.weight)),
        func.sum(col(_A.revenue_minor)),
        func.sum(case((_cross(), col(_A.revenue_minor)), else_=0)),
    )
    stmt = select(*columns).where(*_credit_where(period, model, where)).group_by(*group, col(_A.currency))
    out: dict[Any, tuple[float, Money, Money]] = {}
    for row in (await session.exec(stmt)).all():
        k, (cur, weight, revenue, cross) = (row[0], row[1:]) if key is not None else (None, row)
        sales, money, cross_money = out.get(k, (0.0, {}, {}))
        money[cur] = money.get(cur, 0) + int(revenue or 0)
        if cross:
            cross_money[cur] = cross_money.get(cur, 0) + int(cross)
        out[k] = (sales + float(weight or 0), money, cross_money)
    return out


async def repeat_clients(
    session: AsyncSession, period: Period, model: str, key: Any | None, where: ColumnElement[bool]
) -> dict[Any, tuple[int, int]]:
    """(distinct credited clients, of them repeat clients) per ``key``."""
    bought_before = exists().where(
        col(Sale.client_id) == col(_A.client_id),
        col(Sale.status) == "completed",
        col(Sale.total_minor) > 0,
        col(Sale.occurred_at) < col(_A.sale_at),
    )
    columns, group = _keyed(
        key,
        func.count(distinct(col(_A.client_id))),
        func.count(distinct(case((bought_before, col(_A.client_id))))),
    )
    stmt = select(*columns).where(*_credit_where(period, model, where)).group_by(*group)
    rows = (await session.exec(stmt)).all()
    return {(row[0] if key is not None else None): (int(row[-2] or 0), int(row[-1] or 0)) for row in rows}


async def _figures(
    session: AsyncSession,
    period: Period,
    model: str,
    keys: tuple[Any, Any, Any] | None,
    wheres: tuple[ColumnElement[bool], ColumnElement[bool], ColumnElement[bool]],
) -> dict[Any, Figures]:
    """Figures per key: ``keys``/``wheres`` are for (outreach, task, credit) rows."""
    k_out, k_task, k_credit = keys or (None, None, None)
    w_out, w_task, w_credit = wheres
    out: dict[Any, Figures] = defaultdict(Figures)
    for k, (sent, delivered, replies) in (await outreach_counts(session, period, k_out, w_out)).items():
        out[k].sent, out[k].delivered, out[k].replies = sent, delivered, replies
    for k, n in (await tasks_done(session, period, k_task, w_task)).items():
        out[k].tasks_done = n
    for k, (sales, revenue, cross) in (await credit_sums(session, period, model, k_credit, w_credit)).items():
        out[k].sales, out[k].revenue, out[k].cross_store_revenue = sales, revenue, cross
    for k, (clients, repeat) in (await repeat_clients(session, period, model, k_credit, w_credit)).items():
        out[k].clients, out[k].repeat_clients = clients, repeat
    return dict(out)


def _associate_wheres(scope: Scope) -> tuple[ColumnElement[bool], ColumnElement[bool], ColumnElement[bool]]:
    return (
        scope.by_associate(col(_O.associate_id), col(_O.location_id)),
        scope.by_associate(col(Task.associate_id), col(Task.location_id)),
        and_(scope.by_associate(col(_A.associate_id), col(_A.outreach_location_id)), scope.credit()),
    )


async def totals(session: AsyncSession, principal: Principal, period: Period, model: str) -> Figures:
    """The per-associate table's total (repeat clients counted once across associates)."""
    found = await _figures(session, period, model, None, _associate_wheres(Scope(principal)))
    return found.get(None, Figures())


def _name(first: str | None, last: str | None, fallback: str) -> str:
    return f"{first or ''} {last or ''}".strip() or fallback


async def _location_names(session: AsyncSession) -> dict[int, str]:
    rows = (await session.exec(select(Location.id, Location.name))).all()
    return {int(i): n for i, n in rows}


async def by_associate(session: AsyncSession, principal: Principal, period: Period, model: str) -> list[AssociateRow]:
    """One row per associate in scope that is active or had activity in the period, plus a row for
    touches with no associate when there are any; ordered by store, then name."""
    scope = Scope(principal)
    keys = (col(_O.associate_id), col(Task.associate_id), col(_A.associate_id))
    found = await _figures(session, period, model, keys, _associate_wheres(scope))
    stmt = (
        select(
            Associate.id, Associate.first_name, Associate.last_name, Associate.active, Associate.location_id,
            Location.name,
        )
        .outerjoin(Location, col(Location.id) == col(Associate.location_id))
        .where(scope.associate_clause())
    )
    rows: list[AssociateRow] = []
    for aid, first, last, active, loc_id, loc_name in (await session.exec(stmt)).all():
        figures = found.get(aid, Figures())
        if active or not figures.empty:
            rows.append(AssociateRow(aid, _name(first, last, f"Associate #{aid}"), loc_id, loc_name or "", figures))
    unowned = found.get(None)
    if unowned is not None and not unowned.empty:
        rows.append(AssociateRow(None, "No associate (automations)", None, "", unowned))
    rows.sort(key=lambda r: (r.associate_id is None, r.location.lower(), r.name.lower()))
    return rows


async def by_location(session: AsyncSession, principal: Principal, period: Period, model: str) -> list[LocationRow]:
    scope = Scope(principal)
    keys = (col(_O.location_id), col(Task.location_id), col(_A.outreach_location_id))
    wheres = (
        scope.by_location(col(_O.associate_id), col(_O.location_id)),
        scope.by_location(col(Task.associate_id), col(Task.location_id)),
        scope.credit(),
    )
    found = await _figures(session, period, model, keys, wheres)
    # The sale side: credit for sales rung up at each store, and how much of it other stores earned.
    sold_here: dict[Any, tuple[float, Money, Money]] = await credit_sums(
        session, period, model, col(_A.sale_location_id), scope.credit()
    )
    stmt = select(Location.id, Location.name, Location.active)
    listed: set[int] = set(principal.location_ids)
    rows: list[LocationRow] = []
    for loc_id, name, active in (await session.exec(stmt)).all():
        figures = found.get(loc_id, Figures())
        sales, revenue, elsewhere = sold_here.get(loc_id, (0.0, {}, {}))
        busy = not figures.empty or sales > 0
        if not scope.location_listed(loc_id):
            continue
        if principal.is_owner or principal.role == "manager":
            if not (active or busy):
                continue
        elif not (loc_id in listed or busy):
            continue
        # Of credit for sales here, "from elsewhere" is what touches from other stores earned.
        rows.append(LocationRow(loc_id, name, figures, sales, revenue, elsewhere))
    rows.sort(key=lambda r: r.name.lower())
    return rows


async def leaderboard(session: AsyncSession, principal: Principal, period: Period, model: str) -> list[LeaderRow]:
    """Associates by points (one per client per sale day), then revenue in the main currency."""
    scope = Scope(principal)
    where = and_(
        scope.by_associate(col(_A.associate_id), col(_A.outreach_location_id)),
        scope.credit(),
        col(_A.associate_id).is_not(None),
    )
    pairs = (
        select(col(_A.associate_id).label("aid"), col(_A.client_id).label("cid"), col(_A.sale_day).label("day"))
        .where(*_credit_where(period, model, where), col(_A.client_id).is_not(None))
        .distinct()
        .subquery("pairs")
    )
    counted = (await session.exec(select(pairs.c.aid, func.count()).group_by(pairs.c.aid))).all()
    points = {int(a): int(n) for a, n in counted}
    sums = await credit_sums(session, period, model, col(_A.associate_id), where)
    ids = set(points) | {k for k in sums if k is not None}
    if not ids:
        return []
    names = {
        int(aid): (_name(first, last, f"Associate #{aid}"), loc or "")
        for aid, first, last, loc in (
            await session.exec(
                select(Associate.id, Associate.first_name, Associate.last_name, Location.name)
                .outerjoin(Location, col(Location.id) == col(Associate.location_id))
                .where(col(Associate.id).in_(sorted(ids)))
            )
        ).all()
    }
    main = _main_currency(s[1] for s in sums.values())
    entries = []
    for aid in ids:
        sales, revenue, _ = sums.get(aid, (0.0, {}, {}))
        name, loc = names.get(aid, (f"Associate #{aid}", ""))
        entries.append((points.get(aid, 0), revenue.get(main, 0) if main else 0, name, loc, aid, sales, revenue))
    entries.sort(key=lambda e: (-e[0], -e[1], e[2].lower(), e[4]))
    out: list[LeaderRow] = []
    for i, (pts, main_rev, name, loc, aid, sales, revenue) in enumerate(entries):
        # Equal points and revenue share a rank (1, 2, 2, 4).
        tied = out and (out[-1].points, out[-1].revenue.get(main, 0) if main else 0) == (pts, main_rev)
        rank = out[-1].rank if tied else i + 1
        out.append(LeaderRow(rank, aid, name, loc, pts, sales, revenue))
    return out


def _main_currency(moneys: Iterable[Money]) -> str | None:
    total: Money = {}
    for money in moneys:
        _add(total, money)
    return currencies_of(total)[0] if total else None


def currencies_of(money: Money) -> list[str]:
    return sorted(money, key=lambda c: (-money[c], c))


async def cross_store_matrix(session: AsyncSession, principal: Principal, period: Period, model: str) -> Matrix:
    scope = Scope(principal)
    stmt = (
        select(
            col(_A.outreach_location_id),
            col(_A.sale_location_id),
            col(_A.currency),
            func.sum(col(_A.weight)),
            func.sum(col(_A.revenue_minor)),
        )
        .where(*_credit_where(period, model, scope.credit()))
        .group_by(col(_A.outreach_location_id), col(_A.sale_location_id), col(_A.currency))
    )
    revenue: dict[tuple[int | None, int | None], Money] = defaultdict(dict)
    sales: dict[tuple[int | None, int | None], float] = defaultdict(float)
    for o, s, cur, weight, minor in (await session.exec(stmt)).all():
        revenue[(o, s)][cur] = revenue[(o, s)].get(cur, 0) + int(minor or 0)
        sales[(o, s)] += float(weight or 0)
    names = await _location_names(session)

    def axis(ids: set[int | None]) -> list[tuple[int | None, str]]:
        labelled = [(i, names.get(i, f"Store #{i}") if i is not None else "Unknown store") for i in ids]
        return sorted(labelled, key=lambda x: (x[0] is None, x[1].lower()))

    return Matrix(
        outreach_locations=axis({o for o, _ in revenue}),
        sale_locations=axis({s for _, s in revenue}),
        revenue=dict(revenue),
        sales=dict(sales),
    )


def _bucket_of(column: Any, buckets: Sequence[Bucket]) -> Any:
    # Rows are already inside the period, so the first bucket ending after the row holds it.
    return case(*[(column < b.end, i) for i, b in enumerate(buckets)], else_=len(buckets) - 1)


async def trend(session: AsyncSession, principal: Principal, period: Period, model: str) -> list[TrendPoint]:
    """Delivered outreach, attributed sales and revenue per day (≤ 31 days) or per week."""
    scope = Scope(principal)
    buckets = period.buckets()
    points = [TrendPoint(b) for b in buckets]
    delivered_at = col(_O.delivered_at)
    inner = (
        select(_bucket_of(delivered_at, buckets).label("bucket"))
        .where(
            col(_O.direction) == "outbound",
            col(_O.channel).in_(MESSAGE_CHANNELS),
            _between(delivered_at, period.start, period.end),
            scope.by_location(col(_O.associate_id), col(_O.location_id)),
        )
        .subquery("delivered")
    )
    for bucket, n in (await session.exec(select(inner.c.bucket, func.count()).group_by(inner.c.bucket))).all():
        points[int(bucket)].delivered = int(n)
    credit = (
        select(
            _bucket_of(col(_A.sale_at), buckets).label("bucket"),
            col(_A.currency).label("currency"),
            col(_A.weight).label("weight"),
            col(_A.revenue_minor).label("minor"),
        )
        .where(*_credit_where(period, model, scope.credit()))
        .subquery("credit")
    )
    stmt = select(credit.c.bucket, credit.c.currency, func.sum(credit.c.weight), func.sum(credit.c.minor)).group_by(
        credit.c.bucket, credit.c.currency
    )
    for bucket, cur, weight, minor in (await session.exec(stmt)).all():
        point = points[int(bucket)]
        point.sales += float(weight or 0)
        point.revenue[cur] = point.revenue.get(cur, 0) + int(minor or 0)
    return points


# --------------------------------------------------------------------------------------- the report


async def period_for(session: AsyncSession, first: date, last: date, zone: ZoneInfo | None = None) -> Period:
    return Period(first, last, zone or await report_zone(session))


async def build_report(session: AsyncSession, principal: Principal, period: Period, model: str) -> Report:
    scope = Scope(principal)
    associates = await by_associate(session, principal, period, model)
    locations = await by_location(session, principal, period, model)
    board = await leaderboard(session, principal, period, model)
    matrix = await cross_store_matrix(session, principal, period, model)
    series = await trend(session, principal, period, model)
    total = await totals(session, principal, period, model)
    everything: Money = {}
    for money in matrix.revenue.values():
        _add(everything, money)
    return Report(
        period=period,
        model=model,
        totals=total,
        associates=associates,
        locations=locations,
        leaderboard=board,
        matrix=matrix,
        trend=series,
        currencies=currencies_of(everything),
        unlinked=scope.unlinked,
    )
