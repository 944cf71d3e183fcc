"""Exports (core.export and `clasp export`): the documented row shapes, on data written through the models."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

import core.export
from core.db import Database
from core.export import export_clients, export_outreach, export_sales
from core.models import (
    Associate,
    Client,
    ClientContact,
    Connector,
    ExternalRef,
    Location,
    Outreach,
    Sale,
    SaleLine,
)


async def seed(db: Database) -> dict[str, int]:
    """Two POS connectors, two stores, a merged duplicate, a return, a void, a walk-in, two currencies."""
    ids: dict[str, int] = {}
    async with db.transaction() as s:
        pos_a = Connector(type="lightspeed_r", kind="pos", name="Lightspeed Downtown")
        pos_b = Connector(type="lightspeed_x", kind="pos", name="Vend Uptown")
        downtown = Location(name="Downtown", currency="USD")
        uptown = Location(name="Uptown", currency="USD")
        toronto = Location(name="Toronto", currency="CAD", country="CA")
        s.add_all([pos_a, pos_b, downtown, uptown, toronto])
        await s.flush()
        associate = Associate(location_id=downtown.id, first_name="Sam", last_name="Seller")
        s.add(associate)
        await s.flush()

        ann = Client(
            first_name="Ann",
            last_name="Lee",
            birthday=date(1990, 5, 17),
            anniversary=date(2015, 9, 1),
            home_location_id=downtown.id,
        )
        nobody = Client(first_name="Nora", last_name="None")
        traveller = Client(first_name="Tom", last_name="Travel")
        s.add_all([ann, nobody, traveller])
        await s.flush()
        duplicate = Client(first_name="Ann", last_name="Lee", merged_into_id=ann.id)
        s.add(duplicate)
        await s.flush()
        s.add_all(
            [
                ClientContact(client_id=ann.id, kind="phone", value="+15551234567"),
                ClientContact(client_id=ann.id, kind="email", value="ann.lee@example.com", is_primary=False),
                ClientContact(client_id=ann.id, kind="email", value="ann@example.com", is_primary=True),
                ClientContact(client_id=duplicate.id, kind="email", value="dup@example.com"),
                ExternalRef(connector_id=pos_a.id, object_type="client", external_id="c-1", unified_id=ann.id),
                ExternalRef(connector_id=pos_b.id, object_type="client", external_id="77", unified_id=ann.id),
                ExternalRef(
                    connector_id=pos_a.id, object_type="location", external_id="shop-1", unified_id=downtown.id
                ),
                ExternalRef(
                    connector_id=pos_b.id, object_type="location", external_id="outlet-9", unified_id=downtown.id
                ),
                ExternalRef(
                    connector_id=pos_b.id, object_type="location", external_id="outlet-2", unified_id=uptown.id
                ),
                ExternalRef(
                    connector_id=pos_a.id, object_type="associate", external_id="emp-5", unified_id=associate.id
                ),
            ]
        )

        def at(day: int) -> datetime:
            return datetime(2026, 3, day, 15, 30, tzinfo=UTC)

        purchase = Sale(
            location_id=downtown.id,
            associate_id=associate.id,
            client_id=ann.id,
            status="completed",
            currency="USD",
            subtotal_minor=10000,
            tax_minor=800,
            total_minor=10800,
            occurred_at=at(1),
        )
        refund = Sale(
            location_id=uptown.id,
            client_id=ann.id,
            channel="ecom",
            status="completed",
            currency="USD",
            subtotal_minor=-2500,
            tax_minor=-200,
            total_minor=-2700,
            occurred_at=at(5),
        )
        voided = Sale(location_id=toronto.id, client_id=ann.id, status="voided", currency="USD", total_minor=99900,
                      occurred_at=at(6))  # fmt: skip
        walk_in = Sale(location_id=downtown.id, status="completed", currency="USD", total_minor=500, occurred_at=at(7))
        cad_1 = Sale(location_id=toronto.id, client_id=traveller.id, status="completed", currency="CAD",
                     total_minor=3000, occurred_at=at(8))  # fmt: skip
        cad_2 = Sale(location_id=toronto.id, client_id=traveller.id, status="completed", currency="CAD",
                     total_minor=4000, occurred_at=at(9))  # fmt: skip
        usd = Sale(location_id=downtown.id, client_id=traveller.id, status="completed", currency="USD",
                   total_minor=100000, occurred_at=at(10))  # fmt: skip
        s.add_all([purchase, refund, voided, walk_in, cad_1, cad_2, usd])
        await s.flush()
        ring = SaleLine(
            sale_id=purchase.id, sku="RNG-1", name="Ring", quantity=1, unit_price_minor=7500, total_minor=7500
        )
        chain = SaleLine(sale_id=purchase.id, sku="CHN-2", name="Chain", quantity=2, unit_price_minor=1250,
                         total_minor=2500)  # fmt: skip
        s.add_all([ring, chain])
        await s.flush()
        s.add_all(
            [
                SaleLine(
                    sale_id=refund.id,
                    sku="CHN-2",
                    name="Chain",
                    quantity=-2,
                    unit_price_minor=1250,
                    total_minor=-2500,
                    parent_line_id=chain.id,
                ),
                ExternalRef(connector_id=pos_a.id, object_type="sale", external_id="s-100", unified_id=purchase.id),
                ExternalRef(connector_id=pos_b.id, object_type="sale", external_id="r-7", unified_id=refund.id),
            ]
        )
        s.add(
            Outreach(
                client_id=ann.id,
                associate_id=associate.id,
                location_id=downtown.id,
                body="Happy birthday, Ann!",
                media_urls=["https://example.com/card.jpg"],
                state="delivered",
                provider_id="SM123",
                occasion_key=f"client:{ann.id}:birthday:2026",
                sent_at=at(2),
                delivered_at=at(3),
            )
        )
        ids.update(
            ann=ann.id, nobody=nobody.id, traveller=traveller.id, duplicate=duplicate.id, downtown=downtown.id,
            uptown=uptown.id, toronto=toronto.id, associate=associate.id, purchase=purchase.id, refund=refund.id,
            walk_in=walk_in.id, chain=chain.id, voided=voided.id,
        )  # fmt: skip
    return ids


async def collect(db: Database, exporter: Any) -> list[dict[str, Any]]:
    async with db.session() as session:
        return [row async for row in exporter(session)]


async def test_export_clients(db: Database) -> None:
    ids = await seed(db)
    rows = {r["id"]: r for r in await collect(db, export_clients)}
    # The duplicate merged into Ann is not a client of its own any more.
    assert set(rows) == {ids["ann"], ids["nobody"], ids["traveller"]}

    ann = rows[ids["ann"]]
    assert ann["first_name"] == "Ann" and ann["last_name"] == "Lee"
    assert ann["emails"] == ["ann@example.com", "ann.lee@example.com"]  # primary first
    assert ann["phones"] == ["+15551234567"]
    assert ann["birthday"] == "1990-05-17" and ann["anniversary"] == "2015-09-01"
    # Home store plus where she bought (the voided sale in Toronto was no purchase).
    assert ann["location_ids"] == sorted([ids["downtown"], ids["uptown"]])
    assert ann["external_refs"] == [
        {"connector": "Lightspeed Downtown", "external_id": "c-1"},
        {"connector": "Vend Uptown", "external_id": "77"},
    ]
    assert ann["sales_count"] == 2
    assert ann["lifetime_value_minor"] == 10800 - 2700
    assert ann["currency"] == "USD"

    nobody = rows[ids["nobody"]]
    assert (nobody["emails"], nobody["phones"], nobody["location_ids"], nobody["external_refs"]) == ([], [], [], [])
    assert (nobody["sales_count"], nobody["lifetime_value_minor"], nobody["currency"]) == (0, 0, None)
    assert nobody["birthday"] is None and nobody["anniversary"] is None

    # Mixed currencies: the most used one, and money never summed across currencies.
    traveller = rows[ids["traveller"]]
    assert traveller["currency"] == "CAD" and traveller["sales_count"] == 3
    assert traveller["lifetime_value_minor"] == 7000
    assert traveller["lifetime_value_by_currency"] == {"CAD": 7000, "USD": 100000}
    assert traveller["location_ids"] == sorted([ids["downtown"], ids["toronto"]])


async def test_export_sales(db: Database) -> None:
    ids = await seed(db)
    rows = {r["id"]: r for r in await collect(db, export_sales)}
    assert len(rows) == 7

    purchase = rows[ids["purchase"]]
    assert purchase["client_id"] == ids["ann"]
    assert (purchase["external_ref"], purchase["connector"]) == ("s-100", "Lightspeed Downtown")
    # The location's reference from the sale's own connector, not the other POS's.
    assert purchase["location"] == {"id": ids["downtown"], "name": "Downtown", "external_id": "shop-1"}
    assert purchase["associate"] == {"id": ids["associate"], "name": "Sam Seller", "external_id": "emp-5"}
    assert (purchase["channel"], purchase["status"], purchase["currency"]) == ("store", "completed", "USD")
    assert purchase["occurred_at"] == "2026-03-01T15:30:00Z"
    assert (purchase["subtotal_minor"], purchase["tax_minor"], purchase["total_minor"]) == (10000, 800, 10800)
    assert [
        (li["sku"], li["name"], li["quantity"], li["unit_price_minor"], li["total_minor"], li["is_return"])
        for li in purchase["lines"]
    ] == [("RNG-1", "Ring", 1, 7500, 7500, False), ("CHN-2", "Chain", 2, 1250, 2500, False)]

    refund = rows[ids["refund"]]
    assert (refund["external_ref"], refund["connector"], refund["channel"]) == ("r-7", "Vend Uptown", "ecom")
    assert refund["location"] == {"id": ids["uptown"], "name": "Uptown", "external_id": "outlet-2"}
    assert refund["associate"] is None
    [line] = refund["lines"]
    assert line["quantity"] == -2 and line["is_return"] is True and line["parent_line_id"] == ids["chain"]

    walk_in = rows[ids["walk_in"]]
    assert walk_in["client_id"] is None and walk_in["external_ref"] is None and walk_in["connector"] is None
    assert walk_in["lines"] == []
    assert rows[ids["voided"]]["status"] == "voided"


async def test_export_pages_through_ids(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Page boundaries change nothing: a page of 2 gives the rows a page of 1000 gives."""
    await seed(db)
    whole = {name: await collect(db, fn) for name, fn in core.export.EXPORTERS.items()}
    monkeypatch.setattr(core.export, "PAGE_SIZE", 2)
    paged = {name: await collect(db, fn) for name, fn in core.export.EXPORTERS.items()}
    assert paged == whole
    assert [r["id"] for r in paged["sales"]] == sorted(r["id"] for r in paged["sales"])


async def test_export_outreach(db: Database) -> None:
    ids = await seed(db)
    [row] = await collect(db, export_outreach)
    assert row["client_id"] == ids["ann"] and row["associate_id"] == ids["associate"]
    assert row["location_id"] == ids["downtown"]
    assert (row["channel"], row["direction"], row["kind"], row["state"]) == (
        "sms",
        "outbound",
        "marketing",
        "delivered",
    )
    assert row["body"] == "Happy birthday, Ann!" and row["media_urls"] == ["https://example.com/card.jpg"]
    assert row["provider_id"] == "SM123" and row["occasion_key"] == f"client:{ids['ann']}:birthday:2026"
    assert row["sent_at"] == "2026-03-02T15:30:00Z" and row["delivered_at"] == "2026-03-03T15:30:00Z"
    assert row["created_at"].endswith("Z")
    assert set(row) == set(core.export.OUTREACH_FIELDS)


async def test_clasp_export_jsonl_and_csv(clasp_cli, db: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = await seed(db)
    proc = clasp_cli("export", "clients", "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    clients = {r["id"]: r for r in map(json.loads, lines)}
    assert clients == {r["id"]: r for r in await collect(db, export_clients)}

    out = tmp_path / "sales.csv"
    proc = clasp_cli("export", "sales", "--format", "csv", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Exported 7 sales" in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "sales.csv.part").exists()
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == core.export.SALE_FIELDS
        rows = {int(r["id"]): r for r in reader}
    purchase = rows[ids["purchase"]]
    assert purchase["total_minor"] == "10800" and purchase["connector"] == "Lightspeed Downtown"
    # Nested values are JSON strings; a missing value is an empty cell.
    assert json.loads(purchase["location"]) == {"id": ids["downtown"], "name": "Downtown", "external_id": "shop-1"}
    assert [li["sku"] for li in json.loads(purchase["lines"])] == ["RNG-1", "CHN-2"]
    assert rows[ids["walk_in"]]["client_id"] == "" and rows[ids["walk_in"]]["associate"] == ""

    # A CSV of clients round-trips through a spreadsheet-style reader too.
    proc = clasp_cli("export", "clients", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    parsed = list(csv.DictReader(io.StringIO(proc.stdout)))
    ann = next(r for r in parsed if int(r["id"]) == ids["ann"])
    assert json.loads(ann["emails"]) == ["ann@example.com", "ann.lee@example.com"]
    assert ann["lifetime_value_minor"] == "8100" and ann["currency"] == "USD"


async def test_export_lines_carry_the_products_name_and_sku_when_the_pos_line_has_none(db: Database) -> None:
    """Lightspeed R lines carry only the item id (``name: ""``, ``sku: null``): the product has both."""
    from core.models import Product

    ids = await seed(db)
    async with db.transaction() as s:
        product = Product(sku="EAR-9", name="Diamond studs", vendor="Maison")
        s.add(product)
        await s.flush()
        sale = Sale(location_id=ids["downtown"], client_id=ids["ann"], status="completed", currency="USD",
                    total_minor=50000, occurred_at=datetime(2026, 3, 12, 10, tzinfo=UTC))  # fmt: skip
        s.add(sale)
        await s.flush()
        s.add_all([
            SaleLine(sale_id=sale.id, product_id=product.id, sku=None, name="", quantity=1, unit_price_minor=40000,
                     total_minor=40000),
            # A line with a name and SKU of its own keeps them, even when its product differs.
            SaleLine(sale_id=sale.id, product_id=product.id, sku="POS-SKU", name="Engraving", quantity=1,
                     unit_price_minor=10000, total_minor=10000),
        ])  # fmt: skip
        sale_id = sale.id
    rows = {r["id"]: r for r in await collect(db, export_sales)}
    assert [(li["name"], li["sku"]) for li in rows[sale_id]["lines"]] == [
        ("Diamond studs", "EAR-9"),
        ("Engraving", "POS-SKU"),
    ]
    # Lines of no product keep what the POS sent.
    assert [li["sku"] for li in rows[ids["purchase"]]["lines"]] == ["RNG-1", "CHN-2"]
