"""Conversations in the panel over real HTTP: Clasp served by uvicorn, the Twilio sandbox on its own
socket delivering signed status callbacks and inbound texts, and the real worker sending the outbox."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from admin.routes.conversations import media_handlers
from core.jobs import create_worker
from core.models import AuditLog, ClientContact, Outreach
from core.runtime import Runtime
from core.settings import Settings
from core.web import create_app
from tests.admin.conftest import (
    SCREEN_SIZES,
    Org,
    Panel,
    ServedApp,
    build_org,
    runtime_with,
    screenshot_dir,
    text_of,
)
from tests.twilio.fixtures import Sandbox, add_twilio, serve_sandbox, wait_for

ADA_PHONE = "+12125550134"
STRANGER = "+14155550123"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64


def clasp_app(runtime: Runtime) -> Any:
    """The app as `clasp serve` builds it, plus the public /media route if the panel does not mount it yet."""
    app = create_app(runtime)
    if any(route.path.startswith("/media/") for route in app.routes):
        return app
    return create_app(runtime, route_handlers=media_handlers)


@dataclass
class Live:
    clasp: ServedApp
    sandbox: Sandbox
    rt: Runtime
    org: Org
    connector_id: int
    panels: list[Panel]

    @property
    def inbound_url(self) -> str:
        return f"{self.clasp.url}/webhooks/twilio/{self.connector_id}/inbound"

    async def panel(self, person: str) -> Panel:
        panel = Panel(httpx.AsyncClient(base_url=self.clasp.url, timeout=30))
        self.panels.append(panel)
        resp = await panel.sign_in(self.org.users[person])
        assert resp.status_code == 303, resp.text
        return panel

    def text_in(self, body: str, sender: str = ADA_PHONE, **extra: Any) -> dict[str, Any]:
        answer = self.sandbox.text_in(sender, body, self.inbound_url, **extra)
        assert answer["status_code"] == 200, answer
        return answer


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with serve_sandbox() as server:
        yield server


@pytest.fixture
async def live(
    settings: Settings, rt: Runtime, serve: Callable[..., ServedApp], sandbox: Sandbox
) -> AsyncIterator[Live]:
    runtimes: list[Runtime] = []

    def build(url: str) -> Any:
        runtime = runtime_with(settings.model_copy(update={"base_url": url}))
        runtimes.append(runtime)
        return clasp_app(runtime)

    async def close() -> None:
        await runtimes[0].close()

    clasp = serve(build, on_stop=close)
    # Status callback URLs are built by the sending worker (this runtime) and checked by the server.
    rt.settings.base_url = clasp.url
    org = await build_org(rt)
    async with rt.db.transaction() as s:
        s.add(ClientContact(client_id=org.clients["ann_client"], kind="phone", value=ADA_PHONE, is_primary=True))
    connector_id = await add_twilio(rt, sandbox)
    live = Live(clasp, sandbox, rt, org, connector_id, [])
    try:
        yield live
    finally:
        for panel in live.panels:
            await panel.client.aclose()


async def run_queued_jobs(rt: Runtime) -> None:
    """Run what the web app queued, and nothing else: no cron job sends the outbox behind our back."""
    worker = await create_worker(rt, burst=True, cron_jobs=[])
    try:
        await asyncio.wait_for(worker.async_run(), 30)
    finally:
        await worker.close()


async def outreach_rows(rt: Runtime, *where: Any) -> list[Outreach]:
    async with rt.db.session() as s:
        return list((await s.exec(select(Outreach).where(*where).order_by(col(Outreach.id)))).all())


def thread_url(live: Live, key: str = "ann_client") -> str:
    return f"/admin/clients/{live.org.clients[key]}/messages"


# ------------------------------------------------------------------------------------------- scoping


async def test_threads_are_scoped_like_clients(live: Live) -> None:
    ann, cat, manager, owner = [await live.panel(p) for p in ("ann", "cat", "manager", "owner")]
    ada = thread_url(live)
    for panel in (ann, manager, owner):
        page = await panel.get(ada)
        assert page.status_code == 200, page.text
        assert "Messages with Ada Ames" in text_of(page.text)
    # Cat (Uptown) and Ann for Bob's client: not theirs, answered like a missing client.
    for panel, url in ((cat, ada), (ann, thread_url(live, "bob_client")), (ann, "/admin/clients/999999/messages")):
        assert (await panel.get(url)).status_code == 404
        assert (await panel.get(url + "/thread")).status_code == 404
        assert (await panel.post(url, {"body": "hi"})).status_code == 404
    assert (await cat.get(thread_url(live, "uptown_client"))).status_code == 200  # store book
    # The Today page's "Text" action opens the composer with the template's text in it (escaped).
    page = await ann.get(ada + "?body=Happy%20birthday%20%3Cb%3EAda%3C%2Fb%3E")
    assert ">Happy birthday &lt;b&gt;Ada&lt;/b&gt;</textarea>" in page.text
    assert await outreach_rows(live.rt) == []
    # Unknown-number handling is for owners and managers.
    assert (await ann.get("/admin/inbox/unmatched/1/clients?q=a")).status_code == 403
    assert (await ann.post("/admin/inbox/unmatched/1/attach", {"client_id": "1"})).status_code == 403


# ------------------------------------------------------------------------------------- compose & send


async def test_compose_queues_one_text_that_is_sent_once_and_delivered(live: Live) -> None:
    ann = await live.panel("ann")
    await ann.get(thread_url(live))
    resp = await ann.post(
        thread_url(live),
        {"body": "Your ring is resized", "media_url": "https://example.com/ring.jpg", "kind": "transactional"},
        htmx=True,
    )
    assert resp.status_code == 200, resp.text
    assert "Text queued" in resp.text and 'hx-swap-oob="true"' in resp.text
    (row,) = await outreach_rows(live.rt)
    assert (row.direction, row.state, row.kind, row.channel) == ("outbound", "pending", "transactional", "mms")
    assert row.body == "Your ring is resized" and row.media_urls == ["https://example.com/ring.jpg"]
    assert row.to_address == ADA_PHONE
    assert row.associate_id is not None and row.associate_id == (await _associate_of(live, "ann"))
    # The web app kicked the worker: running only the queued jobs sends it, exactly once.
    await run_queued_jobs(live.rt)
    await run_queued_jobs(live.rt)  # a second worker pass must not send it again
    sent = live.sandbox.messages(direction="outbound-api")
    assert len(sent) == 1 and sent[0]["to"] == ADA_PHONE and sent[0]["media_urls"] == ["https://example.com/ring.jpg"]
    # The sandbox's signed status callbacks reach Clasp; the polled fragment shows "delivered".
    await wait_for(lambda: _state_is(live, row.id, "delivered"))  # type: ignore[arg-type]
    fragment = await ann.get(thread_url(live) + "/thread", headers={"hx-request": "true"})
    assert fragment.status_code == 200
    assert re.search(r'data-state="delivered"', fragment.text)
    assert "state-delivered" in fragment.text and "Your ring is resized" in fragment.text
    # Polling with the version the browser already has: nothing new, 204, no swap.
    version = re.search(r"thread\?v=([^\"&]+)", fragment.text).group(1)  # type: ignore[union-attr]
    unchanged = await ann.get(thread_url(live) + f"/thread?v={version}", headers={"hx-request": "true"})
    assert unchanged.status_code == 204
    async with live.rt.db.session() as s:
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "outreach.compose"))).all()
    assert [a.actor for a in audit] == [live.org.users["ann"]]


async def _state_is(live: Live, oid: int, state: str) -> bool:
    async with live.rt.db.session() as s:
        row = await s.get(Outreach, oid)
        return row is not None and row.state == state


async def _associate_of(live: Live, person: str) -> int | None:
    from core.models import User

    async with live.rt.db.session() as s:
        user = (await s.exec(select(User).where(User.email == live.org.users[person]))).one()
        return user.associate_id


async def test_bad_input_is_refused_with_the_form_kept(live: Live) -> None:
    ann = await live.panel("ann")
    await ann.get(thread_url(live))
    empty = await ann.post(thread_url(live), {"body": "   "}, htmx=True)
    assert empty.status_code == 200 and "Type a message or add a picture" in empty.text
    bad_url = await ann.post(thread_url(live), {"body": "Look", "media_url": "ftp://x/y.jpg"}, htmx=True)
    assert "absolute http(s) URL" in bad_url.text and 'value="ftp://x/y.jpg"' in bad_url.text
    assert ">Look</textarea>" in bad_url.text
    plain = await ann.post(thread_url(live), {"body": "x" * 1601})
    assert plain.status_code == 400 and "Keep it under 1600 characters" in plain.text
    assert await outreach_rows(live.rt) == []


async def test_an_uploaded_picture_is_served_publicly_for_the_provider(live: Live) -> None:
    ann = await live.panel("ann")
    await ann.get(thread_url(live))
    files = {"image": ("ring.png", PNG, "image/png")}
    resp = await ann.post(thread_url(live), {"body": "", "kind": "transactional"}, files=files)
    assert resp.status_code == 303, resp.text
    (row,) = await outreach_rows(live.rt)
    (url,) = row.media_urls
    assert re.fullmatch(re.escape(live.clasp.url) + r"/media/[0-9a-f]{32}\.png", url)
    async with httpx.AsyncClient() as anonymous:  # the provider has no panel session
        got = await anonymous.get(url)
        assert got.status_code == 200 and got.content == PNG
        assert got.headers["content-type"] == "image/png" and got.headers["x-content-type-options"] == "nosniff"
        for name in ("../secret_key", "0" * 32 + ".png", "x.png", "0" * 32 + ".html"):
            assert (await anonymous.get(f"{live.clasp.url}/media/{name}")).status_code == 404
    # Not an image (whatever it claims to be), or too big: refused, nothing queued or stored.
    fake = {"image": ("evil.png", b"<script>alert(1)</script>", "image/png")}
    refused = await ann.post(thread_url(live), {"body": "hi"}, files=fake, headers={"hx-request": "true"})
    assert "Only JPEG, PNG or GIF pictures" in refused.text
    big = {"image": ("big.png", PNG + b"\x00" * (5 * 1024 * 1024), "image/png")}
    refused = await ann.post(thread_url(live), {"body": "hi"}, files=big, headers={"hx-request": "true"})
    assert "larger than 5 MB" in refused.text
    # A good picture with a message that is refused anyway (bad URL beside it) leaves no file behind.
    files = {"image": ("ring.png", PNG, "image/png")}
    refused = await ann.post(
        thread_url(live), {"media_url": "ftp://x/y.jpg"}, files=files, headers={"hx-request": "true"}
    )
    assert "absolute http(s) URL" in refused.text
    assert len(await outreach_rows(live.rt)) == 1
    stored = list((live.rt.settings.data_dir / "media").iterdir())
    assert [p.name for p in stored] == [url.rsplit("/", 1)[1]]


# ------------------------------------------------------------------------------------ replies & inbox


async def test_a_reply_shows_in_the_thread_and_is_unread_for_the_owning_associate(live: Live) -> None:
    ann, cat, owner = [await live.panel(p) for p in ("ann", "cat", "owner")]
    live.text_in("Lovely, I'll pick it up Friday", media_urls=["https://example.com/selfie.jpg"])
    # Ann's Inbox and badge flag it; Cat (another store) sees nothing; the owner sees it as Ann's.
    inbox = text_of((await ann.get("/admin/inbox")).text)
    assert "Unread replies for you 1" in inbox and "Ada Ames" in inbox and "pick it up Friday" in inbox
    assert re.search(r'id="inbox-count"[^>]*>1<', (await ann.get("/admin/inbox/count")).text)
    assert "Ada Ames" not in text_of((await cat.get("/admin/inbox")).text)
    assert re.search(r'id="inbox-count"[^>]*><', (await cat.get("/admin/inbox/count")).text)
    owner_inbox = text_of((await owner.get("/admin/inbox")).text)
    assert "Unread for other associates 1" in owner_inbox and "for Ann Lee" in owner_inbox
    # The owner opening the thread leaves it unread for Ann (and says so).
    peek = await owner.get(thread_url(live))
    assert "left unread so they still see it" in text_of(peek.text)
    assert [r.read_at for r in await outreach_rows(live.rt, col(Outreach.direction) == "inbound")] == [None]
    # Ann opens it: shown (with its picture) and marked read.
    page = await ann.get(thread_url(live))
    assert "pick it up Friday" in page.text and 'src="https://example.com/selfie.jpg"' in page.text
    (reply,) = await outreach_rows(live.rt, col(Outreach.direction) == "inbound")
    assert reply.read_at is not None
    assert "Unread replies for you 0" in text_of((await ann.get("/admin/inbox")).text)
    # A reply arriving while the thread is open appears in the next poll, already read for Ann.
    live.text_in("Actually Saturday")
    fragment = await ann.get(thread_url(live) + "/thread?v=stale", headers={"hx-request": "true"})
    assert "Actually Saturday" in fragment.text and "state-unread" not in fragment.text
    assert all(r.read_at for r in await outreach_rows(live.rt, col(Outreach.direction) == "inbound"))


async def test_unknown_numbers_are_filed_under_a_client_by_a_manager(live: Live) -> None:
    manager, ann = await live.panel("manager"), await live.panel("ann")
    live.text_in("Is my watch ready?", sender=STRANGER)
    (msg,) = await outreach_rows(live.rt, col(Outreach.client_id).is_(None))
    page = text_of((await manager.get("/admin/inbox")).text)
    assert "Unknown numbers 1" in page and STRANGER in page and "Is my watch ready?" in page
    assert "Unknown numbers" not in text_of((await ann.get("/admin/inbox")).text)
    found = await manager.get(f"/admin/inbox/unmatched/{msg.id}/clients?q=Ben", headers={"hx-request": "true"})
    assert "Attach to Ben Bell" in found.text and "Hal Hart" not in found.text
    # A client outside the manager's stores cannot be the target.
    harbor = live.org.clients["harbor_client"]
    assert (
        await manager.post(f"/admin/inbox/unmatched/{msg.id}/attach", {"client_id": str(harbor)})
    ).status_code == 404
    ben = live.org.clients["bob_client"]
    done = await manager.post(f"/admin/inbox/unmatched/{msg.id}/attach", {"client_id": str(ben)})
    assert done.status_code == 303 and done.headers["location"] == f"/admin/clients/{ben}/messages"
    (filed,) = await outreach_rows(live.rt, col(Outreach.id) == msg.id)
    assert filed.client_id == ben
    async with live.rt.db.session() as s:
        phones = (await s.exec(select(ClientContact.value).where(ClientContact.client_id == ben))).all()
    assert STRANGER in phones
    assert "Is my watch ready?" in (await manager.get(f"/admin/clients/{ben}/messages")).text
    assert "Unknown numbers 0" in text_of((await manager.get("/admin/inbox")).text)
    # The next text from that number goes straight to Ben's thread.
    live.text_in("Thanks!", sender=STRANGER)
    assert [r.client_id for r in await outreach_rows(live.rt, col(Outreach.direction) == "inbound")] == [ben, ben]


# ------------------------------------------------------------------------------------------- browser


def sample_png(width: int = 240, height: int = 180) -> bytes:
    """A small real PNG (a warm gradient with a ring), so thumbnails look like pictures in screenshots."""
    import struct
    import zlib

    rows = bytearray()
    cx, cy = width / 2, height / 2
    for y in range(height):
        rows.append(0)
        for x in range(width):
            d = ((x - cx) ** 2 + (y - cy) ** 2) ** 0.5
            ring = 38 <= d <= 50
            rows += bytes((230, 190, 60) if ring else (60 + x * 120 // width, 40 + y * 60 // height, 110))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")
    )


@pytest.mark.browser
async def test_a_person_texts_a_client_sees_it_delivered_and_the_reply_arrive(live: Live, page: Any) -> None:
    from playwright.async_api import expect

    from tests.admin.conftest import PASSWORD

    # A picture Clasp itself serves, so the thumbnails load without the internet.
    media = live.rt.settings.data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    (media / ("a" * 32 + ".png")).write_bytes(sample_png())
    picture = f"{live.clasp.url}/media/{'a' * 32}.png"
    ada = live.org.clients["ann_client"]

    await page.goto(f"{live.clasp.url}/admin/clients/{ada}")
    await page.get_by_label("Email").fill(live.org.users["ann"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Ada Ames")).to_be_visible()
    await page.get_by_role("link", name="Messages", exact=True).click()
    await expect(page.get_by_role("heading", name="Messages with Ada Ames")).to_be_visible()
    await expect(page.get_by_text("No texts with this client yet")).to_be_visible()

    await page.get_by_role("textbox", name="Message").fill(
        "Hi Ada, your engagement ring is resized and polished. Here it is!"
    )
    await page.get_by_text("Add a picture").click()
    await page.get_by_label("Picture URL").fill(picture)
    await page.get_by_role("button", name="Send text").click()
    await expect(page.get_by_text("Text queued")).to_be_visible()
    bubble = page.locator("#thread .msg-outbound").last
    await expect(bubble).to_contain_text("your engagement ring is resized")
    await expect(bubble.locator("img")).to_have_attribute("src", picture)
    await expect(page.get_by_role("textbox", name="Message")).to_have_value("")
    # The worker sends what the composer kicked; the sandbox's signed callbacks bring "delivered".
    await run_queued_jobs(live.rt)
    await expect(bubble.locator(".state")).to_have_text("delivered", timeout=20_000)
    assert [m["to"] for m in live.sandbox.messages(direction="outbound-api")] == [ADA_PHONE]

    # Over to the Inbox: nothing unread, then Ada answers and it appears there by itself.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Inbox").click()
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    await expect(page.get_by_text("Nothing unread")).to_be_visible()
    live.text_in("It's gorgeous, thank you! Can I pick it up Saturday morning?", media_urls=[picture])
    row = page.locator("#inbox a.convo", has_text="Ada Ames")
    await expect(row).to_contain_text("pick it up Saturday", timeout=20_000)
    await expect(page.locator(".count-for-you")).to_have_text("1")
    await page.screenshot(path=str(screenshot_dir() / "inbox-desktop.png"), full_page=True)
    await row.click()
    reply = page.locator("#thread .msg-inbound").last
    await expect(reply).to_contain_text("Can I pick it up Saturday morning?")
    await expect(reply.locator("img")).to_be_visible()
    # Reading it in the thread clears it from the Inbox.
    await page.get_by_role("textbox", name="Message").fill("Of course! We open at 10. See you then.")
    await page.get_by_role("button", name="Send text").click()
    await expect(page.locator("#thread .msg-outbound").last).to_contain_text("We open at 10")
    await run_queued_jobs(live.rt)
    await expect(page.locator("#thread .msg-outbound .state").last).to_have_text("delivered", timeout=20_000)
    live.text_in("Perfect, see you Saturday!")
    await expect(page.locator("#thread .msg-inbound").last).to_contain_text("Perfect", timeout=20_000)
    async with live.rt.db.session() as s:
        unread = (
            await s.exec(select(Outreach).where(Outreach.direction == "inbound", col(Outreach.read_at).is_(None)))
        ).all()
    assert unread == []

    out = screenshot_dir()
    for label, size in SCREEN_SIZES.items():
        await page.set_viewport_size(size)
        await page.reload()
        await expect(page.locator("#thread .msg").last).to_contain_text("Perfect")
        await page.wait_for_load_state("networkidle")
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the thread overflows by {overflow}px at {size['width']}px"
        await page.screenshot(path=str(out / f"conversation-{label}.png"), full_page=True)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Inbox").click()
    await expect(page.get_by_text("Nothing unread")).to_be_visible()


@pytest.mark.browser
async def test_a_manager_files_a_text_from_an_unknown_number_under_a_client(live: Live, page: Any) -> None:
    from playwright.async_api import expect

    from tests.admin.conftest import PASSWORD

    live.text_in("Hi, is my watch battery done? - Ben", sender=STRANGER)
    await page.goto(f"{live.clasp.url}/admin/inbox")
    await page.get_by_label("Email").fill(live.org.users["manager"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    unknown = page.locator("li.unmatched-msg", has_text=STRANGER)
    await expect(unknown).to_contain_text("is my watch battery done?")
    await unknown.get_by_text("Attach to a client").click()
    await unknown.get_by_label("Find a client").fill("Ben")
    await expect(unknown.get_by_role("button", name="Attach to Ben Bell")).to_be_visible()
    await page.screenshot(path=str(screenshot_dir() / "inbox-unknown-desktop.png"), full_page=True)
    await unknown.get_by_role("button", name="Attach to Ben Bell").click()
    await expect(page.get_by_role("heading", name="Messages with Ben Bell")).to_be_visible()
    await expect(page.get_by_text(f"Filed 1 message from {STRANGER} under Ben Bell.")).to_be_visible()
    await expect(page.locator("#thread .msg-inbound")).to_contain_text("is my watch battery done?")


# --------------------------------------------------------------- which number, shared numbers, local times


async def test_a_reply_goes_to_the_number_the_client_last_texted_from(rt: Runtime, panels: Any, org: Org) -> None:
    from datetime import UTC, datetime

    ada, ben = org.clients["ann_client"], org.clients["bob_client"]
    old, new = "+12125550140", "+12125550141"
    async with rt.db.transaction() as s:
        # Ada texted from her old number; since then the POS made a new number her primary, and Ben
        # (her husband) has that new number on file too.
        s.add(ClientContact(client_id=ada, kind="phone", value=old, label="Mobile"))
        s.add(ClientContact(client_id=ada, kind="phone", value=new, label="Mobile", is_primary=True))
        s.add(ClientContact(client_id=ben, kind="phone", value=new, label="Mobile", is_primary=True))
        s.add(Outreach(client_id=ada, direction="inbound", state="received", from_address=old,
                       to_address="+12125550100", location_id=org.locations["downtown"], body="Is my ring ready?",
                       created_at=datetime(2026, 12, 7, 14, 14, tzinfo=UTC)))
    ann = await panels(org.users["ann"])
    page = await ann.get(f"/admin/clients/{ada}/messages")
    text = text_of(page.text)
    assert "To (212) 555-0140 (the number they last texted from)" in text
    assert "from (212) 555-0140" in text  # the bubble says which number it came from
    assert "Dec 7, 9:14 AM EST" in text  # Downtown's clock, labelled
    resp = await ann.post(f"/admin/clients/{ada}/messages", {"body": "Yes, it is ready!", "kind": "transactional"})
    assert resp.status_code == 303
    async with rt.db.session() as s:
        [reply] = (await s.exec(select(Outreach).where(Outreach.client_id == ada, Outreach.direction == "outbound")))
    assert reply.to_address == old


async def test_a_number_shared_by_several_clients_is_flagged(rt: Runtime, panels: Any, org: Org) -> None:
    ada, ben, hope = org.clients["ann_client"], org.clients["bob_client"], org.clients["harbor_bought_downtown"]
    shared = "+12125550150"
    async with rt.db.transaction() as s:
        for cid in (ada, ben, hope):
            s.add(ClientContact(client_id=cid, kind="phone", value=shared, label="Mobile", is_primary=True))
        s.add(Outreach(client_id=ada, direction="outbound", state="delivered", to_address=shared, body="Hello",
                       location_id=org.locations["downtown"], kind="transactional"))
    owner = await panels(org.users["owner"])
    text = text_of((await owner.get(f"/admin/clients/{ada}/messages")).text)
    assert "also on file for 2 other clients" in text
    assert "to (212) 555-0150 shared" in text


async def test_inbox_times_are_in_the_clients_store_zone_with_its_label(rt: Runtime, panels: Any, org: Org) -> None:
    from datetime import UTC, datetime

    uma = org.clients["uptown_client"]  # Uptown is in Chicago
    async with rt.db.transaction() as s:
        s.add(ClientContact(client_id=uma, kind="phone", value="+13125550177", label="Mobile", is_primary=True))
        s.add(Outreach(client_id=uma, direction="inbound", state="received", from_address="+13125550177",
                       body="Can I come by at 5?", created_at=datetime(2026, 12, 7, 20, 5, tzinfo=UTC)))
    cat = await panels(org.users["cat"])
    assert "Dec 7, 2:05 PM CST" in text_of((await cat.get("/admin/inbox")).text)
