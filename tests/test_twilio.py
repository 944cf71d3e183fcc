"""Twilio webhooks through Clasp's real web app and the sandbox on real sockets: signatures, status
that never regresses, STOP/START/HELP, unknown numbers, conversations and the messages API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import httpx
import pytest
from sqlmodel import col, select

from core.access import Principal, principal_for
from core.connectors import context_for, get_connector
from core.models import Client, ClientContact, Consent, Outreach, User
from core.outreach import conversations
from core.outreach.consent import current_consent
from core.outreach.outbox import enqueue
from core.outreach.sender import flush
from core.runtime import Runtime
from core.tokens import create_token
from plugins.sms_twilio.sandbox.app import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, sign
from tests.twilio.fixtures import (
    FROM_NUMBER,
    Sandbox,
    ThreadServer,
    World,
    add_twilio,
    build_world,
    serve_clasp,
    serve_sandbox,
    wait_for,
)


@pytest.fixture
def sandbox():
    with serve_sandbox() as server:
        yield server


@pytest.fixture
def clasp(rt: Runtime):
    with serve_clasp(rt) as server:
        yield server


@pytest.fixture
async def world(rt: Runtime, sandbox: Sandbox, clasp: ThreadServer) -> World:
    w = await build_world(rt)
    w.connector = await add_twilio(rt, sandbox)  # type: ignore[attr-defined]
    return w


def inbound_url(clasp: ThreadServer, world: World) -> str:
    return f"{clasp.url}/webhooks/twilio/{world.connector}/inbound"  # type: ignore[attr-defined]


def status_url(clasp: ThreadServer, world: World, query: str = "") -> str:
    return f"{clasp.url}/webhooks/twilio/{world.connector}/status{query}"  # type: ignore[attr-defined]


async def send_one(rt: Runtime, client_id: int, body: str, kind: str = "transactional") -> int:
    async with rt.db.transaction() as s:
        row = await enqueue(s, client_id=client_id, body=body, kind=kind)
    report = await flush(rt)
    assert report.sent == [row.id], report
    return row.id  # type: ignore[return-value]


async def get_row(rt: Runtime, oid: int) -> Outreach:
    async with rt.db.session() as s:
        found = await s.get(Outreach, oid)
        assert found is not None
        return found


async def rows(rt: Runtime, *where: object) -> list[Outreach]:
    async with rt.db.session() as s:
        return list((await s.exec(select(Outreach).where(*where).order_by(col(Outreach.id)))).all())


async def post_form(url: str, params: dict[str, str], signature: str | None = None) -> httpx.Response:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, data=params, headers=headers)


async def post_status(url: str, params: dict[str, str], token: str = DEFAULT_AUTH_TOKEN) -> httpx.Response:
    return await post_form(url, params, sign(token, url, params))


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "From": FROM_NUMBER,
        "To": "+12125550134",
        "ApiVersion": "2010-04-01",
        **extra,
    }


# ------------------------------------------------------------------------------------------- status


async def test_status_callbacks_move_a_text_to_delivered(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    oid = await send_one(rt, world.clients["ann"], "Your ring is ready")
    done = await wait_for(lambda: _state_is(rt, oid, "delivered"))
    assert done.provider_status == "delivered" and done.delivered_at is not None
    assert {c["status"]: c["http_status"] for c in sandbox.callbacks()} == {"sent": 200, "delivered": 200}


async def _state_is(rt: Runtime, oid: int, state: str) -> Outreach | None:
    found = await get_row(rt, oid)
    return found if found.state == state else None


async def test_status_never_regresses_when_callbacks_arrive_out_of_order(
    rt: Runtime, world: World, sandbox: Sandbox
) -> None:
    sandbox.post("/_sandbox/config", {"out_of_order": True, "duplicate_callbacks": True})
    oid = await send_one(rt, world.clients["ann"], "Out of order")
    await wait_for(lambda: len(sandbox.callbacks()) == 4 and sandbox.idle())
    assert [c["status"] for c in sandbox.callbacks()] == ["delivered", "delivered", "sent", "sent"]
    final = await get_row(rt, oid)
    assert (final.state, final.provider_status) == ("delivered", "delivered")
    # Late reports of every earlier stage, signed and accepted (200), change nothing.
    url = status_url(clasp_of(rt), world, f"?outreach={oid}")
    for status in ("sent", "sending", "queued", "undelivered"):
        assert (await post_status(url, status_params(final.provider_id, status))).status_code == 200  # type: ignore[arg-type]
    again = await get_row(rt, oid)
    assert (again.state, again.provider_status, again.delivered_at) == ("delivered", "delivered", final.delivered_at)
    # A later stage still moves it forward.
    assert (await post_status(url, status_params(final.provider_id, "read"))).status_code == 200  # type: ignore[arg-type]
    assert (await get_row(rt, oid)).provider_status == "read"


def clasp_of(rt: Runtime) -> ThreadServer:
    class _Url:
        url = rt.settings.base_url

    return _Url  # type: ignore[return-value]


async def test_undelivered_report_marks_the_number_unusable(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    async with rt.db.transaction() as s:
        s.add(ClientContact(client_id=world.clients["dan"], kind="phone", value="+15005550010", is_primary=False))
        row = await enqueue(
            s, client_id=world.clients["dan"], body="Landline", kind="transactional", to_address="+15005550010"
        )
    assert (await flush(rt)).sent == [row.id]
    failed = await wait_for(lambda: _state_is(rt, row.id, "undelivered"))  # type: ignore[arg-type]
    assert failed.error_code == "30006" and "30006" in (failed.state_reason or "")
    async with rt.db.session() as s:
        contact = (await s.exec(select(ClientContact).where(ClientContact.value == "+15005550010"))).one()
    assert contact.unusable


async def test_bad_signatures_are_rejected_with_403(
    rt: Runtime, world: World, sandbox: Sandbox, clasp: ThreadServer
) -> None:
    oid = await send_one(rt, world.clients["ann"], "Sig test")
    sid = (await get_row(rt, oid)).provider_id
    url = status_url(clasp, world)
    params = status_params(sid, "failed", ErrorCode="30007")  # type: ignore[arg-type]
    assert (await post_form(url, params)).status_code == 403  # unsigned
    assert (await post_status(url, params, token="not-the-auth-token")).status_code == 403
    tampered = {**params, "MessageStatus": "delivered"}
    signature = sign(DEFAULT_AUTH_TOKEN, url, params)
    assert (await post_form(url, tampered, signature)).status_code == 403
    # Signed for an internal address, not the public base URL Clasp is configured with: rejected.
    internal = url.replace("127.0.0.1", "localhost")
    assert (await post_form(url, params, sign(DEFAULT_AUTH_TOKEN, internal, params))).status_code == 403
    await wait_for(lambda: sandbox.idle())
    assert (await get_row(rt, oid)).state != "failed"
    # An inbound message with a bad signature stores nothing.
    answer = sandbox.text_in(world.phones["ann"], "STOP", inbound_url(clasp, world), bad_signature=True)
    assert answer["status_code"] == 403
    assert await rows(rt, col(Outreach.direction) == "inbound") == []
    async with rt.db.session() as s:
        assert await current_consent(s, world.clients["ann"], "sms") == "opted_in"
    # Unknown connector ids and types are 404, before any signature is looked at.
    assert (await post_form(f"{clasp.url}/webhooks/twilio/9999/status", params)).status_code == 404
    other_type = f"{clasp.url}/webhooks/other/{world.connector}/status"  # type: ignore[attr-defined]
    assert (await post_form(other_type, params)).status_code == 404


# ------------------------------------------------------------------------------------------ inbound


async def test_stop_is_honoured_before_the_next_send_and_start_undoes_it(
    rt: Runtime, world: World, sandbox: Sandbox, clasp: ThreadServer
) -> None:
    ann = world.clients["ann"]
    answer = sandbox.text_in(world.phones["ann"], "Stop", inbound_url(clasp, world))
    assert answer["status_code"] == 200 and "<Message>" not in answer["response"]  # Twilio confirms STOP itself
    async with rt.db.session() as s:
        assert await current_consent(s, ann, "sms") == "opted_out"
        ledger = (await s.exec(select(Consent).where(col(Consent.client_id) == ann).order_by(col(Consent.id)))).all()
    assert ledger[-1].source == "sms:STOP" and answer["sid"] in (ledger[-1].note or "")
    async with rt.db.transaction() as s:
        blocked = await enqueue(s, client_id=ann, body="Receipt", kind="transactional")
    report = await flush(rt)
    assert report.skipped == [blocked.id] and report.sent == []
    assert sandbox.messages(direction="outbound-api") == []
    # START opts back in; texts flow again.
    sandbox.text_in(world.phones["ann"], "START", inbound_url(clasp, world))
    async with rt.db.session() as s:
        assert await current_consent(s, ann, "sms") == "opted_in"
    await send_one(rt, ann, "Welcome back")
    inbound = await rows(rt, col(Outreach.direction) == "inbound")
    assert [(r.body, r.state, r.client_id) for r in inbound] == [("Stop", "received", ann), ("START", "received", ann)]


async def test_the_sandbox_refuses_after_stop_even_if_clasp_missed_it(
    rt: Runtime, world: World, sandbox: Sandbox
) -> None:
    # The person texted STOP while Clasp's webhook was unreachable: Twilio still blocks, answers 21610,
    # and Clasp records the opt-out from that answer.
    sandbox.text_in(world.phones["ben"], "STOP", "http://127.0.0.1:9/unreachable")
    async with rt.db.transaction() as s:
        row = await enqueue(s, client_id=world.clients["ben"], body="Hello", kind="transactional")
    assert (await flush(rt)).failed == [row.id]
    assert (await get_row(rt, row.id)).error_code == "21610"
    async with rt.db.session() as s:
        assert await current_consent(s, world.clients["ben"], "sms") == "opted_out"


async def test_help_is_answered_and_replies_join_the_conversation(
    rt: Runtime, world: World, sandbox: Sandbox, clasp: ThreadServer
) -> None:
    ann = world.clients["ann"]
    sent = await send_one(rt, ann, "Your ring is ready")
    answer = sandbox.text_in(world.phones["ann"], "help", inbound_url(clasp, world))
    assert answer["status_code"] == 200 and answer["reply"].startswith("Fifth Avenue: reply STOP")
    assert "+12125550100" in answer["reply"]
    assert sandbox.messages(direction="outbound-reply")[0]["body"] == answer["reply"]
    reply = sandbox.text_in(
        world.phones["ann"],
        "Great, I'll come by at 5",
        inbound_url(clasp, world),
        media_urls=["https://example.com/photo.jpg"],
    )
    assert reply["status_code"] == 200 and reply["reply"] is None
    async with rt.db.session() as s:
        owner = await principal(s, "owner@example.com")
        maya = await principal(s, "maya@example.com")
        leo = await principal(s, "leo@example.com")
        thread = await conversations.thread(s, owner, ann)
        assert [(r.direction, r.body) for r in thread] == [  # type: ignore[union-attr]
            ("outbound", "Your ring is ready"),
            ("inbound", "help"),
            ("inbound", "Great, I'll come by at 5"),
        ]
        last = thread[-1]  # type: ignore[index]
        assert last.channel == "mms" and last.media_urls == ["https://example.com/photo.jpg"]
        assert last.associate_id == world.associates["maya"] and last.id != sent
        assert await conversations.unread_counts(s, owner) == {world.associates["maya"]: 2}
        assert await conversations.unread_count(s, maya) == 2
        assert await conversations.unread_count(s, leo) == 0 and await conversations.thread(s, leo, ann) is None
    async with rt.db.transaction() as s:
        assert await conversations.mark_read(s, maya, ann) == 2
    async with rt.db.session() as s:
        assert await conversations.unread_count(s, maya) == 0


async def _user(s, email: str) -> User:  # type: ignore[no-untyped-def]
    return (await s.exec(select(User).where(User.email == email))).one()


async def principal(s, email: str) -> Principal:  # type: ignore[no-untyped-def]
    found = await principal_for(s, await _user(s, email))
    # principal_for may hand back Rows as location ids (see core.api.auth._plain_ids).
    ids = frozenset(int(i[0]) if isinstance(i, Sequence) else int(i) for i in found.location_ids)
    return replace(found, location_ids=ids)


async def test_unknown_numbers_land_in_the_unmatched_inbox(
    rt: Runtime, world: World, sandbox: Sandbox, clasp: ThreadServer
) -> None:
    stranger = "+14155550123"
    answer = sandbox.text_in(stranger, "Do you buy gold?", inbound_url(clasp, world))
    assert answer["status_code"] == 200
    async with rt.db.session() as s:
        owner = await principal(s, "owner@example.com")
        maya = await principal(s, "maya@example.com")
        inbox = await conversations.unmatched_inbox(s, owner)
        assert [(r.from_address, r.client_id, r.body) for r in inbox] == [(stranger, None, "Do you buy gold?")]
        assert await conversations.unmatched_inbox(s, maya) == []
        assert len((await s.exec(select(Client))).all()) == len(world.clients)  # no client invented
    # Once a client has that number, the message shows in their thread, and can be filed under them.
    async with rt.db.transaction() as s:
        s.add(ClientContact(client_id=world.clients["dan"], kind="phone", value=stranger))
    async with rt.db.session() as s:
        thread = await conversations.thread(s, owner, world.clients["dan"])
        assert [r.body for r in thread] == ["Do you buy gold?"]  # type: ignore[union-attr]
    async with rt.db.transaction() as s:
        assert await conversations.attach_unmatched(s, world.clients["dan"]) == 1
    # A webhook retried by Twilio (same MessageSid) is stored once.
    params = {
        "MessageSid": answer["sid"],
        "From": stranger,
        "To": FROM_NUMBER,
        "Body": "Do you buy gold?",
        "NumMedia": "0",
        "AccountSid": DEFAULT_ACCOUNT_SID,
    }
    url = inbound_url(clasp, world)
    retry = await post_form(url, params, sign(DEFAULT_AUTH_TOKEN, url, params))
    assert retry.status_code == 200 and retry.headers["content-type"].startswith("text/xml")
    assert len(await rows(rt, col(Outreach.direction) == "inbound")) == 1


# ---------------------------------------------------------------------------------------------- API


async def test_messages_api_composes_and_lists_within_scope(
    rt: Runtime, world: World, sandbox: Sandbox, clasp: ThreadServer
) -> None:
    tokens = {}
    async with rt.db.transaction() as s:
        for who in ("owner", "maya", "leo"):
            _, tokens[who] = await create_token(s, user_id=world.users[who], name=f"{who} test")
    ann = world.clients["ann"]
    url = f"{clasp.url}/api/v1/clients/{ann}/messages"
    async with httpx.AsyncClient(timeout=30) as http:

        def auth(who: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[who]}"}

        assert (await http.get(url)).status_code == 401
        created = await http.post(
            url, json={"body": "See you Saturday!", "media_urls": ["https://example.com/r.jpg"]}, headers=auth("maya")
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["state"], body["kind"], body["channel"], body["associate_id"]) == (
            "pending",
            "transactional",
            "mms",
            world.associates["maya"],
        )
        # Out of scope: Leo (Los Angeles, own book) cannot see or text Ann.
        assert (await http.get(url, headers=auth("leo"))).status_code == 404
        assert (await http.post(url, json={"body": "hi"}, headers=auth("leo"))).status_code == 404
        # An associate cannot send as someone else; bad input is a 400.
        other = await http.post(url, json={"body": "hi", "associate_id": world.associates["leo"]}, headers=auth("maya"))
        assert other.status_code == 403
        assert (await http.post(url, json={"body": ""}, headers=auth("maya"))).status_code == 400
        assert (await http.post(url, json={"body": "x", "kind": "spam"}, headers=auth("maya"))).status_code == 400
        await flush(rt)
        listed = await http.get(url, headers=auth("owner"))
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert [(m["body"], m["state"]) for m in items] == [("See you Saturday!", "sent")]
        assert listed.json()["next_before"] is None
    got = sandbox.messages(direction="outbound-api")
    assert len(got) == 1 and got[0]["num_media"] == "1"


async def test_check_connects_to_the_sandbox(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    async with rt.db.session() as s:
        connector = await get_connector(s, "Twilio")
    ctype = rt.registry.connector_type("twilio")
    result = await ctype.check(context_for(rt, connector))
    assert result.ok, result.message
    assert result.details["inbound_webhook"].endswith(f"/webhooks/twilio/{connector.id}/inbound")
    async with rt.db.transaction() as s:
        from core.connectors import update_settings

        await update_settings(rt, s, connector, {"auth_token": "wrong"})
    bad = await ctype.check(context_for(rt, connector))
    assert not bad.ok and "20003" in bad.message
    sandbox_reg = rt.registry.sandboxes["twilio"]
    assert sandbox_reg.connector_type == "twilio"


async def test_the_sandbox_inbox_page_lists_messages(rt: Runtime, world: World, sandbox: Sandbox) -> None:
    await send_one(rt, world.clients["ann"], "Shown <in> the inbox")
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(sandbox.url + "/")
        unauthorised = await http.get(sandbox.url + f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Shown &lt;in&gt; the inbox" in page.text and world.phones["ann"] in page.text
    assert unauthorised.status_code == 401 and unauthorised.json()["code"] == 20003
