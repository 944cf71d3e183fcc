"""The :class:`core.plugin.OccasionQuery` building blocks, compiled to one set-based SQL statement.

Each block becomes one or more SELECT branches with the same columns (client, occasion location,
occasion key, and the sale / line / period the occasion is about); an automation's branches are
joined with UNION ALL, filtered by the automation's scope, and anti-joined against the occasion keys
already in the outbox or the task list. The dry run and the real run run exactly this statement.

Local time is handled in Python over the (few) locations: each location's local date and the
instant its local send time passes are computed here and become plain constants in the SQL, so the
same statement works on SQLite (which has no timezone support) and PostgreSQL.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    extract,
    false,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql import ColumnElement

from core.models import Client, Outreach, Product, Sale, SaleLine, Task
from core.plugin import ClientDateField, Occasions
from core.timezones import zone

client_t = Client.__table__  # type: ignore[attr-defined]
sale_t = Sale.__table__  # type: ignore[attr-defined]
line_t = SaleLine.__table__  # type: ignore[attr-defined]
product_t = Product.__table__  # type: ignore[attr-defined]
outreach_t = Outreach.__table__  # type: ignore[attr-defined]
task_t = Task.__table__  # type: ignore[attr-defined]

CLIENT_COLUMNS = (
    "first_name",
    "last_name",
    "birthday",
    "anniversary",
    "note",
    "home_location_id",
    "owner_associate_id",
)
COLUMNS = ("client_id", "location_id", "occasion_key", "sale_id", "line_id", "number", "base_at")


def add_months(value: datetime, months: int) -> datetime:
    """``value`` moved by calendar months, the day clamped to the target month's length."""
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return value.replace(year=year, month=month, day=min(value.day, calendar.monthrange(year, month)[1]))


@dataclass
class Branch:
    """One SELECT of an occasion set, and how to tell its occasions' due moment and template data."""

    kind: str  # client_date | sale | piece | dormant
    occasion: str
    statement: Select[Any]
    # client_date: (location id or None, local date) → due instant; the key's detail is the year.
    due_by_location: dict[int | None, tuple[date, datetime]] = field(default_factory=dict)
    field_name: str | None = None
    delay: timedelta = timedelta(0)
    every_months: dict[str, int] = field(default_factory=dict)


class OccasionSet(Occasions):
    def __init__(self, branches: list[Branch]) -> None:
        self.branches = branches

    def __or__(self, other: Occasions) -> OccasionSet:
        if not isinstance(other, OccasionSet):
            return NotImplemented
        return OccasionSet(self.branches + other.branches)


def _key(automation_id: int, client_id: Any, detail: Any) -> ColumnElement[str]:
    # Built in SQL so the anti-join can use the unique index; Python rebuilds nothing, it reads it back.
    return literal(f"a{automation_id}:c", String) + cast(client_id, String) + literal(":", String) + detail


def _live_client() -> ColumnElement[bool]:
    return and_(client_t.c.merged_into_id.is_(None), client_t.c.archived.is_(False))


def _purchase(sale: Any) -> ColumnElement[bool]:
    """A sale that counts as a purchase: completed, to a known client, positive total."""
    return and_(sale.c.status == "completed", sale.c.client_id.is_not(None), sale.c.total_minor > 0)


def _has_returns(sale: Any) -> ColumnElement[bool]:
    ret = line_t.alias("ret")
    return exists().where(ret.c.sale_id == sale.c.id, or_(ret.c.quantity < 0, ret.c.parent_line_id.is_not(None)))


class SqlOccasionQuery:
    """The building blocks for one automation at one instant (implements ``core.plugin.OccasionQuery``)."""

    def __init__(
        self,
        *,
        now: datetime,
        automation_id: int,
        locations: Mapping[int, str],
        default_timezone: str,
        since: datetime | None = None,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("an evaluation needs a timezone-aware `now`")
        self.now = now.astimezone(UTC)
        self.automation_id = automation_id
        self.locations = dict(locations)  # location id → timezone name
        self.default_timezone = default_timezone
        # Occasions due at or before ``since`` were settled by an earlier complete evaluation, so the
        # catch-up windows start there: a run every few minutes scans minutes of sales, not weeks.
        self.since = since

    def _catch_up(self, catch_up: timedelta) -> timedelta:
        if self.since is None or self.since >= self.now:
            return catch_up
        return min(catch_up, self.now - self.since)

    # ------------------------------------------------------------------------------- client dates

    def client_date(
        self, field: ClientDateField, *, at: time, occasion: str, catch_up: timedelta = timedelta(0)
    ) -> OccasionSet:
        if field not in ("birthday", "anniversary"):
            raise ValueError(f"client_date works on birthday or anniversary, not {field!r}")
        column = client_t.c[field]
        # (local date) → location ids (None: clients without a home location) whose occasion is due.
        groups: dict[date, list[int | None]] = defaultdict(list)
        due: dict[int | None, tuple[date, datetime]] = {}
        zones: list[tuple[int | None, str]] = [(lid, tz) for lid, tz in self.locations.items()]
        zones.append((None, self.default_timezone))
        for lid, tz_name in zones:
            tz = zone(tz_name)
            today = self.now.astimezone(tz).date()
            earliest = (self.now - catch_up).astimezone(tz).date()
            day = today
            while day >= earliest:
                at_utc = datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
                if at_utc <= self.now and (day == today or at_utc >= self.now - catch_up):
                    groups[day].append(lid)
                    due.setdefault(lid, (day, at_utc))
                    break  # one occasion per client and year: the latest due day wins
                day -= timedelta(days=1)
        branches = []
        for day, lids in sorted(groups.items()):
            matches = and_(extract("month", column) == day.month, extract("day", column) == day.day)
            if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
                matches = or_(matches, and_(extract("month", column) == 2, extract("day", column) == 29))
            real = [lid for lid in lids if lid is not None]
            where_loc = []
            if real:
                where_loc.append(client_t.c.home_location_id.in_(real))
            if None in lids:
                where_loc.append(client_t.c.home_location_id.is_(None))
            detail = literal(f"{occasion}:{day.year}", String)
            stmt = select(
                client_t.c.id.label("client_id"),
                cast(client_t.c.home_location_id, BigInteger).label("location_id"),
                _key(self.automation_id, client_t.c.id, detail).label("occasion_key"),
                cast(null(), BigInteger).label("sale_id"),
                cast(null(), BigInteger).label("line_id"),
                cast(null(), Integer).label("number"),
                cast(null(), DateTime(timezone=True)).label("base_at"),
            ).where(column.is_not(None), matches, or_(*where_loc), _live_client())
            # Only the locations whose local date is this day carry this branch's due moment.
            branch_due = {lid: due[lid] for lid in lids}
            branches.append(Branch("client_date", occasion, stmt, due_by_location=branch_due, field_name=field))
        return OccasionSet(branches)

    # ------------------------------------------------------------------------------------- sales

    def _sale_occasion_columns(self, s: Any, occasion: str, location: Any) -> list[Any]:
        """The output columns of an occasion keyed by one sale (thank-you, dormant since that sale)."""
        return [
            s.c.client_id.label("client_id"),
            cast(location, BigInteger).label("location_id"),
            _key(
                self.automation_id, s.c.client_id, literal(f"{occasion}:sale:", String) + cast(s.c.id, String)
            ).label("occasion_key"),
            cast(s.c.id, BigInteger).label("sale_id"),
            cast(null(), BigInteger).label("line_id"),
            cast(null(), Integer).label("number"),
            s.c.occurred_at.label("base_at"),
        ]

    def after_sale(self, *, delay: timedelta, catch_up: timedelta, occasion: str) -> OccasionSet:
        catch_up = self._catch_up(catch_up)
        latest = self.now - delay
        s = sale_t
        stmt = (
            select(*self._sale_occasion_columns(s, occasion, s.c.location_id))
            .select_from(s.join(client_t, client_t.c.id == s.c.client_id))
            .where(
                _purchase(s),
                s.c.occurred_at <= latest,
                s.c.occurred_at > latest - catch_up,
                ~_has_returns(s),
                _live_client(),
            )
        )
        return OccasionSet([Branch("sale", occasion, stmt, delay=delay)])

    def piece_anniversaries(
        self, *, every_months: Mapping[str, int], catch_up: timedelta, occasion: str, max_years: int = 10
    ) -> OccasionSet:
        catch_up = self._catch_up(catch_up)
        branches = []
        cadence = {str(k).strip().lower(): int(v) for k, v in every_months.items() if int(v) > 0}
        by_months: dict[int, list[str]] = defaultdict(list)
        for category, months in cadence.items():
            by_months[months].append(category)
        s, ln, p = sale_t, line_t, product_t
        refunded = line_t.alias("refund")
        for months, categories in sorted(by_months.items()):
            periods = range(1, max(1, max_years * 12 // months) + 1)
            ranges = []
            for n in periods:
                hi = add_months(self.now, -n * months)
                ranges.append((n, and_(s.c.occurred_at <= hi, s.c.occurred_at > hi - catch_up)))
            number = case(*[(cond, n) for n, cond in ranges], else_=0)
            stmt = (
                select(
                    s.c.client_id.label("client_id"),
                    cast(s.c.location_id, BigInteger).label("location_id"),
                    _key(
                        self.automation_id,
                        s.c.client_id,
                        literal(f"{occasion}:line:", String)
                        + cast(ln.c.id, String)
                        + literal(":", String)
                        + cast(number, String),
                    ).label("occasion_key"),
                    cast(s.c.id, BigInteger).label("sale_id"),
                    cast(ln.c.id, BigInteger).label("line_id"),
                    cast(number, Integer).label("number"),
                    s.c.occurred_at.label("base_at"),
                )
                .select_from(
                    ln.join(s, s.c.id == ln.c.sale_id)
                    .join(p, p.c.id == ln.c.product_id)
                    .join(client_t, client_t.c.id == s.c.client_id)
                )
                .where(
                    s.c.status == "completed",
                    s.c.client_id.is_not(None),
                    ln.c.quantity > 0,
                    func.lower(func.trim(p.c.category)).in_(categories),
                    or_(*[cond for _, cond in ranges]) if ranges else false(),
                    ~exists().where(refunded.c.parent_line_id == ln.c.id),
                    _live_client(),
                )
            )
            branches.append(Branch("piece", occasion, stmt, every_months={c: months for c in categories}))
        return OccasionSet(branches)

    def dormant(self, *, days: int, catch_up: timedelta, occasion: str) -> OccasionSet:
        catch_up = self._catch_up(catch_up)
        latest = self.now - timedelta(days=days)
        s = sale_t
        later = sale_t.alias("later")
        stmt = (
            select(
                *self._sale_occasion_columns(
                    s, occasion, func.coalesce(client_t.c.home_location_id, s.c.location_id)
                )
            )
            .select_from(s.join(client_t, client_t.c.id == s.c.client_id))
            .where(
                _purchase(s),
                s.c.occurred_at <= latest,
                s.c.occurred_at > latest - catch_up,
                # The purchase is their latest at any location (ties broken by id).
                ~exists().where(
                    later.c.client_id == s.c.client_id,
                    _purchase(later),
                    or_(
                        later.c.occurred_at > s.c.occurred_at,
                        and_(later.c.occurred_at == s.c.occurred_at, later.c.id > s.c.id),
                    ),
                ),
                _live_client(),
            )
        )
        return OccasionSet([Branch("dormant", occasion, stmt, delay=timedelta(days=days))])

    def nothing(self) -> OccasionSet:
        return OccasionSet([])


def candidates(
    occasions: OccasionSet,
    *,
    location_ids: list[int] | None,
    client_ids: list[int] | None = None,
    with_products: bool = False,
) -> Select[Any] | None:
    """The one statement listing every due, not-yet-fired occasion of an automation."""
    if not occasions.branches:
        return None
    statements = [
        b.statement.add_columns(literal(i, Integer).label("branch")) for i, b in enumerate(occasions.branches)
    ]
    union = statements[0].subquery("due") if len(statements) == 1 else union_all(*statements).subquery("due")
    # The template's client (and piece) come back with the occasion: no second round trip per batch.
    c = client_t.alias("who")
    columns: list[Any] = [union, *(c.c[name].label(f"c_{name}") for name in CLIENT_COLUMNS)]
    source: Any = union.join(c, c.c.id == union.c.client_id)
    if with_products:
        ln, p = line_t.alias("piece"), product_t.alias("piece_product")
        source = source.outerjoin(ln, ln.c.id == union.c.line_id).outerjoin(p, p.c.id == ln.c.product_id)
        columns += [
            ln.c.name.label("l_name"),
            ln.c.sku.label("l_sku"),
            p.c.name.label("p_name"),
            p.c.category.label("p_category"),
            p.c.sku.label("p_sku"),
            p.c.vendor.label("p_vendor"),
        ]
    stmt = (
        select(*columns)
        .select_from(source)
        .where(
            ~exists().where(outreach_t.c.occasion_key == union.c.occasion_key),
            ~exists().where(task_t.c.occasion_key == union.c.occasion_key),
        )
    )
    if location_ids is not None:
        stmt = stmt.where(union.c.location_id.in_(location_ids) if location_ids else false())
    if client_ids is not None:
        stmt = stmt.where(union.c.client_id.in_(client_ids) if client_ids else false())
    return stmt.order_by(union.c.location_id, union.c.client_id, union.c.occasion_key)


def due_at(branch: Branch, row: Mapping[str, Any], home_location_id: int | None) -> tuple[datetime, date | None]:
    """When an occasion fell due (UTC), and the calendar date it is about."""
    if branch.kind == "client_date":
        found = branch.due_by_location.get(home_location_id)
        if found is None:  # not reachable: the branch only selects these locations
            found = next(iter(branch.due_by_location.values()))
        return found[1], found[0]
    base: datetime = row["base_at"]
    if base.tzinfo is None:
        base = base.replace(tzinfo=UTC)
    if branch.kind == "piece":
        months = next(iter(branch.every_months.values()))
        when = add_months(base, months * int(row["number"] or 0))
        return when, when.date()
    when = base + branch.delay
    return when, when.date()
