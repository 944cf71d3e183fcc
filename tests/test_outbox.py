"""The outbox end to end against the Twilio sandbox on a real socket: enqueue in the caller's
transaction, the send rules in each client's timezone with a frozen clock, retries, reconciliation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import col, select

from core.models import ClientContact, Consent, Outreach
from core.outreach.consent import current_consent
from core.outreach.outbox import OutboxError, enqueue, requeue
from core.outreach.sender import flush
from core.runtime import Runtime
from tests.twilio.fixtures import FROM_NUMBER, Sandbox, World, add_twilio, build_world, closed_port_url, serve_sandbox


@pytest.fixture
def sandbox():
    with serve_sandbox() as server:
        yield server


@pytest.fixture
async def world(rt: Runtime, sandbox: Sandbox) -> World:
    rt.settings.base_url = closed_port_url()  # status callbacks go nowhere in these tests
    w = await build_world(rt)
    await add_twilio(rt, sandbox)
    return w


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def queue(rt: Runtime, client_id: int, body: str, **kw: object) -> int:
    async with rt.db.transaction() as s:
        row = await enqueue(s, client_id=client_id, body=body, **kw)  # type: ignore[arg-type]
        return row.id  # type: ignore[return-value]


async def row(rt: Runtime, oid: int) -> Outreach:
    async with rt.db.session() as s:
        found = await s.get(Outreach, oid)
        assert found is not None
        return found


# ------------------------------------------------------------------------------------------ enqueue


async def test_enqueue_belongs_to_the_callers_transaction(rt: Runtime, world: World) -> None:
    with pytest.raises(RuntimeError):
        async with rt.db.transaction() as s:
            await enqueue(s, client_id=world.clients["ann"], body="Your ring is ready")
            raise RuntimeError("the cause failed")
    async with rt.db.session() as s:
        assert (await s.exec(select(Outreach))).all() == []
    oid = await queue(rt, world.clients["ann"], "Your ring is ready", kind="transactional")
    queued = await row(rt, oid)
    assert (queued.state, queued.to_address, queued.channel) == ("pending", world.phones["ann"], "sms")
    assert queued.location_id == world.locations["nyc"] and queued.associate_id == world.associates["maya"]


async def test_an_occasion_fires_once_and_keeps_the_transaction_usable(rt: Runtime, world: World) -> None:
    async with rt.db.transaction() as s:
        first = await enqueue(s, client_id=world.clients["ann"], body="Happy birthday", occasion_key="bday:ann:2027")
        again = await enqueue(s, client_id=world.clients["ann"], body="Happy birthday", occasion_key="bday:ann:2027")
        other = await enqueue(s, client_id=world.clients["ben"], body="Hi", kind="transactional")
    assert first.id == again.id and other.id != first.id
    async with rt.db.session() as s:
        assert len((await s.exec(select(Outreach))).all()) == 2


async def test_enqueue_refuses_what_cannot_be_sent(rt: Runtime, world: World) -> None:
    async with rt.db.transaction() as s:
        for kwargs in (
            {"body": "  "},
            {"body": "x" * 1601},
            {"body": "pic", "media_urls": ["ftp://example.com/a.jpg"]},
            {"body": "hi", "kind": "spam"},
        ):
            with pytest.raises(OutboxError):
                await enqueue(s, client_id=world.clients["ann"], **kwargs)  # type: ignore[arg-type]
        with pytest.raises(OutboxError):
            await enqueue(s, client_id=999_999, body="hi")


# --------------------------------------------------------------------------------------------- send


async def test_sms_and_mms_reach_the_sandbox_once_with_a_per_message_status_callback(
    rt: Runtime, world: World, sandbox: Sandbox
) -> None:
    sms = await queue(rt, world.clients["ann"], "Your ring is resized and ready", kind="transactional")
    mms = await queue(
        rt,
        world.clients["ben"],
        "The new pendant",
        kind="transactional",
        media_urls=["https://images.example.com/pendant.jpg", "https://images.example.com/box.jpg"],
    )
    report = await flush(rt)
    assert sorted(report.sent) == sorted([sms, mms])
    got = sandbox.messages(direction="outbound-api")
    assert len(got) == 2
    by_to = {m["to"]: m for m in got}
    assert by_to[world.phones["ann"]]["body"] == "Your ring is resized and ready"
    assert by_to[world.phones["ann"]]["from"] == FROM_NUMBER
    assert by_to[world.phones["ben"]]["num_media"] == "2" and by_to[world.phones["ben"]]["sid"].startswith("MM")
    callback = urlsplit(by_to[world.phones["ann"]]["status_callback"])
    assert callback.path.endswith("/status") and parse_qs(callback.query) == {"outreach": [str(sms)]}
    sent = await row(rt, sms)
    assert sent.state == "sent" and sent.provider_id == by_to[world.phones["ann"]]["sid"]
    assert sent.provider_status == "queued" and sent.attempts == 1 and sent.sent_at is not None
    assert (await row(rt, mms)).channel == "mms"
    # Nothing is due any more: a second flush sends nothing.
    assert (await flush(rt)).sent == [] and len(sandbox.messages(direction="outbound-api")) == 2


async def test_quiet_hours_wait_in_each_clients_timezone(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    now = utc("2026-07-01T12:00")  # 08:00 New York, 05:00 Los Angeles, 21:00 Tokyo
    ids = {k: await queue(rt, world.clients[k], f"New arrivals, {k}", due_at=now) for k in ("ann", "ben", "cleo")}
    receipt = await queue(rt, world.clients["ben"], "Receipt for your repair", kind="transactional", due_at=now)
    report = await flush(rt, now=now)
    assert report.sent == [receipt] and sorted(report.deferred) == sorted(ids.values())
    expected = {"ann": utc("2026-07-01T13:00"), "ben": utc("2026-07-01T16:00"), "cleo": utc("2026-07-02T00:00")}
    for key, oid in ids.items():
        waiting = await row(rt, oid)
        assert (waiting.state, waiting.due_at) == ("pending", expected[key]), key
        assert "quiet hours" in (waiting.state_reason or "")
    assert [m["to"] for m in sandbox.messages(direction="outbound-api")] == [world.phones["ben"]]
    for key in ("ann", "ben", "cleo"):
        report = await flush(rt, now=expected[key])
        assert report.sent == [ids[key]], key
    assert len(sandbox.messages(direction="outbound-api")) == 4


async def test_frequency_cap_skips_and_records_why(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    now = utc("2026-07-01T15:00")  # 11:00 in New York
    first = await queue(rt, world.clients["ann"], "Sale starts today", due_at=now)
    assert (await flush(rt, now=now)).sent == [first]
    later = now + timedelta(hours=3)
    second = await queue(rt, world.clients["ann"], "Last chance", due_at=later)
    service = await queue(rt, world.clients["ann"], "Your watch is ready", kind="transactional", due_at=later)
    report = await flush(rt, now=later)
    assert report.skipped == [second] and report.sent == [service]
    skipped = await row(rt, second)
    assert skipped.state == "skipped" and "frequency cap" in (skipped.state_reason or "")
    # Skipped for good, not rescheduled: a day later it is still skipped and never sent.
    next_day = now + timedelta(hours=24, minutes=1)
    third = await queue(rt, world.clients["ann"], "New collection", due_at=next_day)
    assert (await flush(rt, now=next_day)).sent == [third]
    assert (await row(rt, second)).state == "skipped"
    bodies = [m["body"] for m in sandbox.messages(direction="outbound-api")]
    assert bodies == ["Sale starts today", "Your watch is ready", "New collection"]


async def test_two_due_marketing_texts_for_one_client_send_only_one(
    rt: Runtime, world: World, sandbox: Sandbox
) -> None:
    now = utc("2026-07-01T15:00")
    a = await queue(rt, world.clients["ann"], "Offer A", due_at=now)
    b = await queue(rt, world.clients["ann"], "Offer B", due_at=now)
    report = await flush(rt, now=now)
    assert report.sent == [a] and report.skipped == [b]
    assert [m["body"] for m in sandbox.messages(direction="outbound-api")] == ["Offer A"]


async def test_consent_gates_marketing_and_opt_out_blocks_everything(
    rt: Runtime, world: World, sandbox: Sandbox
) -> None:
    now = utc("2026-07-01T15:00")
    unknown = await queue(rt, world.clients["dan"], "Promo", due_at=now)
    service = await queue(rt, world.clients["dan"], "Repair ready", kind="transactional", due_at=now)
    opted_out = await queue(rt, world.clients["eve"], "Repair ready", kind="transactional", due_at=now)
    report = await flush(rt, now=now)
    assert report.sent == [service] and sorted(report.skipped) == sorted([unknown, opted_out])
    assert "consent" in ((await row(rt, unknown)).state_reason or "")
    assert "opted out" in ((await row(rt, opted_out)).state_reason or "")
    assert [m["to"] for m in sandbox.messages(direction="outbound-api")] == [world.phones["dan"]]


async def _client_with_phone(rt: Runtime, world: World, phone: str) -> int:
    from core.models import Client

    async with rt.db.transaction() as s:
        client = Client(first_name="Magic", last_name=phone, home_location_id=world.locations["nyc"])
        s.add(client)
        await s.flush()
        s.add(ClientContact(client_id=client.id, kind="phone", value=phone, is_primary=True))  # type: ignore[arg-type]
        return client.id  # type: ignore[return-value]


async def test_automated_texts_pick_the_number_the_composer_shows(rt: Runtime, world: World) -> None:
    from core.models import Client, Connector
    from core.outreach.inbound import receive
    from core.outreach.textable import numbers_for
    from core.plugin import InboundMessage

    landline, mobile, texted_from = "+13125550101", "+13125550102", "+13125550103"
    async with rt.db.transaction() as s:
        client = Client(first_name="Nadia", last_name="Numbers", home_location_id=world.locations["nyc"])
        only_home = Client(first_name="Hal", last_name="Homephone", home_location_id=world.locations["nyc"])
        s.add_all([client, only_home])
        await s.flush()
        s.add_all(
            [
                # The POS's primary number is the home landline; the mobile is the second one.
                ClientContact(client_id=client.id, kind="phone", value=landline, label="Home", is_primary=True),  # type: ignore[arg-type]
                ClientContact(client_id=client.id, kind="phone", value=mobile, label="Mobile"),  # type: ignore[arg-type]
                ClientContact(client_id=client.id, kind="phone", value=texted_from),  # type: ignore[arg-type]
                ClientContact(
                    client_id=only_home.id, kind="phone", value="+13125550104", label="Home", is_primary=True  # type: ignore[arg-type]
                ),
            ]
        )
    first = await row(rt, await queue(rt, client.id, "Your ring is ready", kind="transactional"))  # type: ignore[arg-type]
    assert first.to_address == mobile
    none = await row(rt, await queue(rt, only_home.id, "Your ring is ready", kind="transactional"))  # type: ignore[arg-type]
    assert none.to_address is None
    # Once they text us from a number, that is where texts go — for the composer and the automations alike.
    async with rt.db.transaction() as s:
        twilio = (await s.exec(select(Connector.id).where(col(Connector.type) == "twilio"))).one()
        await receive(
            s,
            connector_id=twilio,  # type: ignore[arg-type]
            message=InboundMessage(
                provider_id="SMinbound1", from_address=texted_from, to_address=FROM_NUMBER, body="Thanks!"
            ),
        )
    second = await row(rt, await queue(rt, client.id, "See you Saturday", kind="transactional"))  # type: ignore[arg-type]
    async with rt.db.session() as s:
        shown = (await numbers_for(s, [client.id]))[client.id].text_to  # type: ignore[list-item,index]
    assert second.to_address == texted_from == shown


async def test_provider_errors_become_consent_and_unusable_numbers(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    clients = {
        n: await _client_with_phone(rt, world, n)
        for n in ("+15005550004", "+15005550001", "+15005550009", "+15005550003")
    }
    ids = {n: await queue(rt, cid, "Ready", kind="transactional") for n, cid in clients.items()}
    report = await flush(rt)
    assert sorted(report.failed) == sorted(ids.values())
    codes = {n: (await row(rt, oid)).error_code for n, oid in ids.items()}
    assert codes == {"+15005550004": "21610", "+15005550001": "21211", "+15005550009": "21614", "+15005550003": "21408"}
    assert "opted out" in ((await row(rt, ids["+15005550004"])).state_reason or "")
    async with rt.db.session() as s:
        statuses = {n: await current_consent(s, cid, "sms") for n, cid in clients.items()}
        ledger = (await s.exec(select(Consent).where(col(Consent.client_id) == clients["+15005550004"]))).all()
        flags = {
            c.value: c.unusable
            for c in (
                await s.exec(select(ClientContact).where(col(ClientContact.client_id).in_(list(clients.values()))))
            ).all()
        }
    assert statuses == {
        "+15005550004": "opted_out",
        "+15005550001": "unknown",
        "+15005550009": "unknown",
        "+15005550003": "unknown",
    }
    assert ledger[-1].source.endswith(":21610")
    assert flags == {"+15005550004": False, "+15005550001": True, "+15005550009": True, "+15005550003": False}
    # Nothing reached the sandbox's outbox; the opted-out client and the unusable numbers are not tried again.
    assert sandbox.messages(direction="outbound-api") == []
    again = [await queue(rt, clients[n], "Retry", kind="transactional") for n in ("+15005550004", "+15005550001")]
    retried = await flush(rt)
    assert sorted(retried.skipped) == sorted(again) and retried.sent == retried.failed == []


async def test_429_and_5xx_are_retried_with_backoff_and_sent_once(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    sandbox.post("/_sandbox/faults", {"status": 429, "code": 20429, "count": 1})
    sandbox.post("/_sandbox/faults", {"status": 503, "count": 1})
    oid = await queue(rt, world.clients["ann"], "Ready for pickup", kind="transactional")
    first = await flush(rt)
    assert first.retrying == [oid]
    waiting = await row(rt, oid)
    assert waiting.state == "pending" and waiting.attempts == 1 and "20429" in (waiting.state_reason or "")
    assert waiting.due_at > waiting.updated_at
    second = await flush(rt, now=waiting.due_at)
    assert second.retrying == [oid]
    waiting = await row(rt, oid)
    third = await flush(rt, now=waiting.due_at)
    assert third.sent == [oid]
    done = await row(rt, oid)
    assert done.state == "sent" and done.attempts == 3
    assert len(sandbox.messages(direction="outbound-api")) == 1


async def test_a_timeout_after_twilio_took_the_message_is_reconciled_not_resent(
    rt: Runtime, world: World, sandbox: Sandbox
) -> None:
    sandbox.post("/_sandbox/faults", {"mode": "hang", "seconds": 3, "count": 1})
    async with rt.db.transaction() as s:
        from core.connectors import get_connector, update_settings

        await update_settings(rt, s, await get_connector(s, "Twilio"), {"request_timeout_seconds": 1})
    oid = await queue(rt, world.clients["ann"], "Your order shipped", kind="transactional")
    report = await flush(rt)
    assert report.unknown == [oid]
    unsure = await row(rt, oid)
    assert unsure.state == "sending" and unsure.provider_id is None
    assert "outcome unknown" in (unsure.state_reason or "")
    # The worker's next pass (here: with the stale period elapsed) asks Twilio instead of sending again.
    later = await flush(rt, stale_after=timedelta(0))
    assert later.reconciled == [oid] and later.sent == []
    got = sandbox.messages(direction="outbound-api")
    assert len(got) == 1
    settled = await row(rt, oid)
    assert settled.state in ("sent", "delivered") and settled.provider_id == got[0]["sid"]


async def test_requeue_sends_a_parked_message_again(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    oid = await queue(rt, world.clients["ann"], "Hello", kind="transactional")
    async with rt.db.transaction() as s:
        parked = await s.get(Outreach, oid)
        parked.state = "review"  # type: ignore[union-attr]
        s.add(parked)
    async with rt.db.transaction() as s:
        await requeue(s, oid)
        with pytest.raises(OutboxError):
            await requeue(s, oid)  # pending now: nothing to requeue
    assert (await flush(rt)).sent == [oid]
    assert len(sandbox.messages(direction="outbound-api")) == 1


async def test_without_a_messaging_connector_the_text_fails_visibly(rt: Runtime, sandbox: Sandbox) -> None:
    w = await build_world(rt)
    oid = await queue(rt, w.clients["ann"], "Hello", kind="transactional")
    report = await flush(rt)
    assert report.failed == [oid]
    assert "no enabled messaging connector" in ((await row(rt, oid)).state_reason or "")


async def test_bad_location_data_fails_one_row_into_the_error_queue(
    rt: Runtime, world: World, sandbox: Sandbox
) -> None:
    from core.models import Location, SyncError

    async with rt.db.transaction() as s:
        la = await s.get(Location, world.locations["la"])
        la.quiet_hours_start = "9am"  # type: ignore[union-attr]
        s.add(la)
    now = utc("2026-07-01T18:00")
    broken = await queue(rt, world.clients["ben"], "Promo", due_at=now)
    fine = await queue(rt, world.clients["ann"], "Promo", due_at=now)
    report = await flush(rt, now=now)
    assert report.failed == [broken] and report.sent == [fine]
    assert "9am" in ((await row(rt, broken)).state_reason or "")
    async with rt.db.session() as s:
        errors = (await s.exec(select(SyncError).where(col(SyncError.stage) == "outbox"))).all()
    assert [(e.external_id, e.payload["outreach_id"]) for e in errors] == [(str(broken), broken)]


async def test_an_unreachable_provider_is_retried_later(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    async with rt.db.transaction() as s:
        from core.connectors import get_connector, update_settings

        await update_settings(rt, s, await get_connector(s, "Twilio"), {"api_base_url": closed_port_url()})
    oid = await queue(rt, world.clients["ann"], "Hello", kind="transactional")
    assert (await flush(rt)).retrying == [oid]
    waiting = await row(rt, oid)
    assert waiting.state == "pending" and "cannot reach Twilio" in (waiting.state_reason or "")
