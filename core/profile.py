"""What a client's page shows: the header a jeweler reads first, purchases by line, the activity
timeline and preferences — each a fixed number of set-based queries, whatever the client's history.

Sales, lines and visits are scoped like every sale query (``core.access.location_filter``): a
manager sees what was bought at their stores. Money is never summed across currencies.

Preferences: a Clasp value (``client.preferences``, edited on the profile) wins over the POS's custom
field of the same meaning; POS custom fields are matched by name through PREFERENCE_ALIASES
(case-insensitive, spaces/dashes/underscores ignored), so "Ring Size", "ring_size" and "RingSize"
are all the ring size.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal, location_filter
from core.models import (
    Associate,
    AuditLog,
    Client,
    ClientMerge,
    Location,
    Outreach,
    Product,
    ProductImage,
    Sale,
    SaleLine,
    Task,
)
from core.timezones import zone

# The preferences a jeweler keeps, in the order the profile shows them: key → label.
PREFERENCES: dict[str, str] = {
    "ring_size": "Ring size",
    "metal": "Metal",
    "stones": "Stones",
    "style": "Style",
    "bracelet_size": "Bracelet size",
    "necklace_length": "Necklace length",
    "watch_size": "Watch size",
    "collects": "Collects",
}
# POS custom-field names (normalised: lower-case letters and digits only) meaning each preference.
PREFERENCE_ALIASES: dict[str, str] = {
    "ringsize": "ring_size",
    "size": "ring_size",
    "fingersize": "ring_size",
    "preferredmetal": "metal",
    "metal": "metal",
    "metalpreference": "metal",
    "preferredstone": "stones",
    "preferredstones": "stones",
    "stone": "stones",
    "stones": "stones",
    "gemstones": "stones",
    "style": "style",
    "preferredstyle": "style",
    "braceletsize": "bracelet_size",
    "wristsize": "bracelet_size",
    "necklacelength": "necklace_length",
    "chainlength": "necklace_length",
    "watchsize": "watch_size",
    "collects": "collects",
    "collections": "collects",
}
# Custom fields connectors already map onto the client's own fields (Lightspeed R's "Anniversary").
SHOWN_ELSEWHERE = {"anniversary", "birthday", "dateofbirth"}
SALES_CAP = 10
SALES_ALL = 500
TIMELINE_CAP = 40
EDIT_ACTIONS = ("client.edit", "client.merge", "client.unmerge", "consent.record", "consent.import")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass
class Preference:
    key: str
    label: str
    value: str
    source: str  # "clasp" or "pos"


def preferences_of(client: Client) -> list[Preference]:
    """Known preferences: Clasp's value, else the POS custom field's; then other Clasp keys."""
    pos: dict[str, str] = {}
    for name, value in (client.custom_fields or {}).items():
        key = PREFERENCE_ALIASES.get(_norm(str(name)))
        if key and value not in (None, "") and key not in pos:
            pos[key] = str(value)
    mine = {k: str(v) for k, v in (client.preferences or {}).items() if v not in (None, "")}
    out: list[Preference] = []
    for key in [*PREFERENCES, *sorted(k for k in mine if k not in PREFERENCES)]:
        label = PREFERENCES.get(key, key.replace("_", " ").capitalize())
        if key in mine:
            out.append(Preference(key, label, mine[key], "clasp"))
        elif key in pos:
            out.append(Preference(key, label, pos[key], "pos"))
    return out


def other_custom_fields(client: Client) -> list[tuple[str, str]]:
    """POS custom fields that are not a known preference (shown as they are)."""
    return [
        (str(k), str(v))
        for k, v in sorted((client.custom_fields or {}).items())
        if _norm(str(k)) not in PREFERENCE_ALIASES and _norm(str(k)) not in SHOWN_ELSEWHERE and v not in (None, "")
    ]


# ------------------------------------------------------------------------------------------ header


@dataclass
class Summary:
    lifetime: list[tuple[str, int]] = field(default_factory=list)  # (currency, net completed minor)
    purchases: int = 0
    first_visit: date | None = None
    last_visit: date | None = None
    stores: list[str] = field(default_factory=list)


def _local_day(moment: datetime, tz: str | None) -> date:
    return moment.astimezone(zone(tz)).date()


async def summary(session: AsyncSession, principal: Principal, client_id: int) -> Summary:
    """Lifetime value per currency (completed sales, refunds netted: a refund is a completed sale with
    a negative total), purchases, first and last visit (store dates), stores visited (most visits first)."""
    scope = and_(col(Sale.client_id) == client_id, col(Sale.status) == "completed",
                 location_filter(principal, col(Sale.location_id)))
    rows = (await session.exec(
        select(Sale.location_id, Location.name, Location.timezone, Sale.currency,
               func.count(), func.coalesce(func.sum(Sale.total_minor), 0),
               func.min(Sale.occurred_at), func.max(Sale.occurred_at),
               func.sum(case((col(Sale.total_minor) > 0, 1), else_=0)))
        .join(Location, col(Location.id) == col(Sale.location_id))
        .where(scope)
        .group_by(col(Sale.location_id), col(Location.name), col(Location.timezone), col(Sale.currency))
    )).all()
    out = Summary()
    money: dict[str, int] = defaultdict(int)
    visits: dict[str, int] = defaultdict(int)
    for _lid, name, tz, currency, count, total, first, last, positive in rows:
        money[currency] += int(total)
        out.purchases += int(positive or 0)
        visits[name] += int(count)
        first_day, last_day = _local_day(first, tz), _local_day(last, tz)
        out.first_visit = min(out.first_visit or first_day, first_day)
        out.last_visit = max(out.last_visit or last_day, last_day)
    out.lifetime = sorted(money.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    out.stores = sorted(visits, key=lambda n: (-visits[n], n))
    return out


# --------------------------------------------------------------------------------------- purchases


@dataclass
class LineView:
    id: int
    name: str
    sku: str | None
    vendor: str | None
    image: str | None
    quantity: int
    total_minor: int
    is_return: bool
    returned_from: date | None = None  # the day of the sale the returned line was bought in
    returned_sale_id: int | None = None


@dataclass
class SaleRow:
    id: int
    day: date
    location: str
    associate: str
    channel: str
    status: str
    currency: str
    total_minor: int
    lines: list[LineView]

    @property
    def is_refund(self) -> bool:
        if not self.lines:
            return self.total_minor < 0
        return all(line.is_return for line in self.lines)


@dataclass
class Purchases:
    sales: list[SaleRow]
    total: int
    capped: bool


def _first_image() -> Any:
    return (
        select(ProductImage.url)
        .where(col(ProductImage.product_id) == col(Product.id))
        .order_by(col(ProductImage.position), col(ProductImage.id))
        .limit(1)
        .scalar_subquery()
    )


async def purchases(
    session: AsyncSession, principal: Principal, client_id: int, *, show_all: bool = False
) -> Purchases:
    """The client's sales newest first (SALES_CAP of them, or up to SALES_ALL), each with its lines:
    product name, SKU, vendor and first image; a return line names what it returns and when."""
    scope = and_(col(Sale.client_id) == client_id, location_filter(principal, col(Sale.location_id)))
    total = int((await session.exec(select(func.count()).select_from(Sale).where(scope))).one())
    limit = SALES_ALL if show_all else SALES_CAP
    rows = (await session.exec(
        select(Sale, Location.name, Location.timezone, Associate.first_name, Associate.last_name)
        .join(Location, col(Location.id) == col(Sale.location_id))
        .outerjoin(Associate, col(Associate.id) == col(Sale.associate_id))
        .where(scope)
        .order_by(col(Sale.occurred_at).desc(), col(Sale.id).desc())
        .limit(limit)
    )).all()
    ids = [s.id for s, *_ in rows]
    lines: dict[int, list[LineView]] = defaultdict(list)
    parents: dict[int, int] = {}
    if ids:
        found = (await session.exec(
            select(SaleLine, Product.name, Product.sku, Product.vendor, _first_image())
            .outerjoin(Product, col(Product.id) == col(SaleLine.product_id))
            .where(col(SaleLine.sale_id).in_(ids))
            .order_by(col(SaleLine.sale_id), col(SaleLine.id))
        )).all()
        for line, p_name, p_sku, vendor, image in found:
            sku = line.sku or p_sku
            lines[line.sale_id].append(LineView(
                id=line.id, name=line.name or p_name or sku or "Item", sku=sku, vendor=vendor, image=image,  # type: ignore[arg-type]
                quantity=line.quantity, total_minor=line.total_minor, is_return=line.quantity < 0,
            ))
            if line.parent_line_id:
                parents[line.id] = line.parent_line_id  # type: ignore[index]
    if parents:
        bought = {
            lid: (sid, at, tz, name)
            for lid, sid, at, tz, name in (await session.exec(
                select(SaleLine.id, Sale.id, Sale.occurred_at, Location.timezone, SaleLine.name)
                .join(Sale, col(Sale.id) == col(SaleLine.sale_id))
                .join(Location, col(Location.id) == col(Sale.location_id))
                .where(col(SaleLine.id).in_(sorted(set(parents.values()))),
                       location_filter(principal, col(Sale.location_id)))
            )).all()
        }
        for sale_lines in lines.values():
            for view in sale_lines:
                parent = bought.get(parents.get(view.id, 0))
                if parent:
                    view.returned_sale_id = parent[0]
                    view.returned_from = _local_day(parent[1], parent[2])
    out = [
        SaleRow(
            id=s.id, day=_local_day(s.occurred_at, tz), location=loc, associate=f"{af or ''} {al or ''}".strip(),  # type: ignore[arg-type]
            channel=s.channel, status=s.status, currency=s.currency, total_minor=s.total_minor,
            lines=lines.get(s.id, []),  # type: ignore[arg-type]
        )
        for s, loc, tz, af, al in rows
    ]
    return Purchases(out, total, total > len(out))


# ---------------------------------------------------------------------------------------- timeline


@dataclass
class Event:
    at: datetime
    kind: str  # purchase, refund, text_out, text_in, task, edit, merge
    title: str
    detail: str = ""
    who: str = ""
    href: str | None = None
    amount: tuple[int, str] | None = None  # (minor units, currency)


async def timeline(session: AsyncSession, principal: Principal, client_id: int, sales: list[SaleRow] | None = None,
                   *, cap: int = TIMELINE_CAP) -> list[Event]:
    """The latest ``cap`` events of every kind, newest first: purchases and refunds (at the
    principal's stores), texts in and out, tasks, edits (with who made them) and merges."""
    events: list[Event] = []
    sale_rows = (await session.exec(
        select(Sale.id, Sale.occurred_at, Sale.total_minor, Sale.currency, Sale.status, Location.name)
        .join(Location, col(Location.id) == col(Sale.location_id))
        .where(col(Sale.client_id) == client_id, location_filter(principal, col(Sale.location_id)),
               col(Sale.status) == "completed")
        .order_by(col(Sale.occurred_at).desc()).limit(cap)
    )).all()
    for sid, at, total, currency, _status, loc in sale_rows:
        refund = total < 0
        events.append(Event(at, "refund" if refund else "purchase",
                            f"{'Refund' if refund else 'Purchase'} at {loc}", amount=(total, currency),
                            href=f"/admin/sales/{sid}"))
    texts = (await session.exec(
        select(Outreach.created_at, Outreach.direction, Outreach.channel, Outreach.body, Outreach.state,
               Associate.first_name, Associate.last_name)
        .outerjoin(Associate, col(Associate.id) == col(Outreach.associate_id))
        .where(col(Outreach.client_id) == client_id)
        .order_by(col(Outreach.created_at).desc()).limit(cap)
    )).all()
    for at, direction, channel, body, state, af, al in texts:
        inbound = direction == "inbound"
        label = "Text" if channel in ("sms", "mms") else channel.capitalize()
        events.append(Event(at, "text_in" if inbound else "text_out",
                            f"{label} {'received' if inbound else 'sent'}" + ("" if inbound else f" · {state}"),
                            (body or "")[:160], who=f"{af or ''} {al or ''}".strip(),
                            href=f"/admin/clients/{client_id}/messages"))
    tasks = (await session.exec(
        select(Task.created_at, Task.title, Task.state, Task.done_at, Task.kind, Associate.first_name,
               Associate.last_name)
        .outerjoin(Associate, col(Associate.id) == col(Task.associate_id))
        .where(col(Task.client_id) == client_id)
        .order_by(col(Task.created_at).desc()).limit(cap)
    )).all()
    for at, title, state, done_at, _kind, af, al in tasks:
        events.append(Event(done_at or at, "task", f"Task {'done' if state == 'done' else state}: {title}",
                            who=f"{af or ''} {al or ''}".strip()))
    edits = (await session.exec(
        select(AuditLog.at, AuditLog.action, AuditLog.actor, AuditLog.details)
        .where(col(AuditLog.target_type) == "client", col(AuditLog.target_id) == str(client_id),
               or_(col(AuditLog.action).in_(EDIT_ACTIONS), col(AuditLog.action).like("client.%")))
        .order_by(col(AuditLog.at).desc()).limit(cap)
    )).all()
    for at, action, actor, details in edits:
        details = details or {}
        if action == "client.edit":
            fields = sorted((details.get("changes") or {}).keys())
            events.append(Event(at, "edit", "Edited " + ", ".join(f.replace("_", " ") for f in fields), who=actor))
        elif action == "client.merge":
            events.append(Event(at, "merge", f"Merged client #{details.get('absorbed_id')} into this one", who=actor))
        elif action == "client.unmerge":
            events.append(Event(at, "merge", f"Undid the merge of client #{details.get('absorbed_id')}", who=actor))
        else:
            events.append(Event(at, "edit", action.replace(".", " ").replace("_", " ").capitalize(), who=actor))
    merges = (await session.exec(
        select(ClientMerge.created_at, ClientMerge.absorbed_id, ClientMerge.reason, ClientMerge.actor)
        .where(col(ClientMerge.survivor_id) == client_id, col(ClientMerge.reason).like("rule:%"))
        .order_by(col(ClientMerge.id).desc()).limit(cap)
    )).all()
    for at, absorbed, reason, actor in merges:
        events.append(Event(at, "merge", f"Merged client #{absorbed} into this one (same {reason[5:]})", who=actor))
    events.sort(key=lambda e: _aware(e.at), reverse=True)
    return events[:cap]


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
