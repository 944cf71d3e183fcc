"""The Errors page: a record the test POS sends malformed lands in the queue through a real sync; the
page shows it (payload escaped), replays it after the fix through the same path with no duplicate,
replays a connector's queue, dismisses, and keeps managers read-only. Real HTTP, both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from core.connectors import update_settings
from core.models import AuditLog, Connector, Sale, SyncError
from core.runtime import Runtime
from core.sync import SyncOptions, run_sync
from core.web import create_app
from tests.admin.conftest import Org, Panel, build_org, http_client, text_of
from tests.testpos.fake import FakePOS
from tests.testpos.fixtures import add_testpos

FAST = SyncOptions(retry_base_delay=0.01, retry_max_delay=0.05)


def bad_amount_sale(pos: FakePOS, ext: str) -> dict[str, Any]:
    """A sale whose amounts carry a thousands separator: the test POS plugin refuses it until
    ``lenient_amounts`` is switched on (the "fix")."""
    sale = pos.get_record("sales", "T2")
    line = {**sale["lines"][0], "id": f"{ext}-L1", "unit_price": "1,299.00", "total": "1,299.00"}
    return pos.put("sales", {**sale, "id": ext, "lines": [line], "subtotal": "1,299.00", "total": "1,299.00"})


@pytest.fixture
async def setup(pos_rt: Runtime, fake_pos: FakePOS) -> AsyncIterator[tuple[Runtime, Org, int, Callable[..., Any]]]:
    """The org, a test POS connector synced once with two malformed sales, and panels on an app
    whose runtime has the test POS plugin (a replay needs the connector's plugin)."""
    org = await build_org(pos_rt)
    fake_pos.generate(customers=5, sales=4)
    bad_amount_sale(fake_pos, "TBAD1")
    bad_amount_sale(fake_pos, "TBAD2")
    cid = await add_testpos(pos_rt, fake_pos)
    run = await run_sync(pos_rt, cid, options=FAST)
    assert run.errors == 2
    app = create_app(pos_rt)
    clients: list[Any] = []

    async def make(person: str) -> Panel:
        client = http_client(app)
        clients.append(client)
        panel = Panel(client)
        assert (await panel.sign_in(org.users[person])).status_code == 303
        return panel

    yield pos_rt, org, cid, make
    for client in clients:
        await client.aclose()


async def open_errors(rt: Runtime) -> dict[str, SyncError]:
    async with rt.db.session() as s:
        rows = (await s.exec(select(SyncError).where(SyncError.state == "open"))).all()
    return {e.external_id: e for e in rows}  # type: ignore[misc]


async def sales(rt: Runtime) -> int:
    async with rt.db.session() as s:
        return int((await s.exec(select(func.count()).select_from(Sale))).one())


async def fix(rt: Runtime, cid: int) -> None:
    async with rt.db.transaction() as s:
        connector = await s.get(Connector, cid)
        await update_settings(rt, s, connector, {"lenient_amounts": True})  # type: ignore[arg-type]


async def test_replay_from_the_page_after_the_fix_creates_no_duplicate(setup: Any) -> None:
    rt, org, cid, panels = setup
    owner = await panels("owner")
    errors = await open_errors(rt)
    error = errors["TBAD1"]
    page = await owner.get("/admin/errors")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "TBAD1" in text and "TBAD2" in text and "not a decimal number" in text and "Test POS" in text
    assert "&#34;1,299.00&#34;" in page.text or "&quot;1,299.00&quot;" in page.text  # the payload, pretty and escaped
    assert f'hx-post="/admin/errors/{error.id}/replay"' in page.text

    # Not fixed yet: the replay fails inline, the same row stays open.
    still = await owner.post(f"/admin/errors/{error.id}/replay", htmx=True)
    assert still.status_code == 200 and "Still failing" in still.text and "<html" not in still.text
    assert (await open_errors(rt))["TBAD1"].attempts == 2
    before = await sales(rt)

    await fix(rt, cid)
    done = await owner.post(f"/admin/errors/{error.id}/replay", htmx=True)
    assert "Done" in done.text and "replayed" in done.text
    assert f'hx-post="/admin/errors/{error.id}/replay"' not in done.text  # nothing left to replay
    assert await sales(rt) == before + 1
    async with rt.db.session() as s:
        row = await s.get(SyncError, error.id)
        assert row is not None and row.state == "replayed" and row.replayed_at is not None
    # Replaying again (a double click, a second tab) does nothing more.
    again = await owner.post(f"/admin/errors/{error.id}/replay")
    assert again.status_code == 303
    assert await sales(rt) == before + 1
    await run_sync(rt, cid, full=True, options=FAST)  # the POS sends it again: still one sale
    assert await sales(rt) == before + 2  # + TBAD2, now readable; TBAD1 not twice
    async with rt.db.session() as s:
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "errors.replay"))).all()
    assert len(audit) == 3 and all(a.actor == org.users["owner"] and a.target_id == str(error.id) for a in audit)
    assert [a.details["ok"] for a in audit] == [False, True, True]


async def test_replay_all_for_a_connector_and_filters(setup: Any) -> None:
    rt, _org, cid, panels = setup
    owner = await panels("owner")
    async with rt.db.transaction() as s:
        other = Connector(type="lightspeed_x", kind="pos", name="Other POS")
        s.add(other)
        await s.flush()
        s.add(SyncError(connector_id=other.id, stage="writeback", external_id="W1", reason="409 from the POS"))
    page = await owner.get("/admin/errors")
    assert "Replay all for Test POS (2)" in text_of(page.text)
    only = text_of((await owner.get(f"/admin/errors?connector={cid}")).text)
    assert "TBAD1" in only and "W1" not in only
    by_stage = text_of((await owner.get("/admin/errors?stage=writeback")).text)
    assert "W1" in by_stage and "TBAD1" not in by_stage

    await fix(rt, cid)
    before = await sales(rt)
    resp = await owner.post("/admin/errors/replay-all", {"connector_id": cid})
    assert resp.status_code == 303 and resp.headers["location"] == f"/admin/errors?connector={cid}"
    assert "all 2 error(s) replayed" in (await owner.get(resp.headers["location"])).text
    assert set(await open_errors(rt)) == {"W1"}  # the other connector's error is untouched
    assert await sales(rt) == before + 2
    replayed = text_of((await owner.get("/admin/errors?state=replayed")).text)
    assert "TBAD1" in replayed and "TBAD2" in replayed
    async with rt.db.session() as s:
        [row] = (await s.exec(select(AuditLog).where(AuditLog.action == "errors.replay_all"))).all()
    assert row.target_id == str(cid) and len(row.details["ok"]) == 2 and row.details["failed"] == []


async def test_dismiss_and_escaping(setup: Any) -> None:
    rt, _org, cid, panels = setup
    owner = await panels("owner")
    async with rt.db.transaction() as s:
        nasty = SyncError(
            connector_id=cid,
            stream="customers",
            external_id="<b>C9</b>",
            payload={"name": "<script>alert('x')</script>"},
            context={"note": "<img src=x onerror=alert(1)>"},
            reason="bad <i>record</i>",
        )
        s.add(nasty)
        await s.flush()
        nasty_id = nasty.id
    page = (await owner.get("/admin/errors")).text
    assert "<script>alert(" not in page and "<img src=x" not in page and "<i>record</i>" not in page
    assert "&lt;script&gt;alert(" in page and "&lt;b&gt;C9&lt;/b&gt;" in page

    resp = await owner.post(f"/admin/errors/{nasty_id}/dismiss", {"note": "test record"}, htmx=True)
    assert resp.status_code == 200 and "Dismissed" in resp.text
    async with rt.db.session() as s:
        row = await s.get(SyncError, nasty_id)
        [audit] = (await s.exec(select(AuditLog).where(AuditLog.action == "errors.dismiss"))).all()
    assert row is not None and row.state == "dismissed"
    assert audit.target_id == str(nasty_id) and audit.details["note"] == "test record"
    assert "C9" not in text_of((await owner.get("/admin/errors")).text)
    assert "C9" in text_of((await owner.get("/admin/errors?state=dismissed")).text)
    # Dismissing twice changes nothing and writes no second audit row.
    await owner.post(f"/admin/errors/{nasty_id}/dismiss")
    async with rt.db.session() as s:
        rows = (await s.exec(select(AuditLog).where(col(AuditLog.action) == "errors.dismiss"))).all()
    assert len(rows) == 1


async def test_managers_read_only_without_payloads_associates_not_at_all(setup: Any) -> None:
    rt, _org, cid, panels = setup
    error = (await open_errors(rt))["TBAD1"]
    manager = await panels("manager")
    page = await manager.get("/admin/errors")
    assert page.status_code == 200
    assert "TBAD1" in page.text and "not a decimal number" in page.text
    assert "Raw payload" not in page.text and "subtotal" not in page.text  # no raw payload
    assert "Context" in page.text and "object_type" in page.text
    assert "shown to owners only" in page.text
    assert "/replay" not in page.text and "/dismiss" not in page.text
    assert (await manager.post(f"/admin/errors/{error.id}/replay", htmx=True)).status_code == 403
    assert (await manager.post(f"/admin/errors/{error.id}/dismiss")).status_code == 403
    assert (await manager.post("/admin/errors/replay-all", {"connector_id": cid})).status_code == 403
    for person in ("ann", "cat"):
        associate = await panels(person)
        assert (await associate.get("/admin/errors")).status_code == 403
        assert (await associate.post(f"/admin/errors/{error.id}/replay")).status_code == 403
    assert (await open_errors(rt))["TBAD1"].attempts == 1  # nobody replayed it


# ------------------------------------------------------------------------------------- the browser


async def add_duplicate_pairs(rt: Runtime, org: Org) -> None:
    from datetime import date

    from core.models import Client, ClientContact

    dt, up = org.locations["downtown"], org.locations["uptown"]
    async with rt.db.transaction() as s:
        pairs = [
            (("Grace", "Okafor", dt, date(1979, 6, 14)), ("Grace", "Okafor", up, date(1979, 6, 14)), None),
            (("Liam", "Rossi", dt, None), ("William", "Rossi", dt, None), ("email", "liam.rossi@gmail.com")),
            (("Mia", "Berg", up, None), ("Mia", "Berg-Lund", up, None), ("phone", "+13125550182")),
        ]
        for a, b, shared in pairs:
            ca = Client(first_name=a[0], last_name=a[1], home_location_id=a[2], birthday=a[3])
            cb = Client(first_name=b[0], last_name=b[1], home_location_id=b[2], birthday=b[3])
            s.add_all([ca, cb])
            await s.flush()
            if shared:
                kind, value = shared
                s.add_all([ClientContact(client_id=c.id, kind=kind, value=value, is_primary=True) for c in (ca, cb)])  # type: ignore[arg-type]
        typo_a = Client(first_name="Noah", last_name="Haddad", home_location_id=dt)
        typo_b = Client(first_name="Noah", last_name="Haddad", home_location_id=up)
        s.add_all([typo_a, typo_b])
        await s.flush()
        s.add(ClientContact(client_id=typo_a.id, kind="email", value="noah.haddad@gmail.com", is_primary=True))  # type: ignore[arg-type]
        s.add(ClientContact(client_id=typo_b.id, kind="email", value="noah.haddad@gmial.com", is_primary=True))  # type: ignore[arg-type]


@pytest.mark.browser
async def test_browser_edit_a_phone_and_replay_an_error(
    settings: Any,
    pos_rt: Runtime,
    fake_pos: FakePOS,
    serve: Any,
    page: Any,
) -> None:
    """A person edits a client's phone and sees it saved; an owner replays an error after the fix.
    Screenshots of the Errors and Duplicates pages (1280 wide) land in test-artifacts/screens/, or in
    docs/screenshots/ with CLASP_TEST_SCREENSHOTS=1."""
    from playwright.async_api import expect

    from tests.admin.conftest import PASSWORD, runtime_with, screenshot_dir
    from tests.testpos import plugin as testpos_plugin

    org = await build_org(pos_rt)
    fake_pos.generate(customers=5, sales=4)
    bad_amount_sale(fake_pos, "TBAD1")
    cid = await add_testpos(pos_rt, fake_pos, name="Downtown test POS")
    await run_sync(pos_rt, cid, options=FAST)
    async with pos_rt.db.transaction() as s:
        s.add(
            SyncError(
                connector_id=org.connector_id,
                stage="writeback",
                external_id="CUST-2231",
                reason="422 from Lightspeed: phone number is not valid for the shop's country",
                payload={"client_id": org.clients["ann_client"], "changes": {"phones": ["+4420794600"]}},
                context={"consumer": f"writeback:{org.connector_id}", "origin": "user:1"},
            )
        )
    await add_duplicate_pairs(pos_rt, org)
    [error] = [e for e in (await open_errors(pos_rt)).values() if e.external_id == "TBAD1"]
    clasp = serve(lambda url: create_app(runtime_with(settings.model_copy(update={"base_url": url}), testpos_plugin)))
    out = screenshot_dir()

    await page.goto(clasp.url + "/admin/errors")
    await page.get_by_label("Email").fill(org.users["owner"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Errors")).to_be_visible()
    item = page.locator(f"#error-{error.id}")
    await item.get_by_text("Raw payload").click()
    await expect(item.locator("pre.json").first).to_contain_text('"total": "1,299.00"')
    await page.screenshot(path=str(out / "errors-desktop.png"), full_page=True)

    # Not fixed yet: the replay says so in place.
    await item.get_by_role("button", name="Replay").click()
    await expect(page.locator(f"#error-{error.id} .replay-result")).to_contain_text("Still failing")
    async with pos_rt.db.transaction() as s:
        connector = await s.get(Connector, cid)
        await update_settings(pos_rt, s, connector, {"lenient_amounts": True})  # type: ignore[arg-type]
    await page.locator(f"#error-{error.id}").get_by_role("button", name="Replay").click()
    await expect(page.locator(f"#error-{error.id} .replay-result")).to_contain_text("Done")
    await expect(page.locator(f"#error-{error.id}").get_by_role("button", name="Replay")).to_have_count(0)
    async with pos_rt.db.session() as s:
        assert (await s.get(SyncError, error.id)).state == "replayed"  # type: ignore[union-attr]

    await page.goto(clasp.url + "/admin/duplicates")
    await expect(page.get_by_role("heading", name="Duplicates")).to_be_visible()
    await expect(page.locator(".dup-group")).to_have_count(4)
    await page.screenshot(path=str(out / "duplicates-desktop.png"), full_page=True)

    # Edit a client's phone: the form opens in place, saves, and the new number shows.
    await page.goto(clasp.url + f"/admin/clients/{org.clients['ann_client']}")
    await page.get_by_role("link", name="Edit").click()
    await page.get_by_label("Phones").fill("212 555 0148")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".edit-notice")).to_have_text("Saved.")
    await expect(page.locator("ul.contacts")).to_contain_text("+12125550148")
    await page.reload()
    await expect(page.locator("ul.contacts")).to_contain_text("+12125550148")
    # A bad number is refused inline, and nothing is lost from the form.
    await page.get_by_role("link", name="Edit").click()
    await page.get_by_label("Phones").fill("12")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#err-phones")).to_contain_text("not a valid phone number")
    await expect(page.get_by_label("Phones")).to_have_value("12")

    # Phones on the floor: neither page may scroll sideways.
    await page.set_viewport_size({"width": 390, "height": 844})
    for name in ("errors", "duplicates"):
        await page.goto(clasp.url + f"/admin/{name}")
        await page.wait_for_load_state("networkidle")
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} overflows by {overflow}px on a phone"
        await page.screenshot(path=str(out / f"{name}-phone.png"), full_page=True)
