"""A small retail world for the automation tests: three stores in three timezones, associates,
clients with birthdays, phones and consent, and helpers to add sales. Built through the models,
the way a sync leaves the unified store."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from core.models import Associate, Client, ClientContact, Location, Product, Sale, SaleLine
from core.outreach.consent import record_consent
from core.plugins import load_plugins
from core.runtime import Runtime, create_runtime
from core.settings import Settings


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def automation_runtime(settings: Settings) -> Runtime:
    """A runtime with the built-in automations plugin, whether or not its entry point is installed yet."""
    installed = {ep.value for ep in importlib.metadata.entry_points(group="clasp")}
    if "plugins.automations.plugin" in installed:
        return create_runtime(settings)
    from plugins.automations import plugin

    return create_runtime(settings, plugins=load_plugins(settings, extra=[plugin]))


@dataclass
class World:
    locations: dict[str, int] = field(default_factory=dict)
    associates: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)
    products: dict[str, int] = field(default_factory=dict)


STORES = (
    ("nyc", "Fifth Avenue", "America/New_York", "own"),
    ("la", "Rodeo Drive", "America/Los_Angeles", "store"),
    ("tokyo", "Ginza", "Asia/Tokyo", "own"),
)
STAFF = (("maya", "nyc"), ("sam", "nyc"), ("leo", "la"), ("kenji", "tokyo"))
# name → (home, birthday, anniversary, phone, consent)
PEOPLE: dict[str, tuple[str | None, date | None, date | None, str, str | None]] = {
    "ann": ("nyc", date(1985, 7, 1), None, "+12125550134", "opted_in"),
    "ben": ("la", date(1990, 7, 1), date(2015, 7, 1), "+13105550188", "opted_in"),
    "cleo": ("tokyo", date(1979, 7, 1), None, "+819012345678", "opted_in"),
    "dan": ("nyc", date(1988, 7, 1), None, "+12125550177", None),
    "lea": ("nyc", date(1992, 2, 29), None, "+12125550155", "opted_in"),
    "zed": ("nyc", None, None, "+12125550166", "opted_in"),
}


async def build_world(rt: Runtime) -> World:
    w = World()
    async with rt.db.transaction() as s:
        for key, name, tz, mode in STORES:
            loc = Location(name=name, timezone=tz, outreach_mode=mode, country="JP" if key == "tokyo" else "US")
            s.add(loc)
            await s.flush()
            w.locations[key] = loc.id  # type: ignore[assignment]
        for key, loc in STAFF:
            a = Associate(first_name=key.title(), last_name="Staff", location_id=w.locations[loc])
            s.add(a)
            await s.flush()
            w.associates[key] = a.id  # type: ignore[assignment]
        for key, (home, bday, anniv, phone, consent) in PEOPLE.items():
            c = Client(first_name=key.title(), last_name="Client", birthday=bday, anniversary=anniv,
                       home_location_id=w.locations[home] if home else None)
            s.add(c)
            await s.flush()
            s.add(ClientContact(client_id=c.id, kind="phone", value=phone, is_primary=True))  # type: ignore[arg-type]
            if consent:
                await record_consent(s, c.id, "sms", consent, source="test", at=utc("2020-01-01T00:00"))  # type: ignore[arg-type]
            w.clients[key] = c.id  # type: ignore[assignment]
        for key, category in (("ring", "Rings"), ("necklace", "Necklaces"), ("watch", None)):
            p = Product(name=f"Gold {key}", category=category, sku=key.upper())
            s.add(p)
            await s.flush()
            w.products[key] = p.id  # type: ignore[assignment]
    return w


async def add_sale(
    rt: Runtime,
    w: World,
    *,
    client: str | None,
    store: str,
    at: str,
    associate: str | None = None,
    total: int = 125000,
    status: str = "completed",
    lines: list[tuple[str, int]] | None = None,
    refund_of: int | None = None,
) -> int:
    """A sale; ``lines`` are (product key, quantity); ``refund_of`` makes it return that line id."""
    async with rt.db.transaction() as s:
        sale = Sale(location_id=w.locations[store], client_id=w.clients[client] if client else None,
                    associate_id=w.associates[associate] if associate else None, status=status, currency="USD",
                    subtotal_minor=total, total_minor=total, occurred_at=utc(at))
        s.add(sale)
        await s.flush()
        for product, qty in lines or [("ring", 1)]:
            s.add(SaleLine(sale_id=sale.id, product_id=w.products[product], name=f"Gold {product}",  # type: ignore[arg-type]
                           quantity=qty, unit_price_minor=abs(total), total_minor=total,
                           parent_line_id=refund_of if qty < 0 else None))
        return sale.id  # type: ignore[return-value]


async def first_line(rt: Runtime, sale_id: int) -> int:
    from sqlmodel import select

    async with rt.db.session() as s:
        return (await s.exec(select(SaleLine.id).where(SaleLine.sale_id == sale_id))).first()  # type: ignore[return-value]


async def setup(rt: Runtime, name: str, **kw: Any) -> None:
    """Configure and enable an automation the way the CLI does."""
    from core.automations.store import configure, ensure_automations

    async with rt.db.transaction() as s:
        await ensure_automations(s, rt.registry)
        await configure(s, rt.registry, name, enabled=True, **kw)
