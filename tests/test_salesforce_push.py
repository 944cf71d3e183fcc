"""The Salesforce CRM push end to end: the real store on every backend, the sandbox over real HTTP."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from core.clients import edit_client
from core.crm import consumer_name, replay_all_push, replay_push_error, run_push
from core.identity import merge_clients
from core.models import Connector, ExternalRef, FeedConsumer, SyncError, SyncRun
from core.runtime import Runtime
from tests.salesforce.fixtures import (
    NO_SETTLE,
    add_clients,
    add_product,
    add_sale,
    add_salesforce,
    client,
    make_store,
    serve_sandbox,
    set_sale_status,
)


async def _errors(rt: Runtime, state: str = "open") -> list[SyncError]:
    async with rt.db.session() as s:
        stmt = select(SyncError).where(col(SyncError.stage) == "crm_push", col(SyncError.state) == state)
        return list((await s.exec(stmt.order_by(col(SyncError.id)))).all())


async def _connector(rt: Runtime, cid: int) -> Connector:
    async with rt.db.session() as s:
        row = await s.get(Connector, cid)
        assert row is not None
        return row


async def push(rt: Runtime, cid: int, **kw: Any):  # type: ignore[no-untyped-def]
    return await run_push(rt, cid, settle=NO_SETTLE, **kw)


async def test_clients_products_and_receipts_arrive_once_with_their_links(rt: Runtime) -> None:
    store = await make_store(rt)
    ann, ben = await add_clients(rt, store, client("c1", "Ann", "Lee", "ann@example.com", "(212) 555-0134"),
                                 client("c2", "Ben", "Ortiz", "ben@example.com"))
    ring = await add_product(rt, store, "RING-1", "Solitaire ring", 250000)
    chain = await add_product(rt, store, None, "Gold chain", 80000)
    await add_product(rt, store, "UNSOLD-1", "Never sold")
    s1 = await add_sale(rt, store, "s1", ann, [(ring, 1, 250000), (chain, 2, 80000)], tax_minor=36000)
    refund = await add_sale(rt, store, "refund", ann, [(chain, -1, 80000)])
    quote = await add_sale(rt, store, "quote", ben, [(ring, 1, 250000)], status="quote")
    walk_in = await add_sale(rt, store, "walk-in", None, [(ring, 1, 250000)])

    with serve_sandbox() as sf:
        cid = await add_salesforce(rt, sf)
        report = await push(rt, cid)
        assert report.status == "succeeded", report.message

        contacts = sf.by("Contact", "Clasp_Client_Id__c")
        assert set(contacts) == {str(ann), str(ben)}
        assert contacts[str(ann)]["Email"] == "ann@example.com"
        assert contacts[str(ann)]["Phone"] == "+12125550134"
        assert contacts[str(ann)]["LastName"] == "Lee" and contacts[str(ann)]["FirstName"] == "Ann"

        products = sf.by("Product2", "Clasp_Sku__c")
        # Only what receipts reference: the unsold product stays out; a product without SKU is keyed by id.
        assert set(products) == {"RING-1", f"clasp:{chain}"}

        receipts = sf.by("Clasp_Receipt__c", "Clasp_External_Id__c")
        # Completed sales only (the quote is not a receipt yet); walk-ins stay out by default.
        assert set(receipts) == {str(s1), str(refund)}
        assert receipts[str(s1)]["Contact__c"] == contacts[str(ann)]["Id"]
        assert receipts[str(s1)]["Total__c"] == 4460.0 and receipts[str(s1)]["Tax__c"] == 360.0
        assert receipts[str(s1)]["Status__c"] == "Completed"
        assert receipts[str(s1)]["Store__c"] == "Fifth Avenue" and receipts[str(s1)]["Associate__c"] == "Maya Stone"
        assert receipts[str(refund)]["Status__c"] == "Refund" and receipts[str(refund)]["Total__c"] == -800.0

        lines = sf.by("Clasp_Receipt_Line__c", "Clasp_External_Id__c")
        assert len(lines) == 3
        for line_id in store.lines["s1"]:
            assert lines[str(line_id)]["Receipt__c"] == receipts[str(s1)]["Id"]
        refund_line = lines[str(store.lines["refund"][0])]
        assert refund_line["Quantity__c"] == -1 and refund_line["Line_Total__c"] == -800.0
        assert refund_line["Product__c"] == products[f"clasp:{chain}"]["Id"]

        # The CRM ids are kept as the CRM connector's external references.
        async with rt.db.session() as s:
            refs = {(r.object_type, r.unified_id): r.external_id for r in (await s.exec(
                select(ExternalRef).where(ExternalRef.connector_id == cid))).all()}
            consumer = (await s.exec(select(FeedConsumer).where(FeedConsumer.name == consumer_name(cid)))).one()
            run = (await s.exec(select(SyncRun).where(SyncRun.connector_id == cid))).one()
        assert refs[("client", ann)] == contacts[str(ann)]["Id"]
        assert refs[("sale", s1)] == receipts[str(s1)]["Id"]
        assert consumer.position > 0
        assert run.status == "succeeded" and run.stats["api"]["api_limit"] == 15000

        # A second push with nothing new sends nothing; the quote completing and the sale voided do.
        calls = sf.stats()["calls"]
        again = await push(rt, cid)
        assert sum(again.pushed.values()) == 0 and sf.stats()["calls"] == calls
        await set_sale_status(rt, store, quote, "completed")
        await set_sale_status(rt, store, s1, "voided")
        await set_sale_status(rt, store, walk_in, "voided")  # never a receipt: stays out
        third = await push(rt, cid)
        assert third.status == "succeeded"
        receipts = sf.by("Clasp_Receipt__c", "Clasp_External_Id__c")
        assert set(receipts) == {str(s1), str(refund), str(quote)}
        assert receipts[str(s1)]["Status__c"] == "Voided"
        assert receipts[str(quote)]["Contact__c"] == sf.by("Contact", "Clasp_Client_Id__c")[str(ben)]["Id"]
        assert len(sf.records("Contact")) == 2 and len(sf.records("Clasp_Receipt_Line__c")) == 4
    assert (await _connector(rt, cid)).state == "ok"


async def test_existing_contacts_are_adopted_not_duplicated(rt: Runtime) -> None:
    store = await make_store(rt)
    with serve_sandbox() as sf:
        by_email = sf.seed("Contact", LastName="LEE", Email="ANN@Example.com", Title="VIP")
        by_phone = sf.seed("Contact", LastName="Ortiz", Phone="(212) 555-0177")
        twin_a = sf.seed("Contact", LastName="Kim", Email="kim@example.com")
        twin_b = sf.seed("Contact", LastName="Kim", Phone="+1 212-555-0188")
        someone_else = sf.seed("Contact", LastName="Other", Email="other@example.com")
        ann, ben, kim = await add_clients(
            rt, store, client("c1", "Ann", "Lee", "ann@example.com"), client("c2", "Ben", "Ortiz", "2125550177"),
            client("c3", "Kim", "Park", "kim@example.com", "2125550188"))
        cid = await add_salesforce(rt, sf)
        report = await push(rt, cid)
        assert report.status == "succeeded", report.message

        contacts = sf.by("Contact", "Clasp_Client_Id__c")
        assert contacts[str(ann)]["Id"] == by_email["Id"] and contacts[str(ann)]["Title"] == "VIP"
        assert contacts[str(ann)]["FirstName"] == "Ann"
        assert contacts[str(ben)]["Id"] == by_phone["Id"]
        # Kim matches two different Contacts (email and phone): a person decides, Clasp does not guess.
        assert str(kim) not in contacts
        assert len(sf.records("Contact")) == 5
        errors = await _errors(rt)
        assert [(e.stream, e.external_id) for e in errors] == [("client", str(kim))]
        assert set(errors[0].context["crm_error"]["candidates"]) == {twin_a["Id"], twin_b["Id"]}
        assert errors[0].payload["data"]["emails"] == ["kim@example.com"]

        # The admin links one of them by hand; the replay adopts nothing new and creates nothing.
        sf.patch(f"/_sandbox/records/Contact/{twin_a['Id']}", {"Clasp_Client_Id__c": str(kim)})
        result = await replay_push_error(rt, errors[0].id)  # type: ignore[arg-type]
        assert result.ok, result.message
        assert len(sf.records("Contact")) == 5
        assert sf.by("Contact", "Clasp_Client_Id__c")[str(kim)]["Id"] == twin_a["Id"]
        assert await _errors(rt) == []
        assert someone_else["Id"] not in {c["Id"] for c in sf.by("Contact", "Clasp_Client_Id__c").values()}


async def test_duplicate_rule_and_multiple_external_ids_go_to_the_error_queue(rt: Runtime) -> None:
    store = await make_store(rt)
    with serve_sandbox() as sf:
        # Adoption on phone only: the email twin is not adopted, so Salesforce's duplicate rule fires.
        sf.seed("Contact", LastName="Lee", Email="ann@example.com")
        ann, ben = await add_clients(rt, store, client("c1", "Ann", "Lee", "ann@example.com"),
                                     client("c2", "Ben", "Ortiz", "ben@example.com"))
        cid = await add_salesforce(rt, sf, match_on="phone")
        report = await push(rt, cid)
        assert report.status == "succeeded" and report.errors == 1
        (error,) = await _errors(rt)
        assert error.external_id == str(ann) and "DUPLICATES_DETECTED" in error.reason
        assert error.context["crm_error"]["errorCode"] == "DUPLICATES_DETECTED"
        assert len(sf.records("Contact")) == 2  # ben created, ann not

        # Replaying without a fix fails the same way and keeps one open error (attempts counted).
        assert not (await replay_push_error(rt, error.id)).ok  # type: ignore[arg-type]
        (again,) = await _errors(rt)
        assert again.id == error.id and again.attempts == 2

        # Fixed in Salesforce (the existing record is given Ann's id): the replay updates it, no duplicate.
        existing = next(c for c in sf.records("Contact") if c.get("Email") == "ann@example.com")
        sf.patch(f"/_sandbox/records/Contact/{existing['Id']}", {"Clasp_Client_Id__c": str(ann)})
        results = await replay_all_push(rt, connector_id=cid)
        assert [r.ok for r in results] == [True]
        contacts = sf.by("Contact", "Clasp_Client_Id__c")
        assert contacts[str(ann)]["Id"] == existing["Id"] and len(sf.records("Contact")) == 2

        # Two Salesforce records carrying one client id (HTTP 300 on the single upsert): queued, not guessed.
        sf.seed("Contact", LastName="Ortiz copy", Clasp_Client_Id__c=str(ben))
        async with rt.db.transaction() as s:
            await edit_client(s, ben, {"first_name": "Benjamin"}, actor="test", origin="user:1")
        report = await push(rt, cid)
        (error,) = await _errors(rt)
        assert error.external_id == str(ben) and error.context["crm_error"]["errorCode"] == "MULTIPLE_RECORDS"
        assert len(error.context["crm_error"]["candidates"]) == 2
        # Resolved in Salesforce (the copy deleted); the replay updates the one left.
        copy = next(c for c in sf.records("Contact") if c["LastName"] == "Ortiz copy")
        sf.delete(f"/_sandbox/records/Contact/{copy['Id']}")
        assert (await replay_push_error(rt, error.id)).ok  # type: ignore[arg-type]
        assert sf.by("Contact", "Clasp_Client_Id__c")[str(ben)]["FirstName"] == "Benjamin"
        assert len(sf.records("Contact")) == 2


async def test_session_expiry_and_503s_mid_push_lose_and_duplicate_nothing(rt: Runtime) -> None:
    store = await make_store(rt)
    ids = await add_clients(rt, store, *[client(f"c{i}", f"First{i}", f"Last{i}", f"person{i}@example.com")
                                         for i in range(450)])
    ring = await add_product(rt, store, "RING-1", "Ring", 1000)
    for i, client_id in enumerate(ids[:300]):
        await add_sale(rt, store, f"s{i}", client_id, [(ring, 1, 1000)])
    with serve_sandbox() as sf:
        cid = await add_salesforce(rt, sf)
        # Mid-push: two 503s on collections calls (retried) and the session ending (re-authenticated once).
        sf.post("/_sandbox/faults", {"status": 503, "count": 2, "after": 1, "path": "composite"})
        sf.post("/_sandbox/faults", {"status": 401, "count": 1, "after": 4})
        first = await push(rt, cid, full=False)
        assert first.status == "succeeded", first.message
        assert sf.stats()["token_calls"] == 2
        assert len(sf.by("Contact", "Clasp_Client_Id__c")) == 450
        assert len(sf.by("Clasp_Receipt__c", "Clasp_External_Id__c")) == 300

        # An outage longer than the retries: the run stops without moving its checkpoint past the chunk.
        for key in list(store.sales)[:250]:
            await set_sale_status(rt, store, store.sales[key], "voided")
        sf.post("/_sandbox/faults", {"status": 503, "count": 1000, "after": 1, "path": "composite"})
        second = await push(rt, cid, chunk=100)
        assert second.status == "deferred" and "503" in (second.message or "")
        connector = await _connector(rt, cid)
        assert connector.state == "error" and "503" in (connector.state_message or "")
        assert second.rows == 0 and second.position == first.position  # checkpoint not past what failed

        sf.post("/_sandbox/config", {"clear_faults": True})
        third = await push(rt, cid, chunk=100)
        assert third.status == "succeeded", third.message
        receipts = sf.by("Clasp_Receipt__c", "Clasp_External_Id__c")
        assert len(receipts) == 300 and len(sf.by("Clasp_Receipt_Line__c", "Clasp_External_Id__c")) == 300
        voided = {str(store.sales[k]) for k in list(store.sales)[:250]}
        assert {k for k, r in receipts.items() if r["Status__c"] == "Voided"} == voided
        assert len(sf.records("Contact")) == 450 and len(sf.records("Product2")) == 1
    assert (await _connector(rt, cid)).state == "ok"


async def test_backfill_uses_bulk_jobs_and_a_rerun_duplicates_nothing(rt: Runtime) -> None:
    store = await make_store(rt)
    ids = await add_clients(rt, store, *[client(f"c{i}", f"F{i}", f"L{i}", f"p{i}@example.com", f"+1212555{i:04d}")
                                         for i in range(260)])
    products = [await add_product(rt, store, f"SKU-{i}", f"Piece {i}", 500) for i in range(3)]
    for i, client_id in enumerate(ids):
        await add_sale(rt, store, f"s{i}", client_id, [(products[i % 3], 1, 500), (products[(i + 1) % 3], 1, 500)])
    with serve_sandbox() as sf:
        existing = sf.seed("Contact", LastName="L7", Phone="(212) 555-0007")
        cid = await add_salesforce(rt, sf, bulk_threshold=200)
        report = await push(rt, cid, full=True)
        assert report.status == "succeeded", report.message and report.full
        stats = sf.stats()
        assert stats["jobs"] == 3  # Contacts, receipts, lines (3 products go through a collection call)
        contacts = sf.by("Contact", "Clasp_Client_Id__c")
        assert len(contacts) == 260 and len(sf.records("Contact")) == 260
        assert contacts[str(ids[7])]["Id"] == existing["Id"]  # adopted on the phone number
        assert len(sf.by("Clasp_Receipt__c", "Clasp_External_Id__c")) == 260
        lines = sf.by("Clasp_Receipt_Line__c", "Clasp_External_Id__c")
        assert len(lines) == 520 and all(line["Product__c"] for line in lines.values())
        assert stats["calls"] <= 25, stats["by_kind"]

        again = await push(rt, cid, full=True)
        assert again.status == "succeeded"
        assert len(sf.records("Contact")) == 260 and len(sf.records("Clasp_Receipt__c")) == 260
        assert len(sf.records("Clasp_Receipt_Line__c")) == 520
        async with rt.db.session() as s:
            refs = (await s.exec(select(ExternalRef).where(ExternalRef.connector_id == cid,
                                                           ExternalRef.object_type == "client"))).all()
        assert len(refs) == 260


async def test_merged_clients_receipts_follow_the_survivor(rt: Runtime) -> None:
    store = await make_store(rt)
    ann, ann2 = await add_clients(rt, store, client("c1", "Ann", "Lee", "ann@example.com"),
                                  client("c2", "Annie", "Lee", "annie@example.com"))
    ring = await add_product(rt, store, "RING-1", "Ring", 1000)
    sale_a = await add_sale(rt, store, "a", ann, [(ring, 1, 1000)])
    sale_b = await add_sale(rt, store, "b", ann2, [(ring, 1, 1000)])
    with serve_sandbox() as sf:
        cid = await add_salesforce(rt, sf)
        assert (await push(rt, cid)).status == "succeeded"
        async with rt.db.transaction() as s:
            await merge_clients(s, ann, ann2, actor="test")
        report = await push(rt, cid)
        assert report.status == "succeeded", report.message
        contacts = sf.by("Contact", "Clasp_Client_Id__c")
        receipts = sf.by("Clasp_Receipt__c", "Clasp_External_Id__c")
        assert receipts[str(sale_a)]["Contact__c"] == contacts[str(ann)]["Id"]
        assert receipts[str(sale_b)]["Contact__c"] == contacts[str(ann)]["Id"]
        assert len(receipts) == 2


async def test_leads_with_jwt_bearer_auth(rt: Runtime) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    store = await make_store(rt)
    (ann,) = await add_clients(rt, store, client("c1", "Ann", "", "ann@example.com"))
    with serve_sandbox(jwt_public_key=public_pem) as sf:
        jwt_settings = {"auth_mode": "jwt", "username": "integration@clasp.example", "client_object": "Lead"}
        bad = await add_salesforce(rt, sf, name="Wrong key", private_key=other, **jwt_settings)
        report = await push(rt, bad)
        assert report.status == "failed" and "invalid assertion" in (report.message or "")
        assert (await _connector(rt, bad)).state == "error"

        cid = await add_salesforce(rt, sf, private_key=private_pem, **jwt_settings)
        report = await push(rt, cid)
        assert report.status == "succeeded", report.message
        (lead,) = sf.records("Lead")
        assert lead["Clasp_Client_Id__c"] == str(ann) and lead["LastName"] == "Ann"
        assert lead["Company"] == "[not provided]" and lead["Email"] == "ann@example.com"
        assert sf.records("Contact") == []


async def test_rotated_refresh_token_is_kept_and_used(rt: Runtime) -> None:
    from core.connectors import load_settings

    store = await make_store(rt)
    await add_clients(rt, store, client("c1", "Ann", "Lee", "ann@example.com"))
    with serve_sandbox(rotate_refresh_tokens=True) as sf:
        cid = await add_salesforce(rt, sf)
        assert (await push(rt, cid)).status == "succeeded"
        connector = await _connector(rt, cid)
        stored = load_settings(rt, connector).refresh_token.get_secret_value()  # type: ignore[attr-defined]
        assert stored != "5Aep861sandbox-refresh-token"
        await add_clients(rt, store, client("c2", "Ben", "Ortiz", "ben@example.com"))
        assert (await push(rt, cid)).status == "succeeded"  # the old token is dead: the new one worked
        assert len(sf.records("Contact")) == 2


async def test_daily_limit_slows_down_then_stops_and_alerts(rt: Runtime) -> None:
    store = await make_store(rt)
    with serve_sandbox(daily_limit=1000, api_usage=850) as sf:
        cid = await add_salesforce(rt, sf, daily_limit_threshold=0.8, near_limit_pause_seconds=600)
        assert (await push(rt, cid)).full  # the first run: a backfill of nothing; changes come next
        await add_clients(rt, store, *[client(f"c{i}", f"F{i}", f"L{i}", f"p{i}@example.com") for i in range(30)])
        report = await push(rt, cid, chunk=10)
        # Above 80% of the daily limit: one batch per run, then a pause; the run itself is healthy.
        assert report.status == "deferred" and report.pushed == {"client": 10}
        assert report.summary()["usage"]["throttled"] is True
        assert report.usage["api_usage"] >= 850 and report.usage["api_limit"] == 1000
        connector = await _connector(rt, cid)
        assert connector.state == "ok" and "daily limit" in (connector.state_message or "")
        assert connector.next_sync_at is not None
        async with rt.db.session() as s:
            runs = (await s.exec(select(SyncRun).where(SyncRun.connector_id == cid))).all()
        assert runs[-1].status == "succeeded" and runs[-1].stats["api"]["api_usage"] >= 850

        # The allocation spent: REQUEST_LIMIT_EXCEEDED stops the push and alerts; nothing is lost.
        sf.post("/_sandbox/config", {"api_usage": 1000})
        report = await push(rt, cid, chunk=10)
        assert report.status == "deferred" and report.retry_after == 3600
        connector = await _connector(rt, cid)
        assert connector.state == "error" and "REQUEST_LIMIT_EXCEEDED" in (connector.state_message or "")
        sf.post("/_sandbox/config", {"api_usage": 0})
        report = await push(rt, cid)
        assert report.status == "succeeded" and len(sf.records("Contact")) == 30


async def test_walk_in_receipts_when_asked_and_the_connection_check(rt: Runtime) -> None:
    from core.connectors import context_for

    store = await make_store(rt)
    ring = await add_product(rt, store, "RING-1", "Ring", 1000)
    walk_in = await add_sale(rt, store, "w", None, [(ring, 1, 1000)])
    with serve_sandbox() as sf:
        cid = await add_salesforce(rt, sf, push_walk_in_sales=True)
        connector = await _connector(rt, cid)
        ctype = rt.registry.connector_type("salesforce")
        check = await ctype.check(context_for(rt, connector))
        assert check.ok and check.details["instance_url"] == sf.url, check.message
        report = await push(rt, cid)
        assert report.status == "succeeded"
        (receipt,) = sf.records("Clasp_Receipt__c")
        assert receipt["Clasp_External_Id__c"] == str(walk_in) and receipt.get("Contact__c") is None
        bad = await add_salesforce(rt, sf, name="Wrong secret", client_secret="nope")
        check = await ctype.check(context_for(rt, await _connector(rt, bad)))
        assert not check.ok and "invalid_client" in check.message
