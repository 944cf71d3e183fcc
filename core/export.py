"""Exports of the unified store: clients, sales and outreach as plain dicts, streamed page by page.

The row shapes are a contract other systems read (``clasp export ... --format jsonl|csv``):

- clients: every unified client that was not merged into another, with normalised contacts, the
  locations they belong to or bought at, their external references and completed-sales aggregates;
- sales: each sale with its external reference, location / associate ``{id, name, external_id}``
  and its lines (returns have a negative quantity and ``is_return``; a line without its own name or
  SKU carries its product's);
- outreach: the outbox and conversation log.

Rows are read in id order, one page at a time, with a fixed number of set-based queries per page,
so an export of millions of rows runs in constant memory and never issues a query per row.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import (
    Associate,
    Client,
    ClientContact,
    Connector,
    ExternalRef,
    Location,
    Outreach,
    Product,
    Sale,
    SaleLine,
)

PAGE_SIZE = 1000

# Only completed sales are revenue (see core.models.sales); voided sales are not visits either.
REVENUE_STATUS = "completed"
NOT_A_PURCHASE = ("voided",)

CLIENT_FIELDS = (
    "id",
    "first_name",
    "last_name",
    "emails",
    "phones",
    "birthday",
    "anniversary",
    "home_location_id",
    "location_ids",
    "external_refs",
    "sales_count",
    "lifetime_value_minor",
    "currency",
    "lifetime_value_by_currency",
    "archived",
    "created_at",
    "updated_at",
)
SALE_FIELDS = (
    "id",
    "client_id",
    "external_ref",
    "connector",
    "location",
    "associate",
    "channel",
    "status",
    "occurred_at",
    "currency",
    "subtotal_minor",
    "tax_minor",
    "total_minor",
    "lines",
)
OUTREACH_FIELDS = (
    "id",
    "client_id",
    "associate_id",
    "location_id",
    "channel",
    "direction",
    "kind",
    "body",
    "media_urls",
    "state",
    "provider_id",
    "occasion_key",
    "created_at",
    "sent_at",
    "delivered_at",
)
FIELDS = {"clients": CLIENT_FIELDS, "sales": SALE_FIELDS, "outreach": OUTREACH_FIELDS}


def iso_datetime(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix (what msgspec and pydantic emit for the JSON API too)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _pages(session: AsyncSession, stmt: Any, id_column: Any) -> AsyncIterator[list[Any]]:
    """Keyset pagination on ``id_column``: each page is a fresh query after the last id seen."""
    last = 0
    while True:
        rows = list((await session.exec(stmt.where(id_column > last).order_by(id_column).limit(PAGE_SIZE))).all())
        if not rows:
            return
        yield rows
        last = rows[-1].id
        if len(rows) < PAGE_SIZE:
            return


def _most_used(counts: Counter[str]) -> str | None:
    if not counts:
        return None
    # Most sales first; ties broken alphabetically so the export is deterministic.
    return min(counts, key=lambda cur: (-counts[cur], cur))


async def _refs(
    session: AsyncSession, object_type: str, unified_ids: Iterable[int]
) -> dict[int, list[tuple[int, str, str]]]:
    """(connector id, connector name, external id) per unified id, oldest reference first."""
    ids = list(set(unified_ids))
    out: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    if not ids:
        return out
    stmt = (
        select(ExternalRef.unified_id, ExternalRef.connector_id, Connector.name, ExternalRef.external_id)
        .join(Connector, col(Connector.id) == col(ExternalRef.connector_id))
        .where(col(ExternalRef.object_type) == object_type, col(ExternalRef.unified_id).in_(ids))
        .order_by(col(ExternalRef.unified_id), col(ExternalRef.id))
    )
    for unified_id, connector_id, connector_name, external_id in (await session.exec(stmt)).all():
        out[int(unified_id)].append((int(connector_id), connector_name, external_id))
    return out


def _pick_ref(refs: list[tuple[int, str, str]], connector_id: int | None) -> str | None:
    """The external id from the given connector when there is one, else the oldest reference."""
    for ref_connector, _name, external_id in refs:
        if ref_connector == connector_id:
            return external_id
    return refs[0][2] if refs else None


# ------------------------------------------------------------------------------------------- clients


async def export_clients(session: AsyncSession) -> AsyncIterator[dict[str, Any]]:
    """Every unified client not merged into another, in id order (see the module docstring)."""
    stmt = select(Client).where(col(Client.merged_into_id).is_(None))
    async for page in _pages(session, stmt, col(Client.id)):
        ids = [c.id for c in page]
        contacts = await _client_contacts(session, ids)
        refs = await _refs(session, "client", ids)
        locations = await _client_sale_locations(session, ids)
        sales = await _client_sales(session, ids)
        for client in page:
            emails, phones = contacts.get(client.id, ([], []))
            location_ids = set(locations.get(client.id, ()))
            if client.home_location_id is not None:
                location_ids.add(client.home_location_id)
            by_currency = sales.get(client.id, {})
            counts = Counter({cur: n for cur, (n, _total) in by_currency.items()})
            currency = _most_used(counts)
            yield {
                "id": client.id,
                "first_name": client.first_name,
                "last_name": client.last_name,
                "emails": emails,
                "phones": phones,
                "birthday": iso_date(client.birthday),
                "anniversary": iso_date(client.anniversary),
                "home_location_id": client.home_location_id,
                "location_ids": sorted(location_ids),
                "external_refs": [
                    {"connector": name, "external_id": ext_id} for _cid, name, ext_id in refs.get(client.id, [])
                ],
                "sales_count": sum(n for n, _total in by_currency.values()),
                # Money is never summed across currencies: the headline value is in `currency`, the
                # rest (rare: a client buying in two countries) is in lifetime_value_by_currency.
                "lifetime_value_minor": by_currency[currency][1] if currency else 0,
                "currency": currency,
                "lifetime_value_by_currency": {cur: total for cur, (_n, total) in sorted(by_currency.items())},
                "archived": client.archived,
                "created_at": iso_datetime(client.created_at),
                "updated_at": iso_datetime(client.updated_at),
            }


async def _client_contacts(session: AsyncSession, ids: Sequence[int]) -> dict[int, tuple[list[str], list[str]]]:
    stmt = (
        select(ClientContact.client_id, ClientContact.kind, ClientContact.value)
        .where(col(ClientContact.client_id).in_(ids))
        .order_by(col(ClientContact.client_id), col(ClientContact.is_primary).desc(), col(ClientContact.id))
    )
    out: dict[int, tuple[list[str], list[str]]] = {}
    for client_id, kind, value in (await session.exec(stmt)).all():
        emails, phones = out.setdefault(int(client_id), ([], []))
        (emails if kind == "email" else phones).append(value)
    return out


async def _client_sale_locations(session: AsyncSession, ids: Sequence[int]) -> dict[int, set[int]]:
    stmt = (
        select(Sale.client_id, Sale.location_id)
        .where(col(Sale.client_id).in_(ids), col(Sale.status).not_in(NOT_A_PURCHASE))
        .distinct()
    )
    out: dict[int, set[int]] = defaultdict(set)
    for client_id, location_id in (await session.exec(stmt)).all():
        out[int(client_id)].add(int(location_id))
    return out


async def _client_sales(session: AsyncSession, ids: Sequence[int]) -> dict[int, dict[str, tuple[int, int]]]:
    """Completed sales per client and currency: (count, sum of total_minor)."""
    stmt = (
        select(Sale.client_id, Sale.currency, func.count(), func.coalesce(func.sum(Sale.total_minor), 0))
        .where(col(Sale.client_id).in_(ids), col(Sale.status) == REVENUE_STATUS)
        .group_by(col(Sale.client_id), col(Sale.currency))
    )
    out: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
    for client_id, currency, count, total in (await session.exec(stmt)).all():
        out[int(client_id)][currency] = (int(count), int(total))
    return out


# --------------------------------------------------------------------------------------------- sales


async def export_sales(session: AsyncSession) -> AsyncIterator[dict[str, Any]]:
    """Every sale with its lines, in id order (see the module docstring)."""
    async for page in _pages(session, select(Sale), col(Sale.id)):
        ids = [s.id for s in page]
        sale_refs = await _refs(session, "sale", ids)
        location_ids = {s.location_id for s in page}
        associate_ids = {s.associate_id for s in page if s.associate_id is not None}
        locations = {
            loc.id: loc
            for loc in (await session.exec(select(Location).where(col(Location.id).in_(location_ids)))).all()
        }
        associates = {
            a.id: a for a in (await session.exec(select(Associate).where(col(Associate.id).in_(associate_ids)))).all()
        }
        location_refs = await _refs(session, "location", location_ids)
        associate_refs = await _refs(session, "associate", associate_ids)
        lines = await _sale_lines(session, ids)
        for sale in page:
            refs = sale_refs.get(sale.id, [])
            connector_id, connector_name, external_id = refs[0] if refs else (None, None, None)
            location = locations.get(sale.location_id)
            associate = associates.get(sale.associate_id) if sale.associate_id is not None else None
            yield {
                "id": sale.id,
                "client_id": sale.client_id,
                "external_ref": external_id,
                "connector": connector_name,
                "location": {
                    "id": sale.location_id,
                    "name": location.name if location else None,
                    "external_id": _pick_ref(location_refs.get(sale.location_id, []), connector_id),
                },
                "associate": None
                if associate is None
                else {
                    "id": associate.id,
                    "name": f"{associate.first_name} {associate.last_name}".strip(),
                    "external_id": _pick_ref(associate_refs.get(associate.id, []), connector_id),
                },
                "channel": sale.channel,
                "status": sale.status,
                "occurred_at": iso_datetime(sale.occurred_at),
                "currency": sale.currency,
                "subtotal_minor": sale.subtotal_minor,
                "tax_minor": sale.tax_minor,
                "total_minor": sale.total_minor,
                "lines": lines.get(sale.id, []),
            }


async def _sale_lines(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    # A POS line without its own name or SKU (Lightspeed R lines carry only the item id) takes the product's.
    stmt = (
        select(SaleLine, Product.name, Product.sku)
        .outerjoin(Product, col(Product.id) == col(SaleLine.product_id))
        .where(col(SaleLine.sale_id).in_(ids))
        .order_by(col(SaleLine.sale_id), col(SaleLine.id))
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for line, product_name, product_sku in (await session.exec(stmt)).all():
        out[line.sale_id].append(
            {
                "id": line.id,
                "product_id": line.product_id,
                "sku": line.sku or product_sku,
                "name": line.name or product_name or "",
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
                "total_minor": line.total_minor,
                "is_return": line.quantity < 0,
                "parent_line_id": line.parent_line_id,
            }
        )
    return out


# ------------------------------------------------------------------------------------------ outreach


async def export_outreach(session: AsyncSession) -> AsyncIterator[dict[str, Any]]:
    """Every outreach row (outbound and inbound), in id order."""
    async for page in _pages(session, select(Outreach), col(Outreach.id)):
        for row in page:
            yield {
                "id": row.id,
                "client_id": row.client_id,
                "associate_id": row.associate_id,
                "location_id": row.location_id,
                "channel": row.channel,
                "direction": row.direction,
                "kind": row.kind,
                "body": row.body,
                "media_urls": list(row.media_urls or []),
                "state": row.state,
                "provider_id": row.provider_id,
                "occasion_key": row.occasion_key,
                "created_at": iso_datetime(row.created_at),
                "sent_at": iso_datetime(row.sent_at),
                "delivered_at": iso_datetime(row.delivered_at),
            }


EXPORTERS = {"clients": export_clients, "sales": export_sales, "outreach": export_outreach}


# ---------------------------------------------------------------------------------------- formatting


def to_json_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def to_csv_row(row: dict[str, Any], fields: Sequence[str]) -> list[str]:
    """Flatten one row for CSV: nested lists/dicts become JSON strings, None an empty cell."""
    out = []
    for name in fields:
        value = row.get(name)
        if value is None:
            out.append("")
        elif isinstance(value, (list, dict)):
            out.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        else:
            out.append(str(value))
    return out
