"""The error queue: bad records never stop a page, are kept with their context, and replay without duplicates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import select

from core.connectors import update_settings
from core.errors import dismiss_error, list_errors, replay_all, replay_error
from core.models import Client, Connector, ExternalRef, Location, Sale, SaleLine, SyncError
from core.runtime import Runtime
from core.sync import SyncOptions, run_sync
from tests.testpos.fake import FakePOS
from tests.testpos.fixtures import add_testpos

FAST = SyncOptions(retry_base_delay=0.01, retry_max_delay=0.05)


async def count(rt: Runtime, model: Any, *where: Any) -> int:
    stmt = select(func.count()).select_from(model)
    for cond in where:
        stmt = stmt.where(cond)
    async with rt.db.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def errors(rt: Runtime, **kw: Any) -> list[SyncError]:
    async with rt.db.session() as session:
        return await list_errors(session, **kw)


async def ref(rt: Runtime, cid: int, object_type: str, ext: str) -> int | None:
    stmt = select(ExternalRef.unified_id).where(
        ExternalRef.connector_id == cid, ExternalRef.object_type == object_type, ExternalRef.external_id == ext)
    async with rt.db.engine.connect() as conn:
        return (await conn.execute(stmt)).scalar_one_or_none()


async def set_settings(rt: Runtime, cid: int, **values: Any) -> None:
    async with rt.db.transaction() as session:
        connector = await session.get(Connector, cid)
        assert connector is not None
        await update_settings(rt, session, connector, values)


def bad_amount_sale(pos: FakePOS, ext: str = "TBAD") -> dict[str, Any]:
    sale = pos.get_record("sales", "T2")
    line = {**sale["lines"][0], "id": f"{ext}-L1", "unit_price": "1,299.00", "total": "1,299.00"}
    return pos.put("sales", {**sale, "id": ext, "lines": [line], "subtotal": "1,299.00", "total": "1,299.00"})


async def test_malformed_record_is_queued_and_the_page_goes_on(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=5, sales=4)
    payload = bad_amount_sale(fake_pos)
    for i in range(5, 8):  # valid sales after the bad one, in the same page
        fake_pos.put("sales", {**fake_pos.get_record("sales", "T1"), "id": f"T{i}",
                               "lines": [{**fake_pos.get_record("sales", "T1")["lines"][0], "id": f"LX{i}"}]})
    cid = await add_testpos(pos_rt, fake_pos)
    run = await run_sync(pos_rt, cid, options=FAST)

    assert run.status == "succeeded"  # bad records do not fail the run
    assert run.errors == 1 and run.stats["sales"]["errors"] == 1
    assert await count(pos_rt, Sale) == 7
    [error] = await errors(pos_rt)
    assert error.connector_id == cid and error.stream == "sales" and error.external_id == "TBAD"
    assert error.payload == payload
    assert "1,299.00" in error.reason and "not a decimal number" in error.reason
    assert error.context["kind"] == "decode" and error.context["run_id"] == run.id
    assert error.context["object_type"] == "sale" and error.state == "open" and error.created_at is not None


async def test_replay_after_fixing_the_plugin_creates_no_duplicate(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=5, sales=4)
    bad_amount_sale(fake_pos)
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    [error] = await errors(pos_rt)

    still = await replay_error(pos_rt, error.id)
    assert not still.ok and "not a decimal number" in still.message
    [again] = await errors(pos_rt)
    assert again.id == error.id and again.attempts == 2  # the same row, not a second one

    await set_settings(pos_rt, cid, lenient_amounts=True)  # "the fix"
    fixed = await replay_error(pos_rt, error.id)
    assert fixed.ok, fixed.message
    sale_id = await ref(pos_rt, cid, "sale", "TBAD")
    async with pos_rt.db.session() as session:
        sale = await session.get(Sale, sale_id)
        assert sale is not None and sale.total_minor == 129900
    assert await errors(pos_rt) == []
    [closed] = await errors(pos_rt, state="replayed")
    assert closed.id == error.id and closed.replayed_at is not None

    twice = await replay_error(pos_rt, error.id)
    assert twice.ok and "already replayed" in twice.message
    assert await replay_all(pos_rt) == []
    await run_sync(pos_rt, cid, full=True, options=FAST)
    assert await count(pos_rt, Sale) == 5
    assert await count(pos_rt, SaleLine, SaleLine.sale_id == sale_id) == 1
    assert await count(pos_rt, SyncError) == 1


async def test_fix_in_the_pos_closes_the_error_on_the_next_sync(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=5, sales=4)
    payload = bad_amount_sale(fake_pos)
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    assert len(await errors(pos_rt)) == 1
    line = {**payload["lines"][0], "unit_price": "1299.00", "total": "1299.00"}
    fake_pos.edit("sales", "TBAD", lines=[line], subtotal="1299.00", total="1299.00")
    await run_sync(pos_rt, cid, options=FAST)
    assert await errors(pos_rt) == []
    assert await ref(pos_rt, cid, "sale", "TBAD") is not None
    # Replaying the stale payload now would be a no-op at best: nothing is left to replay.
    assert await replay_all(pos_rt, connector_id=cid) == []
    assert await count(pos_rt, Sale) == 5


async def test_reading_a_bad_record_again_does_not_pile_up_errors(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=3)
    bad_amount_sale(fake_pos)
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    await run_sync(pos_rt, cid, full=True, options=FAST)
    await run_sync(pos_rt, cid, options=FAST)  # look-back re-reads it too
    [error] = await errors(pos_rt)
    assert error.attempts == 3


async def test_unknown_customer_waits_in_the_queue_then_resolves_itself(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=3)
    fake_pos.put("sales", {**fake_pos.get_record("sales", "T1"), "id": "T404", "customer_id": "C404",
                           "lines": [{**fake_pos.get_record("sales", "T1")["lines"][0], "id": "L404"}]})
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    [error] = await errors(pos_rt)
    assert error.context["kind"] == "unresolved_reference"
    assert error.context["unresolved"] == {"client": ["C404"]}
    assert "unknown client 'C404'" in error.reason
    assert await ref(pos_rt, cid, "sale", "T404") is None

    # The customer shows up in the POS; the next run stores the sale with no one touching the queue.
    fake_pos.put("customers", {"id": "C404", "first_name": "Late", "last_name": "Comer",
                               "emails": [{"address": "late@example.com", "primary": True}], "phones": []})
    await run_sync(pos_rt, cid, options=FAST)
    assert await errors(pos_rt) == []
    async with pos_rt.db.session() as session:
        sale = await session.get(Sale, await ref(pos_rt, cid, "sale", "T404"))
        client = await session.get(Client, await ref(pos_rt, cid, "client", "C404"))
    assert sale is not None and client is not None and sale.client_id == client.id


async def test_record_without_an_id_and_values_that_do_not_fit(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=3)
    nameless = {"id": "", "first_name": "No", "last_name": "Id"}
    fake_pos.put("customers", {**nameless, "id": "tmp"})
    fake_pos.tables["customers"]["tmp"]["id"] = None  # a payload too broken to name
    fake_pos.put("shops", {"id": "SBAD", "name": "Bad zone", "tz": "Mars/Olympus", "currency": "USD",
                           "country": "US"})
    long_line = {**fake_pos.get_record("sales", "T1")["lines"][0], "id": "LLONG", "description": "x" * 400}
    fake_pos.put("sales", {**fake_pos.get_record("sales", "T1"), "id": "TLONG", "lines": [long_line]})
    cid = await add_testpos(pos_rt, fake_pos)
    run = await run_sync(pos_rt, cid, options=FAST)
    assert run.status == "succeeded" and run.errors == 3
    by_stream = {e.stream: e for e in await errors(pos_rt)}
    assert by_stream["customers"].external_id is None
    assert by_stream["shops"].reason == "unknown timezone 'Mars/Olympus'"
    assert "line LLONG name is 400 characters long (at most 300)" in by_stream["sales"].reason
    assert await count(pos_rt, Location) == 2
    assert await count(pos_rt, Sale) == 3
    # The id-less payload is recognised when it is read again: still one row.
    await run_sync(pos_rt, cid, full=True, options=FAST)
    assert len(await errors(pos_rt)) == 3


async def test_list_filter_and_dismiss(pos_rt: Runtime, fake_pos: FakePOS) -> None:
    fake_pos.generate(customers=3, sales=3)
    bad_amount_sale(fake_pos, "TB1")
    bad_amount_sale(fake_pos, "TB2")
    cid = await add_testpos(pos_rt, fake_pos)
    await run_sync(pos_rt, cid, options=FAST)
    listed = await errors(pos_rt, connector_id=cid)
    assert [e.external_id for e in listed] in (["TB2", "TB1"], ["TB1", "TB2"])
    assert len(await errors(pos_rt, limit=1)) == 1
    assert await errors(pos_rt, connector_id=cid + 1) == []
    async with pos_rt.db.transaction() as session:
        assert await dismiss_error(session, listed[0].id)
        assert not await dismiss_error(session, listed[0].id)
    assert len(await errors(pos_rt)) == 1
    assert len(await errors(pos_rt, state="dismissed")) == 1
    assert len(await errors(pos_rt, state=None)) == 2
    results = await replay_all(pos_rt)
    assert [r.ok for r in results] == [False]
    missing = await replay_error(pos_rt, 999999)
    assert not missing.ok and "no error" in missing.message
