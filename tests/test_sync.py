"""The sync engine end to end: the testpos plugin reads the fake POS over HTTP into the real database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from core.models import (
    Associate,
    ChangeFeed,
    Checkpoint,
    Client,
    Connector,
    ExternalRef,
    Location,
    Product,
    Sale,
    SaleLine,
)
from core.runtime import Runtime
from core.sync import SyncOptions, SyncProgress, run_sync
from tests.testpos.fake import FakePOS
from tests.testpos.fixtures import add_testpos

FAST = SyncOptions(retry_base_delay=0.01, retry_max_delay=0.05)


async def count(rt: Runtime, model: Any, *where: Any) -> int:
    stmt = select(func.count()).select_from(model)
    for cond in where:
        stmt = stmt.where(cond)
    async with rt.db.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def unified_id(rt: Runtime, connector_id: int, object_type: str, ext: str) -> int | None:
    if object_type == "sale_line":  # lines carry their POS id themselves
        stmt = select(SaleLine.id).where(SaleLine.connector_id == connector_id, SaleLine.external_id == ext)
        async with rt.db.engine.connect() as conn:
            return (await conn.execute(stmt)).scalar_one_or_none()
    stmt = select(ExternalRef.unified_id).where(
        ExternalRef.connector_id == connector_id, ExternalRef.object_type == object_type,
        ExternalRef.external_id == ext)
    async with rt.db.engine.connect() as conn:
        return (await conn.execute(stmt)).scalar_one_or_none()


async def get(rt: Runtime, model: Any, ident: int | None) -> Any:
    assert ident is not None
    async with rt.db.session() as session:
        row = await session.get(model, ident)
        assert row is not None
        return row


async def sale_by_ext(rt: Runtime, connector_id: int, ext: str) -> Sale:
    return await get(rt, Sale, await unified_id(rt, connector_id, "sale", ext))


async def test_backfill_stores_everything_and_records_the_run(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(shops=2, employees=4, customers=30, items=12, sales=60)
    cid = await add_testpos(pos_rt, fake_pos)
    seen: list[SyncProgress] = []
    run = await run_sync(pos_rt, cid, on_progress=seen.append, options=FAST)

    assert run.status == "succeeded"
    assert run.finished_at is not None
    assert await count(pos_rt, Location) == 2
    assert await count(pos_rt, Associate) == 4
    assert await count(pos_rt, Product) == 12
    assert await count(pos_rt, Sale) == 60
    # Every generated line is stored once; lines are not duplicated by the >= boundary.
    n_lines = sum(len(s["lines"]) for s in fake_pos.tables["sales"].values())
    assert await count(pos_rt, SaleLine) == n_lines
    # Clients: 30 records, every 10th a duplicate by email of the one before it, merged by identity.
    assert await count(pos_rt, ExternalRef, ExternalRef.object_type == "client") == 30
    assert await count(pos_rt, Client, Client.merged_into_id.is_(None)) == 27

    assert run.records == 2 + 4 + 30 + 12 + 60
    assert run.errors == 0
    assert run.pages == run.stats["shops"]["pages"] + run.stats["employees"]["pages"] + run.stats["customers"][
        "pages"] + run.stats["items"]["pages"] + run.stats["sales"]["pages"]
    assert run.stats["sales"]["pages"] == 6  # 60 sales, 10 per page
    assert run.stats["sales"]["created"] == 60
    assert run.progress == pytest.approx(1.0)
    assert seen and seen[-1].records == run.records and seen[-1].run_id == run.id
    assert [p.pages for p in seen] == list(range(1, run.pages + 1))

    async with pos_rt.db.session() as session:
        connector = await session.get(Connector, cid)
        assert connector is not None
        assert connector.state == "ok" and connector.last_success_at is not None
        assert connector.lease_owner is None and connector.lease_expires_at is None
        # The next scheduled run is one sync interval (the setting) after this one.
        assert connector.next_sync_at is not None
        delta = (connector.next_sync_at - run.finished_at).total_seconds()
        assert 299 <= delta <= 301
        checkpoints = {c.stream: c.state for c in (await session.exec(select(Checkpoint))).all()}
        assert set(checkpoints) == {"shops", "employees", "customers", "items", "sales"}
        newest_sale = max(s["updated_at"] for s in fake_pos.tables["sales"].values())
        assert checkpoints["sales"]["since"].replace("+00:00", "Z") == newest_sale


async def test_second_run_changes_nothing(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=12, sales=25)
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    feed_before = await count(pos_rt, ChangeFeed)
    again = await run_sync(pos_rt, cid, options=FAST)
    # The look-back window re-reads recent records: all recognised as unchanged, no feed rows.
    assert again.records > 0
    assert again.stats["sales"]["created"] == 0 and again.stats["sales"]["updated"] == 0
    assert await count(pos_rt, ChangeFeed) == feed_before
    assert await count(pos_rt, Sale) == 25


async def test_walk_in_sales_and_refund_lines(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(sales=30)
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    walk_in = await sale_by_ext(pos_rt, cid, "T7")  # every 7th generated sale has no customer
    assert walk_in.client_id is None
    refund_payload = fake_pos.tables["sales"]["T15"]
    refund = await sale_by_ext(pos_rt, cid, "T15")
    async with pos_rt.db.session() as session:
        line = (await session.exec(select(SaleLine).where(SaleLine.sale_id == refund.id))).one()
    parent_id = await unified_id(pos_rt, cid, "sale_line", refund_payload["lines"][0]["refund_of"])
    parent = await get(pos_rt, SaleLine, parent_id)
    assert line.quantity == -1 and line.total_minor < 0
    assert line.parent_line_id == parent_id
    assert parent.sale_id != refund.id and parent.quantity == 1
    assert refund.total_minor == line.total_minor


async def feed_rows(rt: Runtime, entity: str, entity_id: int) -> list[ChangeFeed]:
    async with rt.db.session() as session:
        stmt = select(ChangeFeed).where(ChangeFeed.entity == entity, ChangeFeed.entity_id == entity_id)
        return list((await session.exec(stmt.order_by(ChangeFeed.id))).all())


async def test_cursor_boundary_is_read_again_and_deduplicated(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=5, sales=12)
    # Three sales share one timestamp across a page boundary (page size 10): the `>=` cursor re-reads them.
    stamp = fake_pos.tick()
    for ext in ("T10", "T11", "T12"):
        fake_pos.edit("sales", ext, updated_at=stamp)
    cid = await add_testpos(pos_rt, fake_pos, lookback_seconds=0)
    first = await run_sync(pos_rt, cid, options=FAST)
    assert first.stats["sales"]["created"] == 12
    feed_before = await count(pos_rt, ChangeFeed)

    second = await run_sync(pos_rt, cid, options=FAST)
    # Only the boundary is read again: the three sales at the stored cursor, all recognised as unchanged.
    assert second.stats["sales"]["records"] == 3
    assert second.stats["sales"]["unchanged"] == 3 and second.stats["sales"]["created"] == 0
    assert await count(pos_rt, Sale) == 12
    assert await count(pos_rt, ExternalRef, ExternalRef.object_type == "sale") == 12
    assert await count(pos_rt, ChangeFeed) == feed_before

    # A real change at the boundary is applied once, with one feed row.
    fake_pos.edit("sales", "T11", status="voided")
    third = await run_sync(pos_rt, cid, options=FAST)
    assert third.stats["sales"]["updated"] == 1
    sale = await sale_by_ext(pos_rt, cid, "T11")
    assert sale.status == "voided"
    updates = [r for r in await feed_rows(pos_rt, "sale", sale.id) if r.op == "update"]
    assert len(updates) == 1 and updates[0].changes == {"status": "voided"}
    assert updates[0].origin == f"connector:{cid}" and updates[0].origin_connector_id == cid


async def test_look_back_window_picks_up_late_edits(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=5, sales=12)
    cid = await add_testpos(pos_rt, fake_pos, lookback_seconds=0)
    await run_sync(pos_rt, cid, options=FAST)
    # A late edit: the POS stamps the change 5 seconds before the newest sale we already have.
    newest = max(s["updated_at"] for s in fake_pos.tables["sales"].values())
    late = newest.replace(newest[17:19], f"{int(newest[17:19]) - 5:02d}")
    assert late < newest
    fake_pos.edit("sales", "T3", updated_at=late, status="voided")

    await run_sync(pos_rt, cid, options=FAST)
    assert (await sale_by_ext(pos_rt, cid, "T3")).status == "completed"  # no look-back: missed

    async with pos_rt.db.transaction() as session:
        from core.connectors import update_settings

        connector = await session.get(Connector, cid)
        assert connector is not None
        await update_settings(pos_rt, session, connector, {"lookback_seconds": 60})
    run = await run_sync(pos_rt, cid, options=FAST)
    assert (await sale_by_ext(pos_rt, cid, "T3")).status == "voided"
    assert run.stats["sales"]["updated"] == 1
    assert await count(pos_rt, Sale) == 12


async def test_history_window_limits_the_sales_backfill_only(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=4)
    old = "2019-06-01T10:00:00Z"
    fake_pos.put("customers", {"id": "COLD", "first_name": "Old", "last_name": "Friend", "emails": [],
                               "phones": [], "shop_id": "S1"}, updated_at=old)
    fake_pos.put("sales", {**fake_pos.get_record("sales", "T1"), "id": "TOLD", "completed_at": old,
                           "lines": []}, updated_at=old)
    cid = await add_testpos(pos_rt, fake_pos, history_years=5)
    await run_sync(pos_rt, cid, options=FAST)
    assert await unified_id(pos_rt, cid, "client", "COLD") is not None
    assert await unified_id(pos_rt, cid, "sale", "TOLD") is None
    assert await count(pos_rt, Sale) == 4


async def test_new_shop_becomes_a_location_without_configuration(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(shops=1, customers=3, sales=3)
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    assert await count(pos_rt, Location) == 1

    # A store opens: the POS lists it and rings up a sale there.
    fake_pos.put("shops", {"id": "S9", "name": "Uptown", "tz": "Europe/Paris", "currency": "EUR", "country": "FR"})
    fake_pos.put("sales", {**fake_pos.get_record("sales", "T1"), "id": "T900", "shop_id": "S9", "currency": "EUR",
                           "lines": []})
    await run_sync(pos_rt, cid, options=FAST)
    location = await get(pos_rt, Location, await unified_id(pos_rt, cid, "location", "S9"))
    assert (location.name, location.timezone, location.currency, location.country) == (
        "Uptown", "Europe/Paris", "EUR", "FR")
    assert (await sale_by_ext(pos_rt, cid, "T900")).location_id == location.id
    inserts = [r for r in await feed_rows(pos_rt, "location", location.id) if r.op == "insert"]
    assert len(inserts) == 1


async def test_sale_in_unlisted_shop_creates_location_then_filled_in(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(shops=1, customers=3, sales=3)
    fake_pos.put("sales", {**fake_pos.get_record("sales", "T1"), "id": "T901", "shop_id": "S7", "lines": []})
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    loc_id = await unified_id(pos_rt, cid, "location", "S7")
    placeholder = await get(pos_rt, Location, loc_id)
    assert placeholder.name == "Location S7"
    # Timezone and country default to the connector's other shops until the POS lists this one.
    assert (placeholder.timezone, placeholder.currency) == ("America/New_York", "USD")

    fake_pos.put("shops", {"id": "S7", "name": "Airport", "tz": "America/Denver", "currency": "USD", "country": "US"})
    await run_sync(pos_rt, cid, options=FAST)
    filled = await get(pos_rt, Location, loc_id)
    assert (filled.name, filled.timezone) == ("Airport", "America/Denver")
    assert await count(pos_rt, Location) == 2


async def test_full_resync_creates_no_duplicates_and_no_feed_rows(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=10, sales=20)
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    feed_before = await count(pos_rt, ChangeFeed)
    lines_before = await count(pos_rt, SaleLine)
    run = await run_sync(pos_rt, cid, full=True, trigger="panel", options=FAST)
    assert run.full and run.trigger == "panel"
    assert run.records == 2 + 4 + 10 + 12 + 20
    assert run.stats["sales"]["unchanged"] == 20
    assert await count(pos_rt, Sale) == 20
    assert await count(pos_rt, SaleLine) == lines_before
    assert await count(pos_rt, ChangeFeed) == feed_before


async def test_sale_lines_follow_the_pos(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=3)
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    sale = fake_pos.get_record("sales", "T2")
    kept = {**sale["lines"][0], "qty": 2, "total": str(2 * float(sale["lines"][0]["unit_price"]))}
    added = {"id": "LNEW", "item_id": "I1", "sku": "SKU-0001", "description": "Ring 1", "qty": 1,
             "unit_price": "10.00", "total": "10.00", "refund_of": None}
    fake_pos.edit("sales", "T2", lines=[kept, added])
    await run_sync(pos_rt, cid, options=FAST)
    stored = await sale_by_ext(pos_rt, cid, "T2")
    async with pos_rt.db.session() as session:
        lines = (await session.exec(select(SaleLine).where(SaleLine.sale_id == stored.id))).all()
    assert sorted(line.quantity for line in lines) == [1, 2]
    for gone in sale["lines"][1:]:
        assert await unified_id(pos_rt, cid, "sale_line", gone["id"]) is None
    assert await unified_id(pos_rt, cid, "sale_line", "LNEW") is not None


async def test_transient_errors_are_retried_within_the_run(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=25)
    cid = await add_testpos(pos_rt, fake_pos)
    fake_pos.fail("sales", 500, times=3)  # two HTTP attempts per request: the engine sees two failures
    fake_pos.fail("items", 429, times=2, retry_after=0)
    run = await run_sync(pos_rt, cid, options=FAST)
    assert run.status == "succeeded"
    assert run.stats["sales"]["retries"] >= 1 and run.stats["items"]["retries"] >= 1
    assert await count(pos_rt, Sale) == 25


async def test_failing_stream_fails_the_run_but_keeps_committed_pages(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    from core.sync import SyncFailed

    fake_pos.generate(customers=3, sales=45)
    cid = await add_testpos(pos_rt, fake_pos)
    calls = {"n": 0}

    def break_after_first_sales_page(progress: SyncProgress) -> None:
        if progress.stream == "sales" and calls["n"] == 0:
            calls["n"] += 1
            fake_pos.fail("sales", 503, times=1000)

    with pytest.raises(SyncFailed) as failed:
        await run_sync(pos_rt, cid, on_progress=break_after_first_sales_page, options=FAST)
    run = failed.value.run
    assert run.status == "failed" and "sales" in (run.message or "")
    assert run.stats["sales"]["status"] == "failed" and run.stats["customers"]["status"] == "ok"
    # Pages committed before the failure stay (the engine reads at most one page ahead, so the fault
    # injected after the first commit stops the stream by the fourth page at the latest).
    kept = await count(pos_rt, Sale)
    assert kept in (10, 20, 30) and run.stats["sales"]["pages"] == kept // 10
    async with pos_rt.db.session() as session:
        connector = await session.get(Connector, cid)
        assert connector is not None and connector.state == "error" and connector.lease_owner is None

    fake_pos.faults.clear()
    resumed = await run_sync(pos_rt, cid, options=FAST)
    assert resumed.status == "succeeded"
    assert await count(pos_rt, Sale) == 45


async def test_disabled_connector_is_refused(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    from core.sync import SyncRefused

    cid = await add_testpos(pos_rt, fake_pos)
    async with pos_rt.db.transaction() as session:
        connector = await session.get(Connector, cid)
        assert connector is not None
        connector.enabled = False
        session.add(connector)
    with pytest.raises(SyncRefused, match="disabled"):
        await run_sync(pos_rt, cid, options=FAST)
    with pytest.raises(SyncRefused, match="no connector"):
        await run_sync(pos_rt, "nope", options=FAST)


async def test_removing_a_connector_deletes_its_references_and_keeps_the_data(
    pos_rt: Runtime, fake_pos: FakePOS
) -> None:
    from core.connectors import get_connector, remove_connector

    fake_pos.generate(shops=1, employees=2, customers=6, items=4, sales=8)
    gone = await add_testpos(pos_rt, fake_pos, name="Closing store")
    kept = await add_testpos(pos_rt, fake_pos, name="Main store")
    assert (await run_sync(pos_rt, gone, options=FAST)).status == "succeeded"
    assert (await run_sync(pos_rt, kept, options=FAST)).status == "succeeded"
    kept_refs = await count(pos_rt, ExternalRef, ExternalRef.connector_id == kept)
    kept_lines = await count(pos_rt, SaleLine, SaleLine.connector_id == kept)
    assert kept_lines > 0 and await count(pos_rt, SaleLine, SaleLine.connector_id == gone) == kept_lines
    sales = await count(pos_rt, Sale)
    feed_rows = await count(pos_rt, ChangeFeed, ChangeFeed.origin_connector_id == gone)
    assert kept_refs > 0 and await count(pos_rt, ExternalRef, ExternalRef.connector_id == gone) == kept_refs
    assert feed_rows > 0

    async with pos_rt.db.transaction() as session:
        await remove_connector(session, await get_connector(session, gone))

    assert await count(pos_rt, Connector, Connector.id == gone) == 0
    assert await count(pos_rt, ExternalRef, ExternalRef.connector_id == gone) == 0
    assert await count(pos_rt, ExternalRef, ExternalRef.connector_id == kept) == kept_refs
    assert await count(pos_rt, Sale) == sales
    # Its sale lines stay, without the POS ids that tied them to it.
    assert await count(pos_rt, SaleLine, SaleLine.connector_id == gone) == 0
    assert await count(pos_rt, SaleLine, SaleLine.external_id.is_(None)) == kept_lines  # type: ignore[union-attr]
    assert await count(pos_rt, SaleLine, SaleLine.connector_id == kept) == kept_lines
    # The feed is history: its rows still say which connector they came from, so the writeback can
    # never mistake them for edits made in Clasp.
    assert await count(pos_rt, ChangeFeed, ChangeFeed.origin_connector_id == gone) == feed_rows
    assert await count(pos_rt, Checkpoint, Checkpoint.connector_id == gone) == 0


async def test_refunds_point_at_their_lines_wherever_those_were_stored(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    """A refund of a line in the same page, of a line stored by an earlier page, and (in a later run)
    of a line just added to a sale stored before: each return line points at the line it refunds."""
    fake_pos.generate(shops=1, employees=2, customers=5, items=4, sales=3)
    base = fake_pos.get_record("sales", "T1")
    line = {**base["lines"][0], "qty": 1, "refund_of": None}

    def sale(ext: str, lines: list[dict[str, Any]]) -> None:
        fake_pos.put("sales", {**base, "id": ext, "lines": lines})

    sale("T10", [{**line, "id": "L10"}])
    sale("T11", [{**line, "id": "L11"}])
    for n in range(12, 20):  # pad so the next two sales land on a later page (page size 10)
        sale(f"T{n}", [{**line, "id": f"L{n}"}])
    sale("T20", [{**line, "id": "L20a"}, {**line, "id": "L20b", "qty": -1, "refund_of": "L20a"}])  # same sale
    sale("T21", [{**line, "id": "L21", "qty": -1, "refund_of": "L10"}])  # a line stored by an earlier page
    sale("T22", [{**line, "id": "L22", "qty": -1, "refund_of": "L20a"}])  # a line of another sale in this page
    cid = await add_testpos(pos_rt, fake_pos)
    assert (await run_sync(pos_rt, cid, options=FAST)).errors == 0

    async def parent_of(ext: str) -> int | None:
        line_id = await unified_id(pos_rt, cid, "sale_line", ext)
        return (await get(pos_rt, SaleLine, line_id)).parent_line_id

    assert await parent_of("L20b") == await unified_id(pos_rt, cid, "sale_line", "L20a")
    assert await parent_of("L21") == await unified_id(pos_rt, cid, "sale_line", "L10")
    assert await parent_of("L22") == await unified_id(pos_rt, cid, "sale_line", "L20a")
    assert await parent_of("L11") is None

    # Later: T11 gains a line, and a new sale refunds that new line in the same page.
    fake_pos.edit("sales", "T11", lines=[{**line, "id": "L11"}, {**line, "id": "L11x"}])
    sale("T23", [{**line, "id": "L23", "qty": -1, "refund_of": "L11x"}])
    assert (await run_sync(pos_rt, cid, options=FAST)).errors == 0
    assert await parent_of("L23") == await unified_id(pos_rt, cid, "sale_line", "L11x")
