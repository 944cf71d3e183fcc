"""The variables a template sees, loaded for a batch of occasions in a few set-based queries.

Only what the automation's templates use is loaded: a birthday text that never mentions the last
purchase costs no sales query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.automations.store import conn as _conn
from core.automations.templates import money
from core.models import Associate, Client, Location, Product, Sale, SaleLine

client_t = Client.__table__  # type: ignore[attr-defined]
sale_t = Sale.__table__  # type: ignore[attr-defined]
line_t = SaleLine.__table__  # type: ignore[attr-defined]
product_t = Product.__table__  # type: ignore[attr-defined]
associate_t = Associate.__table__  # type: ignore[attr-defined]
location_t = Location.__table__  # type: ignore[attr-defined]

CHUNK = 1000


def _name(first: str | None, last: str | None) -> str:
    return " ".join(p for p in (first or "", last or "") if p).strip()


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    items = sorted(set(ids))
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


async def load_locations(session: AsyncSession) -> dict[int, dict[str, Any]]:
    rows = (await (await _conn(session)).execute(select(location_t))).mappings().all()
    return {
        int(r["id"]): {
            "id": int(r["id"]),
            "name": r["name"],
            "phone": r["phone"],
            "timezone": r["timezone"],
            "currency": r["currency"],
            "outreach_mode": r["outreach_mode"],
        }
        for r in rows
    }


def client_from_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """A client in template shape from the ``c_*`` columns of an occasions query."""
    return {
        "id": int(r["client_id"]),
        "first_name": r["c_first_name"],
        "last_name": r["c_last_name"],
        "full_name": _name(r["c_first_name"], r["c_last_name"]),
        "birthday": r["c_birthday"],
        "anniversary": r["c_anniversary"],
        "note": r["c_note"],
        "home_location_id": r["c_home_location_id"],
        "owner_associate_id": r["c_owner_associate_id"],
    }


def piece_from_row(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": r["p_name"] or r["l_name"],
        "category": r["p_category"],
        "sku": r["p_sku"] or r["l_sku"],
        "vendor": r["p_vendor"],
    }


async def load_clients(session: AsyncSession, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    cols = [
        client_t.c[c]
        for c in (
            "id",
            "first_name",
            "last_name",
            "birthday",
            "anniversary",
            "note",
            "home_location_id",
            "owner_associate_id",
        )
    ]
    for chunk in _chunks(ids):
        for r in (await (await _conn(session)).execute(select(*cols).where(client_t.c.id.in_(chunk)))).mappings():
            out[int(r["id"])] = {
                "id": int(r["id"]),
                "first_name": r["first_name"],
                "last_name": r["last_name"],
                "full_name": _name(r["first_name"], r["last_name"]),
                "birthday": r["birthday"],
                "anniversary": r["anniversary"],
                "note": r["note"],
                "home_location_id": r["home_location_id"],
                "owner_associate_id": r["owner_associate_id"],
            }
    return out


async def load_associates(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(i for i in ids if i is not None):
        stmt = select(associate_t).where(associate_t.c.id.in_(chunk))
        for r in (await (await _conn(session)).execute(stmt)).mappings():
            out[int(r["id"])] = {
                "id": int(r["id"]),
                "first_name": r["first_name"],
                "last_name": r["last_name"],
                "full_name": _name(r["first_name"], r["last_name"]),
                "email": r["email"],
                "active": bool(r["active"]),
                "location_id": r["location_id"],
            }
    return out


async def load_sales(
    session: AsyncSession, ids: Iterable[int], locations: Mapping[int, dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Sales by id in template shape, with the names of the pieces bought."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        sales = (await (await _conn(session)).execute(select(sale_t).where(sale_t.c.id.in_(chunk)))).mappings().all()
        items: dict[int, list[str]] = defaultdict(list)
        lines = select(line_t.c.sale_id, line_t.c.name, line_t.c.quantity).where(line_t.c.sale_id.in_(chunk))
        for r in (await (await _conn(session)).execute(lines.order_by(line_t.c.sale_id, line_t.c.id))).mappings():
            if r["quantity"] > 0 and r["name"]:
                items[int(r["sale_id"])].append(r["name"])
        for s in sales:
            sid = int(s["id"])
            location = locations.get(s["location_id"]) or {}
            out[sid] = {
                "id": sid,
                "date": s["occurred_at"].date(),
                "occurred_at": s["occurred_at"],
                "total": money(s["total_minor"], s["currency"]),
                "total_minor": s["total_minor"],
                "currency": s["currency"],
                "location": location.get("name"),
                "location_id": s["location_id"],
                "channel": s["channel"],
                "items": items.get(sid, []),
                "item": (items.get(sid) or [None])[0],
            }
    return out


async def last_purchases(
    session: AsyncSession, client_ids: Iterable[int], locations: Mapping[int, dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Each client's latest completed purchase (any location), in template shape."""
    latest: dict[int, int] = {}
    for chunk in _chunks(client_ids):
        ranked = (
            select(
                sale_t.c.id,
                sale_t.c.client_id,
                func.row_number()
                .over(partition_by=sale_t.c.client_id, order_by=(sale_t.c.occurred_at.desc(), sale_t.c.id.desc()))
                .label("rank"),
            )
            .where(sale_t.c.client_id.in_(chunk), sale_t.c.status == "completed", sale_t.c.total_minor > 0)
            .subquery()
        )
        firsts = select(ranked.c.id, ranked.c.client_id).where(ranked.c.rank == 1)
        for sid, cid in await (await _conn(session)).execute(firsts):
            latest[int(cid)] = int(sid)
    sales = await load_sales(session, latest.values(), locations)
    return {cid: sales[sid] for cid, sid in latest.items() if sid in sales}


async def load_pieces(session: AsyncSession, line_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(line_ids):
        stmt = (
            select(
                line_t.c.id,
                line_t.c.name,
                line_t.c.sku,
                product_t.c.name.label("product_name"),
                product_t.c.category,
                product_t.c.sku.label("product_sku"),
                product_t.c.vendor,
            )
            .select_from(line_t.outerjoin(product_t, product_t.c.id == line_t.c.product_id))
            .where(line_t.c.id.in_(chunk))
        )
        for r in (await (await _conn(session)).execute(stmt)).mappings():
            out[int(r["id"])] = {
                "name": r["product_name"] or r["name"],
                "category": r["category"],
                "sku": r["product_sku"] or r["sku"],
                "vendor": r["vendor"],
            }
    return out
