"""Home store (core.home_store): derived where the POS names none, from sales synced through the
test POS over HTTP, recomputed as new sales arrive, a person's choice kept, merges recomputed by the
feed consumer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from core.clients import edit_client
from core.home_store import ORIGIN, consume_feed, derive_home_stores
from core.identity import merge_clients, unmerge
from core.models import ChangeFeed, Client, ExternalRef, Location
from core.runtime import Runtime
from core.sync import SyncOptions, run_sync
from tests.testpos.fake import FakePOS
from tests.testpos.fixtures import add_testpos

FAST = SyncOptions(retry_base_delay=0.01, retry_max_delay=0.05)
NOW = timedelta(0)


def world(pos: FakePOS) -> None:
    """Two shops; Ada (no home shop: like a Lightspeed R customer), Bea (the POS names Shop 2)."""
    for i in (1, 2):
        pos.put("shops", {"id": f"S{i}", "name": f"Shop {i}", "tz": "America/New_York", "currency": "USD",
                          "country": "US"})
    pos.put("employees", {"id": "E1", "first": "Emp", "last": "One", "shop_id": "S1", "active": True})
    pos.put("items", {"id": "I1", "sku": "SKU-1", "description": "Ring", "price": "100.00", "currency": "USD"})
    pos.put("customers", {"id": "C1", "first_name": "Ada", "last_name": "Lovelace",
                          "emails": [{"address": "ada@example.com", "primary": True}], "shop_id": None})
    pos.put("customers", {"id": "C2", "first_name": "Bea", "last_name": "Bell",
                          "emails": [{"address": "bea@example.com", "primary": True}], "shop_id": "S2"})


def sell(pos: FakePOS, sale_id: str, customer: str, shop: str, day: str, total: str = "100.00") -> None:
    qty = -1 if total.startswith("-") else 1
    pos.put("sales", {
        "id": sale_id, "shop_id": shop, "employee_id": "E1", "customer_id": customer, "status": "completed",
        "currency": "USD", "subtotal": total, "tax": "0.00", "total": total, "completed_at": f"{day}T15:00:00Z",
        "lines": [{"id": f"L-{sale_id}", "item_id": "I1", "sku": "SKU-1", "description": "Ring", "qty": qty,
                   "unit_price": total.lstrip("-"), "total": total, "refund_of": None}],
    })


async def client_of(rt: Runtime, connector_id: int, ext: str) -> Client:
    async with rt.db.session() as s:
        ref = (await s.exec(select(ExternalRef).where(
            ExternalRef.connector_id == connector_id, ExternalRef.object_type == "client",
            ExternalRef.external_id == ext))).one()
        client = await s.get(Client, ref.unified_id)
        assert client is not None
        return client


async def shop(rt: Runtime, name: str) -> int:
    async with rt.db.session() as s:
        return (await s.exec(select(Location.id).where(Location.name == name))).one()  # type: ignore[return-value]


async def sync_and_consume(rt: Runtime, cid: int) -> dict[str, int]:
    run = await run_sync(rt, cid, options=FAST)
    assert run.status == "succeeded", run.message
    return await consume_feed(rt, settle=NOW)


async def test_home_store_is_derived_from_synced_sales_recomputed_and_a_persons_choice_kept(
    pos_rt: Runtime, fake_pos: FakePOS
) -> None:
    rt = pos_rt
    world(fake_pos)
    cid = await add_testpos(rt, fake_pos)
    # Two visits to Shop 1 (two pieces the second day: still one visit), one to Shop 2, and a refund
    # at Shop 2 (not a purchase); Bea, whose home the POS names, buys at Shop 1 only.
    sell(fake_pos, "T1", "C1", "S1", "2026-01-02")
    sell(fake_pos, "T2", "C1", "S2", "2026-01-03")
    sell(fake_pos, "T3", "C1", "S1", "2026-01-04")
    sell(fake_pos, "T4", "C1", "S1", "2026-01-04")
    sell(fake_pos, "T5", "C1", "S2", "2026-01-06", total="-100.00")
    sell(fake_pos, "T6", "C2", "S1", "2026-01-05")
    # The first run of the consumer is one pass over everything.
    assert (await consume_feed(rt, settle=NOW))["full_pass"] == 1
    await sync_and_consume(rt, cid)
    s1, s2 = await shop(rt, "Shop 1"), await shop(rt, "Shop 2")
    ada = await client_of(rt, cid, "C1")
    assert (ada.home_location_id, ada.home_location_source) == (s1, "derived")
    bea = await client_of(rt, cid, "C2")
    assert (bea.home_location_id, bea.home_location_source) == (s2, "pos")
    async with rt.db.session() as s:
        rows = (await s.exec(select(ChangeFeed).where(ChangeFeed.origin == ORIGIN))).all()
    assert [(r.entity_id, r.changes) for r in rows] == [
        (ada.id, {"home_location_id": s1, "home_location_source": "derived"})
    ]

    # Two more visits to Shop 2: three days against two, Shop 2 is home now.
    sell(fake_pos, "T7", "C1", "S2", "2026-02-01")
    sell(fake_pos, "T8", "C1", "S2", "2026-02-08")
    assert (await sync_and_consume(rt, cid))["changed"] == 1
    assert (await client_of(rt, cid, "C1")).home_location_id == s2
    # A tie goes to the most recent purchase: a third Shop 1 visit, later than every Shop 2 one.
    sell(fake_pos, "T9", "C1", "S1", "2026-03-01")
    await sync_and_consume(rt, cid)
    assert (await client_of(rt, cid, "C1")).home_location_id == s1

    # A person chooses Shop 2: new sales elsewhere never move it.
    async with rt.db.transaction() as s:
        await edit_client(s, ada.id, {"home_location": s2}, actor="owner@example.com", origin="user:1")  # type: ignore[arg-type]
    for n, day in enumerate(("2026-03-02", "2026-03-03", "2026-03-04")):
        sell(fake_pos, f"T1{n}", "C1", "S1", day)
    assert (await sync_and_consume(rt, cid))["changed"] == 0
    ada = await client_of(rt, cid, "C1")
    assert (ada.home_location_id, ada.home_location_source) == (s2, "manual")
    async with rt.db.session() as s:
        assert await derive_home_stores(s) == 0  # nor does a full pass
    # Handed back to the rule, it is derived again at once.
    async with rt.db.transaction() as s:
        await edit_client(s, ada.id, {"home_location": None}, actor="owner@example.com", origin="user:1")  # type: ignore[arg-type]
    ada = await client_of(rt, cid, "C1")
    assert (ada.home_location_id, ada.home_location_source) == (s1, "derived")
    # A pass over what is already right changes nothing.
    assert (await consume_feed(rt, settle=NOW))["changed"] == 0


async def test_a_merge_recomputes_the_survivors_derived_home_and_an_unmerge_restores_both(
    pos_rt: Runtime, fake_pos: FakePOS
) -> None:
    rt = pos_rt
    world(fake_pos)
    fake_pos.put("customers", {"id": "C3", "first_name": "Ada", "last_name": "King",
                               "emails": [{"address": "ada.king@example.com", "primary": True}], "shop_id": None})
    cid = await add_testpos(rt, fake_pos)
    sell(fake_pos, "T1", "C1", "S1", "2026-01-02")
    for n, day in enumerate(("2026-01-03", "2026-01-04")):
        sell(fake_pos, f"T2{n}", "C3", "S2", day)
    await consume_feed(rt, settle=NOW)
    await sync_and_consume(rt, cid)
    s1, s2 = await shop(rt, "Shop 1"), await shop(rt, "Shop 2")
    ada, king = await client_of(rt, cid, "C1"), await client_of(rt, cid, "C3")
    assert (ada.home_location_id, king.home_location_id) == (s1, s2)
    async with rt.db.transaction() as s:
        merge = await merge_clients(s, ada.id, king.id, actor="owner@example.com")  # type: ignore[arg-type]
    assert (await consume_feed(rt, settle=NOW))["clients"] >= 1  # the consumer reads the merge
    async with rt.db.session() as s:
        survivor = await s.get(Client, ada.id)
        assert survivor is not None
        # Three sale days now: two at Shop 2.
        assert (survivor.home_location_id, survivor.home_location_source) == (s2, "derived")
    async with rt.db.transaction() as s:
        await unmerge(s, merge.id, actor="owner@example.com")  # type: ignore[arg-type]
    await consume_feed(rt, settle=NOW)
    async with rt.db.session() as s:
        back: dict[int, Any] = {c.id: c for c in (await s.exec(
            select(Client).where(col(Client.id).in_([ada.id, king.id])))).all()}  # type: ignore[misc]
    assert back[ada.id].home_location_id == s1 and back[king.id].home_location_id == s2
