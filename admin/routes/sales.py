"""Sales: the list (filters, totals, expandable lines) and one sale's page, scoped to the person's stores.

Scope is the sale's location (``core.access.location_filter``). A sale to a client the person may not
see (another associate's client in an "own book" store) is listed with the client's name withheld.
Dates are store dates: a filter day runs midnight to midnight in each store's own timezone, and
times are shown in the store's timezone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Response
from sqlalchemy import and_, case, false, func, or_
from sqlmodel import col, select

from admin.render import render, runtime_of
from core.access import Principal, client_filter, location_filter
from core.models import (
    Associate,
    Attribution,
    Client,
    Connector,
    ExternalRef,
    Location,
    Outreach,
    Product,
    Sale,
    SaleLine,
    Task,
)
from core.models.sales import SALE_CHANNELS, SALE_STATUSES
from core.timezones import zone

PAGE_SIZE = 50
_EXPONENTS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3}
CHANNEL_LABELS = {"store": "In store", "ecom": "Online"}


def format_money(minor: int | None, currency: str) -> str:
    """Minor units → '1,234.50 USD'; negatives with a real minus sign ('−45.00 USD'). Exact (Decimal)."""
    code = (currency or "USD").upper()
    exponent = _EXPONENTS.get(code, 2)
    value = Decimal(minor or 0).scaleb(-exponent)
    text = f"{abs(value):,.{exponent}f} {code}"
    return f"−{text}" if value < 0 else text


def local_time(moment: datetime, timezone: str | None) -> str:
    local = moment.astimezone(zone(timezone))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


def _parse_date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw.strip()) if raw.strip() else None
    except ValueError:
        return None


def _day_start(day: date, timezone: str | None) -> datetime:
    return datetime.combine(day, time(0), zone(timezone)).astimezone(UTC)


def date_clause(locations: list[Location], start: date | None, end: date | None) -> Any:
    """Sales from ``start`` to ``end`` (inclusive) in each store's own calendar."""
    parts = []
    for loc in locations:
        conds = [col(Sale.location_id) == loc.id]
        if start:
            conds.append(col(Sale.occurred_at) >= _day_start(start, loc.timezone))
        if end:
            conds.append(col(Sale.occurred_at) < _day_start(end + timedelta(days=1), loc.timezone))
        parts.append(and_(*conds))
    return or_(*parts) if parts else false()


@dataclass
class Filters:
    date_from: str = ""
    date_to: str = ""
    location: str = ""
    status: str = ""
    channel: str = ""
    problems: list[str] = field(default_factory=list)

    def query(self) -> str:
        """The filters as a query string prefix for the pager ('k=v&...&')."""
        pairs = {k: v for k, v in (("date_from", self.date_from), ("date_to", self.date_to),
                                   ("location", self.location), ("status", self.status),
                                   ("channel", self.channel)) if v}
        return urlencode(pairs) + "&" if pairs else ""

    @property
    def active(self) -> bool:
        return any((self.date_from, self.date_to, self.location, self.status, self.channel))


LineRow = tuple[SaleLine, str | None, str | None, str | None]  # the line, its product's name, sku, vendor


def _line_view(row: LineRow, currency: str) -> dict[str, Any]:
    line, product_name, product_sku, vendor = row
    sku = line.sku or product_sku
    return {
        "id": line.id,
        "name": line.name or product_name or sku or "Item",
        "sku": sku,
        "vendor": vendor,
        "quantity": line.quantity,
        "unit": format_money(line.unit_price_minor, currency),
        "total": format_money(line.total_minor, currency),
        "negative": line.total_minor < 0 or line.quantity < 0,
        "parent_line_id": line.parent_line_id,
    }


def _client_view(sale: Sale, client_id: int | None, first: str | None, last: str | None) -> dict[str, Any]:
    if sale.client_id is None:
        return {"kind": "walk_in"}
    if client_id is None:
        return {"kind": "hidden"}
    return {"kind": "client", "id": client_id, "name": f"{first or ''} {last or ''}".strip() or f"Client #{client_id}"}


def _lines_query(*where: Any) -> Any:
    return (
        select(SaleLine, Product.name, Product.sku, Product.vendor)
        .outerjoin(Product, col(Product.id) == SaleLine.product_id)
        .where(*where)
        .order_by(col(SaleLine.id))
    )


def _sale_view(row: Any, lines: list[LineRow]) -> dict[str, Any]:
    sale, loc_name, loc_tz, a_first, a_last, c_id, c_first, c_last = row
    refund = sale.total_minor < 0 or any(line.quantity < 0 for line, *_ in lines)
    local = sale.occurred_at.astimezone(zone(loc_tz))
    return {
        "id": sale.id,
        "when": local_time(sale.occurred_at, loc_tz),
        "day": local.strftime("%Y-%m-%d"),
        "clock": local.strftime("%H:%M ") + (local.tzname() or ""),
        "location": loc_name,
        "associate": f"{a_first or ''} {a_last or ''}".strip(),
        "client": _client_view(sale, c_id, c_first, c_last),
        "channel": CHANNEL_LABELS.get(sale.channel, sale.channel),
        "status": sale.status,
        "refund": refund,
        "total": format_money(sale.total_minor, sale.currency),
        "negative": sale.total_minor < 0,
        "lines": [_line_view(line, sale.currency) for line in lines],
    }


def _listing() -> Any:
    return (
        select(Sale, Location.name, Location.timezone, Associate.first_name, Associate.last_name,
               Client.id, Client.first_name, Client.last_name)
        .join(Location, col(Location.id) == Sale.location_id)
        .outerjoin(Associate, col(Associate.id) == Sale.associate_id)
        .outerjoin(Client, col(Client.id) == Sale.client_id)
    )


async def _withhold_hidden(session: Any, principal: Principal, rows: list[Any]) -> list[Any]:
    """The rows with the client left out (shown as "hidden") where the person may not see the client.

    Checked for the page's few clients only, by their ids: scoping the whole listing's join would
    evaluate the client scope for every client of the store first.
    """
    if principal.is_owner:
        return rows
    ids = {r[5] for r in rows if r[5] is not None}
    visible: set[int] = set()
    if ids:
        stmt = select(Client.id).where(col(Client.id).in_(ids), client_filter(principal))
        visible = {int(i) for i in (await session.exec(stmt)).all()}
    return [r if r[5] is None or r[5] in visible else (*r[:5], None, None, None) for r in rows]


@get("/sales", name="admin:sales")
async def sales_page(
    request: Request[Any, Any, Any],
    date_from: FromQuery[str] = "",
    date_to: FromQuery[str] = "",
    location: FromQuery[str] = "",
    status: FromQuery[str] = "",
    channel: FromQuery[str] = "",
    page: FromQuery[int] = 1,
) -> Response[Any]:
    principal: Principal = request.state.principal
    page = max(1, page)
    filters = Filters(date_from=date_from.strip(), date_to=date_to.strip(), location=location.strip(),
                      status=status if status in SALE_STATUSES else "",
                      channel=channel if channel in SALE_CHANNELS else "")
    start, end = _parse_date(filters.date_from), _parse_date(filters.date_to)
    if filters.date_from and start is None:
        filters.problems.append(f"“{filters.date_from}” is not a date (YYYY-MM-DD); ignored.")
        filters.date_from = ""
    if filters.date_to and end is None:
        filters.problems.append(f"“{filters.date_to}” is not a date (YYYY-MM-DD); ignored.")
        filters.date_to = ""
    if start and end and end < start:
        filters.problems.append("The end date is before the start date: no sale can match.")
    async with runtime_of(request).db.session() as session:
        locations = list((await session.exec(
            select(Location).where(location_filter(principal, Location.id)).order_by(Location.name))).all())
        chosen = [loc for loc in locations if str(loc.id) == filters.location] if filters.location else locations
        if filters.location and not chosen:
            filters.location = ""  # not a store of theirs: same as not filtering (ids stay opaque)
            chosen = locations
        where: list[Any] = [location_filter(principal, Sale.location_id)]
        if filters.location:
            where.append(col(Sale.location_id) == int(filters.location))
        if start or end:
            where.append(date_clause(chosen, start, end))
        if filters.status:
            where.append(col(Sale.status) == filters.status)
        if filters.channel:
            where.append(col(Sale.channel) == filters.channel)

        total = (await session.exec(select(func.count()).select_from(Sale).where(*where))).one()
        completed = col(Sale.status) == "completed"
        sums = (await session.exec(
            select(
                Sale.currency,
                func.sum(case((completed, 1), else_=0)),
                func.sum(case((completed, Sale.total_minor), else_=0)),
                func.sum(case((and_(completed, col(Sale.total_minor) < 0), Sale.total_minor), else_=0)),
            ).where(*where).group_by(Sale.currency).order_by(Sale.currency)
        )).all()
        rows = await _withhold_hidden(session, principal, list((await session.exec(
            _listing().where(*where)
            .order_by(col(Sale.occurred_at).desc(), col(Sale.id).desc())
            .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
        )).all()))
        ids = [r[0].id for r in rows]
        lines: dict[int, list[LineRow]] = {}
        if ids:
            for line_row in (await session.exec(_lines_query(col(SaleLine.sale_id).in_(ids)))).all():
                lines.setdefault(line_row[0].sale_id, []).append(line_row)
    totals = [
        {"currency": cur, "completed": int(n or 0), "net": format_money(int(net or 0), cur),
         "refunds": format_money(int(ref or 0), cur), "has_refunds": bool(ref)}
        for cur, n, net, ref in sums
    ]
    context = {
        "sales": [_sale_view(r, lines.get(r[0].id, [])) for r in rows],
        "total": total,
        "totals": totals,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "filters": filters,
        "locations": locations,
        "statuses": SALE_STATUSES,
        "channels": CHANNEL_LABELS,
    }
    return render(request, "sales/list.html", context)


@get("/sales/{sale_id:int}", name="admin:sale")
async def sale_page(request: Request[Any, Any, Any], sale_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    async with runtime_of(request).db.session() as session:
        found = (await session.exec(
            _listing().where(col(Sale.id) == sale_id, location_filter(principal, Sale.location_id))
        )).first()
        if found is None:
            raise NotFoundException("no such sale")  # missing and out of scope answer alike
        row = (await _withhold_hidden(session, principal, [found]))[0]
        sale: Sale = row[0]
        lines = list((await session.exec(_lines_query(col(SaleLine.sale_id) == sale_id))).all())
        parent_ids = [line.parent_line_id for line, *_ in lines if line.parent_line_id]
        parents: dict[int, tuple[int, str]] = {}
        if parent_ids:
            stmt = (select(SaleLine.id, SaleLine.sale_id, Sale.location_id)
                    .join(Sale, col(Sale.id) == SaleLine.sale_id).where(col(SaleLine.id).in_(parent_ids)))
            for line_id, parent_sale, parent_loc in (await session.exec(stmt)).all():
                parents[line_id] = (parent_sale, "visible" if principal.can_see_location(parent_loc) else "hidden")
        refs = (await session.exec(
            select(ExternalRef.external_id, Connector.name)
            .join(Connector, col(Connector.id) == ExternalRef.connector_id)
            .where(col(ExternalRef.object_type) == "sale", col(ExternalRef.unified_id) == sale_id)
        )).all()
        # row[2]: the sale's store timezone, already read with the sale.
        credit = await _credit(session, sale.id, row[2], runtime_of(request).registry.attribution_models)
    view = _sale_view(row, lines)
    for line in view["lines"]:
        parent = parents.get(line["parent_line_id"]) if line["parent_line_id"] else None
        line["refunds_sale"] = parent[0] if parent and parent[1] == "visible" else None
    context = {
        "s": view,
        "sale": sale,
        "subtotal": format_money(sale.subtotal_minor, sale.currency),
        "tax": format_money(sale.tax_minor, sale.currency),
        "refs": refs,
        "credit": credit,
    }
    return render(request, "sales/detail.html", context)


async def _credit(session: Any, sale_id: int, tz: str | None, models: Any) -> list[dict[str, Any]]:
    """Which touches each attribution model credited for this sale, for the "Credited to" block;
    times in the sale's store timezone ``tz``."""
    stmt = (
        select(Attribution, Associate.first_name, Associate.last_name, Location.name, Outreach.channel, Task.kind)
        .outerjoin(Associate, col(Associate.id) == Attribution.associate_id)
        .outerjoin(Location, col(Location.id) == Attribution.outreach_location_id)
        .outerjoin(Outreach, col(Outreach.id) == Attribution.outreach_id)
        .outerjoin(Task, col(Task.id) == Attribution.task_id)
        .where(col(Attribution.sale_id) == sale_id)
        .order_by(col(Attribution.model), col(Attribution.weight).desc(), col(Attribution.touch_at).desc())
    )
    out = []
    for a, first, last, store, channel, task_kind in (await session.exec(stmt)).all():
        model = models.get(a.model)
        what = f"{channel.upper()} delivered" if channel else f"{(task_kind or 'task').capitalize()} done"
        out.append({
            "model": model.title if model is not None and model.title else a.model,
            "what": what,
            "when": local_time(a.touch_at, tz),
            "associate": " ".join(p for p in (first, last) if p) or "Unassigned",
            "store": store or "—",
            "cross_store": a.outreach_location_id is not None and a.outreach_location_id != a.sale_location_id,
            "share": f"{a.weight:.0%}",
            "revenue": format_money(a.revenue_minor, a.currency),
        })
    return out


route_handlers = [sales_page, sale_page]
