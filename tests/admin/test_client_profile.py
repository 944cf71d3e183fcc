"""The client page a jeweler reads: header (lifetime value per currency, visits, stores), purchases by
line with product, image, vendor and associate, refunds as refunds of their line, the activity
timeline, preferences from POS custom fields and Clasp edits, tags and the home store. Real HTTP
against the real app, on both backends."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlmodel import col, select

from core.clients import edit_client
from core.identity import merge_clients
from core.models import (
    Associate,
    AuditLog,
    ChangeFeed,
    Client,
    ExternalRef,
    Outreach,
    Product,
    ProductImage,
    Sale,
    SaleLine,
    Task,
    utcnow,
)
from core.runtime import Runtime
from core.timezones import zone
from core.writeback import plan_write
from tests.admin.conftest import Org, text_of
from tests.admin.test_client_edit import edit_form


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 17, 0, tzinfo=UTC)


async def seed_history(rt: Runtime, org: Org, *, extra_sales: int = 0) -> dict[str, int]:
    """Hope (bought Downtown from Ann, and at Harbor) gets a ring with two images, studs sold on a
    Lightspeed-like line (no name, no SKU: the product has them), the studs returned, a sale in CAD."""
    cid = org.clients["harbor_bought_downtown"]
    ids: dict[str, int] = {}
    async with rt.db.transaction() as s:
        ann = (await s.exec(select(Associate).where(Associate.first_name == "Ann"))).one()
        ring = Product(sku="RNG-77", name="Solitaire Ring, Platinum", vendor="Tiffany & Co.")
        studs = Product(sku="EAR-12", name="Diamond Studs 1ct", vendor="Mikimoto")
        s.add_all([ring, studs])
        await s.flush()
        s.add_all([
            ProductImage(product_id=ring.id, url="https://img.example/ring-second.jpg", position=2),
            ProductImage(product_id=ring.id, url="https://img.example/ring-first.jpg", position=1),
        ])
        bought = Sale(location_id=org.locations["downtown"], associate_id=ann.id, client_id=cid, status="completed",
                      currency="USD", total_minor=1_250_000 + 136_094, occurred_at=at(2025, 3, 4))
        s.add(bought)
        await s.flush()
        ring_line = SaleLine(sale_id=bought.id, product_id=ring.id, sku=None, name="", quantity=1,
                             unit_price_minor=1_250_000, total_minor=1_250_000)
        studs_line = SaleLine(sale_id=bought.id, product_id=studs.id, sku=None, name="", quantity=1,
                              unit_price_minor=136_094, total_minor=136_094)
        s.add_all([ring_line, studs_line])
        await s.flush()
        refund = Sale(location_id=org.locations["downtown"], client_id=cid, status="completed", currency="USD",
                      total_minor=-136_094, occurred_at=at(2025, 3, 20))
        cad = Sale(location_id=org.locations["harbor"], client_id=cid, status="completed", currency="CAD",
                   total_minor=45_000, occurred_at=at(2024, 11, 2))
        s.add_all([refund, cad])
        await s.flush()
        s.add(SaleLine(sale_id=refund.id, product_id=studs.id, sku=None, name="", quantity=-1,
                       unit_price_minor=136_094, total_minor=-136_094, parent_line_id=studs_line.id))
        for i in range(extra_sales):
            extra = Sale(location_id=org.locations["downtown"], client_id=cid, status="completed", currency="USD",
                         total_minor=1000 + i, occurred_at=at(2023, 1, 1 + i % 28))
            s.add(extra)
            await s.flush()
            s.add(SaleLine(sale_id=extra.id, product_id=ring.id, quantity=1, unit_price_minor=1000 + i,
                           total_minor=1000 + i))
        ids.update(client=cid, bought=bought.id, refund=refund.id, cad=cad.id)  # type: ignore[arg-type]
    return ids


async def test_the_profile_shows_lines_with_products_images_vendors_associates_and_refunds_of_their_line(
    rt: Runtime, panels: Any, org: Org
) -> None:
    ids = await seed_history(rt, org)
    owner = await panels(org.users["owner"])
    resp = await owner.get(f"/admin/clients/{ids['client']}")
    assert resp.status_code == 200, resp.text
    html, text = resp.text, text_of(resp.text)

    # Lines name their product (the POS line had no name or SKU), vendor and SKU; the first image by position.
    assert "Solitaire Ring, Platinum" in text and "Tiffany &amp; Co." in html and "SKU RNG-77" in text
    assert 'src="https://img.example/ring-first.jpg"' in html and "ring-second.jpg" not in html
    assert "Ann Lee" in text  # the associate of the sale
    # Each sale opens the sale page.
    for sale in ("bought", "refund", "cad"):
        assert f'href="/admin/sales/{ids[sale]}"' in html
    # The refund is a refund of the line it returns, with the day that line was bought.
    assert "Returned: Diamond Studs 1ct from" in text and "Mar 4, 2025" in text
    assert f'<a href="/admin/sales/{ids["bought"]}">Mar 4, 2025</a>' in html
    assert "completed −" not in text and "completed -" not in text

    # Header: lifetime value per currency, net of the refund; visits; stores.
    # USD: the org's 1,250.00 and 990.00, our 13,860.94 less the 1,360.94 refund; CAD apart.
    ltv = dict(re.findall(r'data-currency="([A-Z]{3})">([^<]+)<', html))
    assert ltv == {"USD": "14,740.00 USD", "CAD": "450.00 CAD"}
    assert re.search(r'class="first-visit">Nov 2, 2024<', html)
    last = (utcnow() - timedelta(days=3)).astimezone(zone("America/New_York")).strftime("%b %-d, %Y")
    assert re.search(rf'class="last-visit">{last}<', html)  # the org's Downtown sale, three days ago
    stores = re.search(r'class="stores-visited">([^<]+)<', html)
    # Downtown: three sales here (the org's own and two of ours); Harbor: two.
    assert stores is not None and stores.group(1) == "Downtown, Harbor"


async def test_purchases_are_capped_with_show_all_and_the_page_costs_a_fixed_number_of_queries(
    rt: Runtime, panels: Any, org: Org
) -> None:
    owner = await panels(org.users["owner"])
    cid = org.clients["harbor_bought_downtown"]
    counts: list[int] = []
    measuring = [False]

    def count(*_args: Any) -> None:
        if measuring[0]:
            counts[-1] += 1

    async def page(url: str) -> Any:
        counts.append(0)
        measuring[0] = True
        try:
            resp = await owner.get(url)
        finally:
            measuring[0] = False
        assert resp.status_code == 200, resp.text
        return resp

    event.listen(rt.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        await seed_history(rt, org)
        await page(f"/admin/clients/{cid}")
        await seed_history(rt, org, extra_sales=30)
        resp = await page(f"/admin/clients/{cid}")
        everything = await page(f"/admin/clients/{cid}?sales=all")
    finally:
        event.remove(rt.db.engine.sync_engine, "before_cursor_execute", count)
    # Ten times the sales, lines and refunds: not one query more.
    assert counts[0] == counts[1] == counts[2], counts
    assert resp.text.count('class="card purchase') == 10
    assert f'href="/admin/clients/{cid}?sales=all#purchases"' in resp.text
    assert everything.text.count('class="card purchase') == 2 + 3 + 3 + 30
    assert "?sales=all#purchases" not in everything.text


async def test_the_timeline_has_purchases_texts_tasks_edits_and_merges(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await seed_history(rt, org)
    cid = ids["client"]
    async with rt.db.transaction() as s:
        s.add_all([
            Outreach(client_id=cid, direction="outbound", kind="marketing", body="Happy birthday, Hope!",
                     state="delivered", created_at=at(2025, 4, 1)),
            Outreach(client_id=cid, direction="inbound", kind="transactional", body="Thank you so much!",
                     state="received", created_at=at(2025, 4, 2)),
            Task(client_id=cid, title="Call about the ring resizing", kind="call", state="done",
                 due_at=at(2025, 4, 3), done_at=at(2025, 4, 4)),
        ])
        twin = Client(first_name="Hope", last_name="Hill")
        s.add(twin)
        await s.flush()
        await merge_clients(s, cid, twin.id, actor="owner@example.com", reason="manual:user:1")  # type: ignore[arg-type]
        await edit_client(s, cid, {"note": "Prefers Saturday visits"}, actor="owner@example.com", origin="user:1")
    owner = await panels(org.users["owner"])
    html = (await owner.get(f"/admin/clients/{cid}")).text
    timeline = html[html.index('id="timeline"'):]
    kinds = re.findall(r'data-kind="([a-z_]+)"', timeline)
    assert {"purchase", "refund", "text_out", "text_in", "task", "edit", "merge"} <= set(kinds)
    text = text_of(timeline)
    assert "Happy birthday, Hope!" in text and "Thank you so much!" in text
    assert "Task done: Call about the ring resizing" in text
    assert "Edited note" in text and "owner@example.com" in text  # who made the edit
    assert f"Merged client #{twin.id} into this one" in text
    # Newest first: the edit and merge of today lead, the oldest purchase comes last.
    assert kinds[0] in ("edit", "merge") and kinds[-1] == "purchase"


async def test_preferences_come_from_pos_custom_fields_and_a_clasp_edit_wins_tags_too(
    rt: Runtime, panels: Any, org: Org
) -> None:
    cid = org.clients["ann_client"]
    async with rt.db.transaction() as s:
        client = await s.get(Client, cid)
        assert client is not None
        client.custom_fields = {"Ring Size": "7", "Preferred Metal": "Rose Gold", "Wants Catalog": "yes"}
        s.add(client)
        s.add(ExternalRef(connector_id=org.connector_id, object_type="client", external_id="ls-1", unified_id=cid))
    ann = await panels(org.users["ann"])
    html = (await ann.get(f"/admin/clients/{cid}")).text
    assert re.search(r'data-pref="ring_size"><dt>Ring size</dt><dd>7 <span class="muted small">\(from the POS\)', html)
    assert re.search(r'data-pref="metal"><dt>Metal</dt><dd>Rose Gold ', html)
    assert "Wants Catalog" in html  # other POS fields are shown as they are

    form = await edit_form(ann, cid)
    assert form["pref_ring_size"] == "" and form["tags"] == ""
    form.update({"pref_ring_size": "6.5", "pref_stones": "Sapphire, emerald", "tags": "VIP, bridal, vip"})
    resp = await ann.post(f"/admin/clients/{cid}/edit", form, htmx=True)
    assert resp.status_code == 200 and "Saved." in resp.text
    assert re.search(r'data-pref="ring_size"><dt>Ring size</dt><dd>6.5</dd>', resp.text)  # Clasp's wins
    assert re.search(r'data-pref="metal"><dt>Metal</dt><dd>Rose Gold ', resp.text)  # the POS's still shows
    assert re.findall(r'<span class="badge tag">([^<]+)</span>', resp.text) == ["VIP", "bridal"]

    async with rt.db.session() as s:
        client = await s.get(Client, cid)
        assert client is not None
        assert client.preferences == {"ring_size": "6.5", "stones": "Sapphire, emerald"}
        assert client.tags == ["VIP", "bridal"]
        assert client.custom_fields["Ring Size"] == "7"  # the POS's value is left as it came
        row = (await s.exec(select(ChangeFeed).where(ChangeFeed.entity_id == cid, ChangeFeed.entity == "client")
                            .order_by(col(ChangeFeed.id).desc()))).first()
        assert row is not None and set(row.changes) == {"preferences", "tags"}
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "client.edit"))).one()
        assert audit.actor == org.users["ann"]
        assert audit.details["changes"]["tags"] == {"from": [], "to": ["VIP", "bridal"]}
        # Writeback leaves Clasp-only fields alone: nothing of this edit is written to the POS.
        plan = await plan_write(s, org.connector_id, client_id=cid, changes=row.changes, changed_at=row.created_at,
                                feed_id=row.id)
        assert plan.changes == {} and plan.note == "no field the POS can hold"

    # Emptying a Clasp value hands the preference back to the POS's field.
    form = await edit_form(ann, cid)
    assert form["pref_ring_size"] == "6.5" and form["tags"] == "VIP, bridal"
    form.update({"pref_ring_size": "", "tags": "VIP"})
    resp = await ann.post(f"/admin/clients/{cid}/edit", form, htmx=True)
    assert re.search(r'data-pref="ring_size"><dt>Ring size</dt><dd>7 <span', resp.text)
    assert re.findall(r'<span class="badge tag">([^<]+)</span>', resp.text) == ["VIP"]


async def test_a_person_sets_the_home_store_and_hands_it_back_to_the_rule(rt: Runtime, panels: Any, org: Org) -> None:
    cid = org.clients["harbor_bought_downtown"]
    owner = await panels(org.users["owner"])
    form = await edit_form(owner, cid)
    page = (await owner.get(f"/admin/clients/{cid}/edit")).text
    assert " selected>" not in page  # the org's home came from elsewhere: "automatic"
    form["home_location"] = str(org.locations["uptown"])
    resp = await owner.post(f"/admin/clients/{cid}/edit", form, htmx=True)
    assert re.search(r'class="home-store">Uptown <span class="muted small" data-source="manual">\(set by a person\)',
                     resp.text)
    page = (await owner.get(f"/admin/clients/{cid}/edit")).text
    assert f'<option value="{org.locations["uptown"]}" selected>Uptown</option>' in page
    form["home_location"] = ""
    resp = await owner.post(f"/admin/clients/{cid}/edit", form, htmx=True)
    # Back to the rule: Downtown (3 days ago) and Harbor (30 days ago) have one sale day each; the
    # most recent wins.
    assert re.search(r'class="home-store">Downtown <span class="muted small" data-source="derived">', resp.text)
    form["home_location"] = "999999"
    resp = await owner.post(f"/admin/clients/{cid}/edit", form, htmx=True)
    assert "no location 999999" in resp.text
