"""Helpers for the Salesforce tests: the sandbox on a real socket, a connector configured against it,
and a small jewelry store whose clients come in through identity ingest and whose sales and products
are written with their change-feed rows, as the sync engine writes them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core import feed
from core.connectors import add_connector
from core.identity import ingest_clients
from core.models import Associate, Connector, Location, Product, Sale, SaleLine
from core.plugin import ClientRecord, ContactRecord
from core.runtime import Runtime
from plugins.crm_salesforce.sandbox.app import create_app
from tests.servers import ThreadServer

NO_SETTLE = timedelta(0)


class SandboxServer(ThreadServer):
    """The Salesforce sandbox on a free port (its app built in the server's own loop), with its back door."""

    def __init__(self, **options: Any) -> None:
        self.options = options

        async def build() -> tuple[Any, Any]:
            async def nothing() -> None:
                return None

            return create_app(**{"bulk_delay": 0.01, **self.options}), nothing

        super().__init__(build, name="salesforce-sandbox")

    # back door
    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, payload: Any = None) -> Any:
        response = httpx.post(self.url + path, json=payload or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def patch(self, path: str, payload: Any) -> Any:
        response = httpx.patch(self.url + path, json=payload, timeout=10)
        response.raise_for_status()
        return response.json()

    def delete(self, path: str) -> None:
        httpx.delete(self.url + path, timeout=10).raise_for_status()

    def records(self, sobject: str) -> list[dict[str, Any]]:
        return self.get(f"/_sandbox/records/{sobject}")["records"]  # type: ignore[no-any-return]

    def by(self, sobject: str, field_name: str) -> dict[str, dict[str, Any]]:
        """Records keyed by a field; fails on two records sharing a value (a duplicate)."""
        out: dict[str, dict[str, Any]] = {}
        for rec in self.records(sobject):
            key = rec.get(field_name)
            if key is None:
                continue
            assert str(key) not in out, f"two {sobject} records with {field_name}={key}"
            out[str(key)] = rec
        return out

    def seed(self, sobject: str, **values: Any) -> dict[str, Any]:
        return self.post(f"/_sandbox/records/{sobject}", values)  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self.get("/_sandbox/stats")  # type: ignore[no-any-return]


@contextmanager
def serve_sandbox(**options: Any) -> Iterator[SandboxServer]:
    server = SandboxServer(**options).start()
    try:
        yield server
    finally:
        server.stop()


async def add_salesforce(rt: Runtime, sandbox: SandboxServer, name: str = "Salesforce", **overrides: Any) -> int:
    from plugins.crm_salesforce.plugin import _sandbox_settings

    values = {**_sandbox_settings(sandbox.url), "bulk_poll_seconds": 0.05, **overrides}
    async with rt.db.transaction() as session:
        connector = await add_connector(rt, session, type_name="salesforce", name=name, values=values)
        assert connector.id is not None
        return connector.id


# ---------------------------------------------------------------------------------------- the store


@dataclass
class Store:
    pos_id: int = 0
    locations: dict[str, int] = field(default_factory=dict)
    associates: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)  # POS external id → unified client id
    products: dict[str, int] = field(default_factory=dict)  # sku → product id
    sales: dict[str, int] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)


async def make_store(rt: Runtime) -> Store:
    store = Store()
    async with rt.db.transaction() as s:
        pos = Connector(type="lightspeed_r", kind="pos", name="Till")
        loc = Location(name="Fifth Avenue", timezone="America/New_York", country="US")
        s.add_all([pos, loc])
        await s.flush()
        assert pos.id is not None and loc.id is not None
        store.pos_id = pos.id
        store.locations["shop-1"] = loc.id
        assoc = Associate(first_name="Maya", last_name="Stone", location_id=loc.id)
        s.add(assoc)
        await s.flush()
        assert assoc.id is not None
        store.associates["maya"] = assoc.id
    return store


async def add_clients(rt: Runtime, store: Store, *records: ClientRecord) -> list[int]:
    async with rt.db.transaction() as s:
        results = await ingest_clients(s, connector_id=store.pos_id, records=list(records),
                                       location_ids={"shop-1": store.locations["shop-1"]},
                                       origin=f"connector:{store.pos_id}")
    for rec, res in zip(records, results, strict=True):
        store.clients[rec.external_id] = res.client_id
    return [r.client_id for r in results]


def client(ext: str, first: str, last: str, *contacts: str) -> ClientRecord:
    items = [ContactRecord(kind="email" if "@" in c else "phone", value=c, is_primary=i < 2)
             for i, c in enumerate(contacts)]
    return ClientRecord(external_id=ext, first_name=first, last_name=last, contacts=items,
                        home_location_external_id="shop-1")


async def add_product(rt: Runtime, store: Store, sku: str | None, name: str, price_minor: int = 0) -> int:
    async with rt.db.transaction() as s:
        product = Product(sku=sku, name=name, price_minor=price_minor, currency="USD", category="Rings")
        s.add(product)
        await s.flush()
        assert product.id is not None
        await feed.append(s, entity="product", entity_id=product.id, op="insert", changes={"name": name},
                          origin=f"connector:{store.pos_id}", origin_connector_id=store.pos_id)
    store.products[sku or f"#{product.id}"] = product.id
    return product.id


async def add_sale(
    rt: Runtime,
    store: Store,
    key: str,
    client_id: int | None,
    lines: list[tuple[int | None, int, int]],  # (product id, quantity, unit price minor)
    *,
    status: str = "completed",
    tax_minor: int = 0,
    currency: str = "USD",
) -> int:
    subtotal = sum(q * p for _, q, p in lines)
    async with rt.db.transaction() as s:
        sale = Sale(location_id=store.locations["shop-1"], associate_id=store.associates["maya"], client_id=client_id,
                    status=status, currency=currency, subtotal_minor=subtotal, tax_minor=tax_minor,
                    total_minor=subtotal + tax_minor, occurred_at=datetime(2026, 11, 20, 15, 30, tzinfo=UTC))
        s.add(sale)
        await s.flush()
        assert sale.id is not None
        ids = []
        for product_id, qty, price in lines:
            line = SaleLine(sale_id=sale.id, product_id=product_id, name="item", quantity=qty, unit_price_minor=price,
                            total_minor=qty * price)
            s.add(line)
            await s.flush()
            assert line.id is not None
            ids.append(line.id)
        await feed.append(s, entity="sale", entity_id=sale.id, op="insert", changes={"status": status},
                          origin=f"connector:{store.pos_id}", origin_connector_id=store.pos_id)
    store.sales[key] = sale.id
    store.lines[key] = ids
    return sale.id


async def set_sale_status(rt: Runtime, store: Store, sale_id: int, status: str) -> None:
    async with rt.db.transaction() as s:
        sale = await s.get(Sale, sale_id)
        assert sale is not None
        sale.status = status
        s.add(sale)
        await feed.append(s, entity="sale", entity_id=sale_id, op="update", changes={"status": status},
                          origin=f"connector:{store.pos_id}", origin_connector_id=store.pos_id)
