"""Writeback of Clasp client edits to Lightspeed R-Series customers, end to end against the sandbox:
the real engine sync, identity, ``core.clients.edit_client``, the change feed and the error queue."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from core import feed
from core.clients import edit_client
from core.models import AuditLog, ChangeFeed, Client, ClientContact, ExternalRef, FeedConsumer, SyncError
from core.runtime import create_runtime
from core.sync import run_sync
from core.writeback import consumer_name, replay_all_writeback, replay_writeback, run_writeback, writeback_job
from tests.lightspeed_r.fixtures import SMALL, add_lightspeed_connector, authorize, serve_sandbox

NOW = timedelta(0)  # no settle window: the tests' edits are committed before the run starts


def digits(value: str) -> str:
    out = re.sub(r"\D", "", value)
    return out[1:] if len(out) == 11 and out.startswith("1") else out


def puts(server: Any) -> list[dict[str, Any]]:
    return [e for e in server.stats(log=True)["log"] if e["method"] == "PUT"]


async def synced_connector(rt: Any, server: Any, **overrides: Any) -> int:
    ctx = await add_lightspeed_connector(rt, server, history_years=SMALL["years"], writeback=True, **overrides)
    await authorize(ctx)
    run = await run_sync(rt, ctx.connector_id, full=True)
    assert run.status == "succeeded", run.message
    return ctx.connector_id


async def single_ref_clients(rt: Any, connector_id: int, server: Any) -> list[tuple[int, int]]:
    """(client id, customer id) of clients linked to exactly one sandbox customer with a phone and an
    email, most phones first."""
    async with rt.db.session() as session:
        refs = (await session.exec(select(ExternalRef).where(
            ExternalRef.connector_id == connector_id, ExternalRef.object_type == "client"))).all()
    by_client: dict[int, list[str]] = {}
    for ref in refs:
        by_client.setdefault(ref.unified_id, []).append(ref.external_id)
    out = []
    for client_id, ext in by_client.items():
        if len(ext) != 1:
            continue
        customer = server.sandbox.ds.customers[int(ext[0])]
        if customer["Contact"]["Phones"] and customer["Contact"]["Emails"] and not customer["archived"]:
            out.append((client_id, int(ext[0])))
    out.sort(key=lambda c: (-len(server.sandbox.ds.customers[c[1]]["Contact"]["Phones"]), c[0]))
    assert out
    return out


async def edit(rt: Any, client_id: int, **changes: Any) -> None:
    async with rt.db.transaction() as session:
        await edit_client(session, client_id, changes, actor="associate@example.com", origin="user:1")


async def current_phones(rt: Any, client_id: int) -> list[str]:
    async with rt.db.session() as session:
        rows = (await session.exec(select(ClientContact).where(
            ClientContact.client_id == client_id, ClientContact.kind == "phone"
        ).order_by(col(ClientContact.is_primary).desc(), col(ClientContact.id)))).all()
    return [r.value for r in rows]


async def feed_rows_from(rt: Any, connector_id: int, client_id: int, after: int) -> list[ChangeFeed]:
    async with rt.db.session() as session:
        return list((await session.exec(select(ChangeFeed).where(
            ChangeFeed.entity == "client", ChangeFeed.entity_id == client_id,
            ChangeFeed.origin_connector_id == connector_id, col(ChangeFeed.id) > after))).all())


async def feed_head(rt: Any) -> int:
    async with rt.db.session() as session:
        return int((await session.exec(select(func.max(ChangeFeed.id)))).one() or 0)


async def test_an_edit_reaches_lightspeed_and_its_echo_is_not_a_change(rt) -> None:
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        client_id, customer_id = (await single_ref_clients(rt, cid, server))[0]
        customer = server.sandbox.ds.customers[customer_id]
        kept_phones = [p["number"] for p in customer["Contact"]["Phones"]]
        kept_address = dict(customer["Contact"]["Addresses"][0]) if customer["Contact"]["Addresses"] else None
        old_first_name = customer["firstName"]
        phones_before = await current_phones(rt, client_id)
        assert {digits(p) for p in phones_before} == {digits(p) for p in kept_phones}

        # A new primary mobile in front of the numbers the client has; a new email; a note.
        await edit(rt, client_id, phones=["(617) 555-0199", *phones_before], emails=["renee.new@example.org"],
                   note="Prefers white gold", birthday="1984-02-29")
        server.admin("POST", "/_sandbox/stats/reset")

        report = await run_writeback(rt, settle=NOW)
        (consumer,) = report.consumers
        assert consumer.consumer == consumer_name(cid)
        assert (consumer.written, consumer.errors, consumer.conflicts, consumer.stopped) == (1, 0, 0, None)
        assert len(puts(server)) == 1

        customer = server.sandbox.ds.customers[customer_id]
        numbers = {digits(p["number"]) for p in customer["Contact"]["Phones"]}
        assert numbers == {"6175550199", *(digits(p) for p in kept_phones)}  # the others are preserved
        assert [e["address"] for e in customer["Contact"]["Emails"]] == ["renee.new@example.org"]
        assert customer["Note"]["note"] == "Prefers white gold"
        assert customer["dob"].date().isoformat() == "1984-02-29"  # local midnight of the shop
        assert customer["firstName"] == old_first_name  # fields not edited are not touched
        if kept_address:
            assert customer["Contact"]["Addresses"][0]["address1"] == kept_address["address1"]

        # The next sync reads our own write back: identity sees the values Clasp holds, no change.
        head = await feed_head(rt)
        run = await run_sync(rt, cid)
        assert run.status == "succeeded", run.message
        assert run.records >= 1  # the customer was read again (its timeStamp moved)
        assert await feed_rows_from(rt, cid, client_id, head) == []
        async with rt.db.session() as session:
            client = await session.get(Client, client_id)
            assert client.note == "Prefers white gold"

        # Nothing left to write, so a second run writes nothing.
        again = await run_writeback(rt, settle=NOW)
        assert again.written == 0 and again.errors == 0
        assert len(puts(server)) == 1
        async with rt.db.session() as session:
            consumer_row = (await session.exec(select(FeedConsumer).where(
                FeedConsumer.name == consumer_name(cid)))).one()
            assert await feed.lag(session, consumer_name(cid)) == 0  # sale rows are passed over too
        assert consumer_row.position == await feed_head(rt)


async def test_changes_from_a_sync_and_unlinked_clients_are_not_written(rt) -> None:
    with serve_sandbox() as server:
        await synced_connector(rt, server)
        async with rt.db.transaction() as session:
            loner = Client(first_name="Walk", last_name="In")
            session.add(loner)
            await session.flush()
            loner_id = loner.id
        await edit(rt, loner_id, note="Asked about pearls")
        server.admin("POST", "/_sandbox/stats/reset")
        report = await run_writeback(rt, settle=NOW)
        (consumer,) = report.consumers
        # The backfill's own feed rows and the unlinked client's edit are passed over, not written.
        assert consumer.written == 0 and consumer.skipped >= 1 and consumer.rows == consumer.skipped
        assert puts(server) == []
        assert consumer.position == await feed_head(rt)


async def test_no_consumer_without_writeback(rt) -> None:
    with serve_sandbox() as server:
        ctx = await add_lightspeed_connector(rt, server, history_years=SMALL["years"])
        await authorize(ctx)
        assert (await run_writeback(rt, settle=NOW)).consumers == []


async def test_a_later_till_edit_wins_and_is_audited(rt) -> None:
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        client_id, customer_id = (await single_ref_clients(rt, cid, server))[0]
        await edit(rt, client_id, note="Clasp note")
        await asyncio.sleep(1.1)  # Lightspeed timestamps have whole seconds
        server.admin("PATCH", f"/_sandbox/customers/{customer_id}", {"note": "Till note"})
        run = await run_sync(rt, cid)  # the till edit is ingested before the writeback runs
        assert run.status == "succeeded", run.message
        server.admin("POST", "/_sandbox/stats/reset")

        report = await run_writeback(rt, settle=NOW)
        (consumer,) = report.consumers
        assert consumer.conflicts == 1 and consumer.written == 0
        assert puts(server) == []  # the POS keeps its later value
        assert server.sandbox.ds.customers[customer_id]["Note"]["note"] == "Till note"
        async with rt.db.session() as session:
            (row,) = (await session.exec(select(AuditLog).where(AuditLog.action == "writeback.conflict"))).all()
            assert row.target_type == "client" and row.target_id == str(client_id)
            details = row.details
            assert (details["field"], details["clasp_value"], details["remote_value"], details["winner"]) == (
                "note", "Clasp note", "Till note", "remote")
            assert details["remote_at"] > details["clasp_at"]
            assert (await session.get(Client, client_id)).note == "Till note"

        # Decided once: a second run neither writes nor audits again.
        assert (await run_writeback(rt, settle=NOW)).conflicts == 0
        async with rt.db.session() as session:
            count = (await session.exec(select(func.count()).select_from(AuditLog).where(
                AuditLog.action == "writeback.conflict"))).one()
        assert count == 1


async def test_a_till_edit_of_another_field_does_not_undo_a_clasp_edit(rt) -> None:
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        client_id, customer_id = (await single_ref_clients(rt, cid, server))[0]
        old_last = server.sandbox.ds.customers[customer_id]["lastName"]
        await edit(rt, client_id, last_name=f"{old_last}-Ray", phones=["+1 646 555 0188"])
        await asyncio.sleep(1.1)
        # The till changes only the first name; the record it sends still has the old last name and
        # numbers, and is newer than the edit: identity takes them back for now.
        server.admin("PATCH", f"/_sandbox/customers/{customer_id}", {"firstName": "Isabelle"})
        run = await run_sync(rt, cid)
        assert run.status == "succeeded", run.message
        async with rt.db.session() as session:
            assert (await session.get(Client, client_id)).last_name == old_last
        server.admin("POST", "/_sandbox/stats/reset")

        report = await run_writeback(rt, settle=NOW)
        assert report.written == 1 and report.conflicts == 2
        customer = server.sandbox.ds.customers[customer_id]
        assert customer["lastName"] == f"{old_last}-Ray"
        assert [digits(p["number"]) for p in customer["Contact"]["Phones"]] == ["6465550188"]
        assert customer["firstName"] == "Isabelle"  # the till's own change stays
        async with rt.db.session() as session:
            rows = (await session.exec(select(AuditLog).where(AuditLog.action == "writeback.conflict"))).all()
        assert {(r.details["field"], r.details["winner"]) for r in rows} == {("last_name", "clasp"),
                                                                            ("phones", "clasp")}
        assert all("not this field" in r.details["reason"] for r in rows)

        run = await run_sync(rt, cid)  # the golden record returns to the edit, with the till's name
        assert run.status == "succeeded", run.message
        async with rt.db.session() as session:
            client = await session.get(Client, client_id)
            assert (client.first_name, client.last_name) == ("Isabelle", f"{old_last}-Ray")
        assert await current_phones(rt, client_id) == ["+16465550188"]


async def test_an_older_till_edit_loses_to_a_later_clasp_edit(rt) -> None:
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        client_id, customer_id = (await single_ref_clients(rt, cid, server))[0]
        # The till adds a mobile number first; Clasp, not yet synced, then sets the client's numbers.
        server.admin("PATCH", f"/_sandbox/customers/{customer_id}", {"phone": "(415) 555-0142"})
        await asyncio.sleep(1.1)
        await edit(rt, client_id, phones=["+1 646 555 0123"])
        run = await run_sync(rt, cid)  # identity adds the till's numbers next to Clasp's
        assert run.status == "succeeded", run.message
        merged = set(await current_phones(rt, client_id))
        assert {"+16465550123", "+14155550142"} <= merged
        server.admin("POST", "/_sandbox/stats/reset")

        report = await run_writeback(rt, settle=NOW)
        (consumer,) = report.consumers
        assert consumer.conflicts == 1 and consumer.written == 1
        assert [digits(p["number"]) for p in server.sandbox.ds.customers[customer_id]["Contact"]["Phones"]] == [
            "6465550123"]
        async with rt.db.session() as session:
            (row,) = (await session.exec(select(AuditLog).where(AuditLog.action == "writeback.conflict"))).all()
        assert row.details["field"] == "phones" and row.details["winner"] == "clasp"
        assert row.details["clasp_value"] == ["+16465550123"]
        assert set(row.details["remote_value"]) == merged
        assert row.details["remote_at"] < row.details["clasp_at"]

        # The next sync brings the golden record to the winner's value.
        run = await run_sync(rt, cid)
        assert run.status == "succeeded", run.message
        assert await current_phones(rt, client_id) == ["+16465550123"]


async def test_concurrent_runs_write_each_change_once(rt) -> None:
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        clients = (await single_ref_clients(rt, cid, server))[:5]
        for n, (client_id, _) in enumerate(clients):
            await edit(rt, client_id, note=f"Concurrent note {n}")
        server.admin("POST", "/_sandbox/stats/reset")
        other = create_runtime(rt.settings)
        try:
            reports = await asyncio.gather(
                run_writeback(rt, settle=NOW), run_writeback(other, settle=NOW), run_writeback(rt, settle=NOW),
                run_writeback(other, settle=NOW),
            )
        finally:
            await other.close()
        assert sum(r.written for r in reports) == len(clients)
        assert len(puts(server)) == len(clients)
        for n, (_, customer_id) in enumerate(clients):
            assert server.sandbox.ds.customers[customer_id]["Note"]["note"] == f"Concurrent note {n}"
        # Whatever ran later found nothing left.
        assert (await run_writeback(rt, settle=NOW)).written == 0
        assert len(puts(server)) == len(clients)


async def test_a_transient_failure_is_retried_without_losing_the_row(rt) -> None:
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        (first, _), (second, second_customer) = (await single_ref_clients(rt, cid, server))[:2]
        await edit(rt, first, note="First")
        await edit(rt, second, note="Second")
        server.admin("POST", "/_sandbox/stats/reset")
        server.admin("POST", "/_sandbox/faults", {"status": 503, "retry_after": 0, "count": 8})

        report = await run_writeback(rt, settle=NOW)
        (consumer,) = report.consumers
        assert consumer.written == 0 and consumer.errors == 0
        assert consumer.stopped and "transient" in consumer.stopped
        assert puts(server) == []
        async with rt.db.session() as session:
            assert (await session.exec(select(func.count()).select_from(SyncError))).one() == 0

        retry = await run_writeback(rt, settle=NOW)
        assert retry.written == 2 and retry.consumers[0].stopped is None
        assert server.sandbox.ds.customers[second_customer]["Note"]["note"] == "Second"
        assert len(puts(server)) == 2


async def test_a_permanent_failure_is_queued_and_replayed(rt) -> None:
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        (first, first_customer), (second, second_customer) = (await single_ref_clients(rt, cid, server))[:2]
        await edit(rt, first, note="Refused once", emails=["refused@example.org"])
        await edit(rt, second, note="Goes through")
        server.admin("POST", "/_sandbox/stats/reset")
        server.admin("POST", "/_sandbox/faults", {"status": 400, "count": 1})

        report = await run_writeback(rt, settle=NOW)
        (consumer,) = report.consumers
        assert consumer.errors == 1 and consumer.written == 1 and consumer.stopped is None
        assert server.sandbox.ds.customers[second_customer]["Note"]["note"] == "Goes through"
        assert server.sandbox.ds.customers[first_customer]["Note"]["note"] != "Refused once"
        async with rt.db.session() as session:
            (error,) = (await session.exec(select(SyncError))).all()
        assert (error.stage, error.state, error.connector_id, error.external_id) == (
            "writeback", "open", cid, str(first_customer))
        assert error.payload["client_id"] == first
        assert error.payload["changes"] == {"note": "Refused once", "emails": ["refused@example.org"]}
        assert "400" in error.reason
        assert error.context["feed_id"] == error.payload["feed_id"]

        # The checkpoint moved on: the next run does not retry it; a replay does.
        assert (await run_writeback(rt, settle=NOW)).written == 0
        server.admin("POST", "/_sandbox/stats/reset")
        replay, twin = await asyncio.gather(replay_writeback(rt, error.id), replay_writeback(rt, error.id))
        assert replay.ok and twin.ok, (replay.message, twin.message)
        assert sorted([replay.message, twin.message]) == ["already replayed", f"written to {first_customer}"]
        assert len(puts(server)) == 1  # two replays at once write once
        customer = server.sandbox.ds.customers[first_customer]
        assert customer["Note"]["note"] == "Refused once"
        assert [e["address"] for e in customer["Contact"]["Emails"]] == ["refused@example.org"]
        async with rt.db.session() as session:
            error = await session.get(SyncError, error.id)
        assert error.state == "replayed" and error.replayed_at is not None
        again = await replay_writeback(rt, error.id)
        assert again.ok and again.message == "already replayed"
        assert await replay_all_writeback(rt) == []


async def test_replay_does_not_push_a_value_changed_since(rt) -> None:
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        client_id, customer_id = (await single_ref_clients(rt, cid, server))[0]
        await edit(rt, client_id, note="Old news")
        server.admin("POST", "/_sandbox/faults", {"status": 400, "count": 1})
        assert (await run_writeback(rt, settle=NOW)).errors == 1
        await edit(rt, client_id, note="Newer")
        assert (await run_writeback(rt, settle=NOW)).written == 1
        async with rt.db.session() as session:
            (error,) = (await session.exec(select(SyncError))).all()
        server.admin("POST", "/_sandbox/stats/reset")
        replay = await replay_writeback(rt, error.id)
        assert replay.ok and "nothing left" in replay.message
        assert puts(server) == []
        assert server.sandbox.ds.customers[customer_id]["Note"]["note"] == "Newer"


async def test_edits_older_than_the_connector_are_not_its_to_write(rt) -> None:
    with serve_sandbox() as server:
        async with rt.db.transaction() as session:
            early, late = Client(first_name="Early", last_name="Edit"), Client(first_name="Late", last_name="Edit")
            session.add_all([early, late])
            await session.flush()
            early_id, late_id = early.id, late.id
        await edit(rt, early_id, note="Before any POS was connected")
        await asyncio.sleep(0.01)
        await synced_connector(rt, server)
        await edit(rt, late_id, note="After")
        report = await run_writeback(rt, settle=NOW)
        # Only the edit made since the connector exists was considered (both clients are unlinked).
        assert report.consumers[0].rows == 1 and report.consumers[0].skipped == 1
        # The job the worker runs is the same thing.
        summary = await writeback_job({"clasp": rt})
        assert summary["written"] == 0 and summary["consumers"][0]["busy"] is False


async def test_the_checkpoint_never_passes_a_row_still_settling(rt) -> None:
    with serve_sandbox() as server:
        ctx = await add_lightspeed_connector(rt, server, writeback=True)
        await authorize(ctx)
        async with rt.db.transaction() as session:
            client = Client(first_name="Settling", last_name="Row")
            session.add(client)
            await session.flush()
            client_id = client.id
        await edit(rt, client_id, note="Just now")
        async with rt.db.transaction() as session:
            # A row with a higher id but an older stamp, as identity writes a page's rows.
            older = await feed.append(session, entity="client", entity_id=client_id, op="update",
                                      changes={"note": "x"}, origin="user:1")
            older.created_at = older.created_at - timedelta(seconds=60)
            session.add(older)
        report = await run_writeback(rt)  # the default settle window
        async with rt.db.session() as session:
            edit_row = (await session.exec(select(func.min(ChangeFeed.id)))).one()
        assert report.consumers[0].position < edit_row  # neither row was passed
        assert report.consumers[0].rows == 0
        async with rt.db.transaction() as session:
            row = await session.get(ChangeFeed, edit_row)
            row.created_at = row.created_at - timedelta(seconds=60)
            session.add(row)
        report = await run_writeback(rt)
        assert report.consumers[0].rows == 2 and report.consumers[0].connector_id == ctx.connector_id


async def test_a_person_with_two_customers_gets_both_written(rt) -> None:
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        async with rt.db.session() as session:
            refs = (await session.exec(select(ExternalRef).where(
                ExternalRef.connector_id == cid, ExternalRef.object_type == "client"))).all()
        by_client: dict[int, list[int]] = {}
        for ref in refs:
            by_client.setdefault(ref.unified_id, []).append(int(ref.external_id))
        client_id, customers = next((c, ids) for c, ids in sorted(by_client.items()) if len(ids) == 2)
        await edit(rt, client_id, note="One person, two shops")
        server.admin("POST", "/_sandbox/stats/reset")
        report = await run_writeback(rt, settle=NOW)
        assert report.written == 2 and len(puts(server)) == 2
        assert {server.sandbox.ds.customers[c]["Note"]["note"] for c in customers} == {"One person, two shops"}
        head = await feed_head(rt)
        run = await run_sync(rt, cid)
        assert run.status == "succeeded", run.message
        assert all("note" not in row.changes for row in await feed_rows_from(rt, cid, client_id, head))
        assert (await run_writeback(rt, settle=NOW)).written == 0 and len(puts(server)) == 2


async def test_an_expired_token_is_refreshed_mid_writeback(rt) -> None:
    # The writer saves the rotated token in a transaction of its own while the run is going on: the
    # run holds no database transaction across a write, so this cannot deadlock (SQLite included).
    with serve_sandbox() as server:
        cid = await synced_connector(rt, server)
        client_id, customer_id = (await single_ref_clients(rt, cid, server))[0]
        await edit(rt, client_id, note="After a token refresh")
        server.admin("POST", "/_sandbox/tokens/expire")
        refreshes = server.stats()["oauth"]["refreshes"]
        report = await run_writeback(rt, settle=NOW)
        assert report.written == 1 and report.consumers[0].stopped is None
        assert server.stats()["oauth"]["refreshes"] == refreshes + 1
        assert server.sandbox.ds.customers[customer_id]["Note"]["note"] == "After a token refresh"
