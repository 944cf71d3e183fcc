"""Editing a client in the panel: the form, the one edit path (core.clients.edit_client), inline
errors, scope, and merged clients. Real HTTP against the real app, on both backends."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from sqlmodel import col, select

from core.identity import merge_clients
from core.models import AuditLog, ChangeFeed, Client, ClientContact, User
from core.runtime import Runtime
from tests.admin.conftest import Org, Panel, text_of


class FormReader(HTMLParser):
    """The named fields of the first form in a page, as a browser would submit them untouched."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.action: str | None = None
        self._textarea: str | None = None
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if self._done:
            return
        if tag == "form" and self.action is None:
            self.action, self._in_form = a.get("action"), True
        elif self._in_form and tag == "input" and a.get("name") and a.get("type") != "checkbox":
            self.values[a["name"]] = a.get("value") or ""  # type: ignore[index]
        elif self._in_form and tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.values[self._textarea] = ""  # type: ignore[index]

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "form" and self._in_form:
            self._in_form, self._done = False, True


async def edit_form(panel: Panel, client_id: int) -> dict[str, str]:
    resp = await panel.get(f"/admin/clients/{client_id}/edit", headers={"hx-request": "true"})
    assert resp.status_code == 200, resp.text
    reader = FormReader()
    reader.feed(resp.text)
    assert reader.action == f"/admin/clients/{client_id}/edit"
    return reader.values


async def feed_rows(rt: Runtime, client_id: int) -> list[ChangeFeed]:
    async with rt.db.session() as s:
        stmt = select(ChangeFeed).where(ChangeFeed.entity == "client", ChangeFeed.entity_id == client_id)
        return list((await s.exec(stmt.order_by(col(ChangeFeed.id)))).all())


async def user_id(rt: Runtime, email: str) -> int:
    async with rt.db.session() as s:
        user = (await s.exec(select(User).where(User.email == email))).one()
        return user.id  # type: ignore[return-value]


async def test_edit_a_phone_writes_exactly_one_change_feed_row(rt: Runtime, panels: Any, org: Org) -> None:
    cid = org.clients["ann_client"]
    ann = await panels(org.users["ann"])
    page = await ann.get(f"/admin/clients/{cid}")
    assert page.status_code == 200
    assert f'href="/admin/clients/{cid}/messages"' in page.text and f"/admin/clients/{cid}/edit" in page.text

    form = await edit_form(ann, cid)
    assert form["first_name"] == "Ada" and form["emails"].strip() == "ada@example.com" and form["phones"] == ""
    form["phones"] = "(212) 555-0147"
    resp = await ann.post(f"/admin/clients/{cid}/edit", form, htmx=True)
    assert resp.status_code == 200, resp.text
    assert "Saved." in resp.text and "+12125550147" in resp.text  # the profile fragment, normalised

    rows = await feed_rows(rt, cid)
    assert len(rows) == 1
    ann_id = await user_id(rt, org.users["ann"])
    # Untouched fields (names, email) are not re-written: only the phone changed.
    assert (
        rows[0].op == "update"
        and rows[0].origin == f"user:{ann_id}"
        and rows[0].changes == {"phones": ["+12125550147"]}
    )
    async with rt.db.session() as s:
        phones = (
            await s.exec(
                select(ClientContact.value).where(ClientContact.client_id == cid, ClientContact.kind == "phone")
            )
        ).all()
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "client.edit"))).all()
    assert list(phones) == ["+12125550147"]
    assert len(audit) == 1 and audit[0].actor == org.users["ann"] and audit[0].actor_user_id == ann_id
    assert audit[0].target_id == str(cid)

    # Saving the same form again changes nothing and writes nothing.
    again = await ann.post(f"/admin/clients/{cid}/edit", await edit_form(ann, cid), htmx=True)
    assert "Nothing changed." in again.text
    assert len(await feed_rows(rt, cid)) == 1

    detail = text_of((await ann.get(f"/admin/clients/{cid}")).text)
    assert "+12125550147" in detail


async def test_bad_email_shows_inline_errors_and_writes_nothing(rt: Runtime, panels: Any, org: Org) -> None:
    cid = org.clients["bob_client"]
    manager = await panels(org.users["manager"])
    form = await edit_form(manager, cid)
    form.update(emails="ben at example", birthday="2999-01-01", first_name="Benjamin")
    resp = await manager.post(f"/admin/clients/{cid}/edit", form)
    assert resp.status_code == 422
    assert 'id="err-emails"' in resp.text and 'id="err-birthday"' in resp.text
    assert "in the future" in text_of(resp.text)
    assert 'value="Benjamin"' in resp.text and "ben at example" in resp.text  # what the person typed stays
    assert "Nothing was saved" in resp.text
    # htmx gets the same form as a normal fragment (htmx does not swap 4xx answers).
    frag = await manager.post(f"/admin/clients/{cid}/edit", form, htmx=True)
    assert frag.status_code == 200 and 'id="err-emails"' in frag.text and "<html" not in frag.text
    assert await feed_rows(rt, cid) == []
    async with rt.db.session() as s:
        client = await s.get(Client, cid)
        assert client is not None and client.first_name == "Ben" and client.birthday is None

    # Fixed, it saves without htmx too: a redirect back to the client with a flash.
    form.update(emails="ben@example.com", birthday="1980-02-29")
    ok = await manager.post(f"/admin/clients/{cid}/edit", form)
    assert ok.status_code == 303 and ok.headers["location"] == f"/admin/clients/{cid}"
    [row] = await feed_rows(rt, cid)
    assert row.changes == {"first_name": "Benjamin", "emails": ["ben@example.com"], "birthday": "1980-02-29"}
    page = text_of((await manager.get(f"/admin/clients/{cid}")).text)
    assert "Saved." in page and "February 29, 1980" in page and "ben@example.com" in page


async def test_address_and_note_round_trip(rt: Runtime, panels: Any, org: Org) -> None:
    cid = org.clients["harbor_client"]
    owner = await panels(org.users["owner"])
    form = await edit_form(owner, cid)
    form.update(address_line1="1 Harbor Way", address_city="Seattle", address_country="us", note="Prefers <b>gold</b>")
    resp = await owner.post(f"/admin/clients/{cid}/edit", form, htmx=True)
    assert "Saved." in resp.text
    assert "Prefers &lt;b&gt;gold&lt;/b&gt;" in resp.text  # escaped
    [row] = await feed_rows(rt, cid)
    assert row.changes["address"] == {"line1": "1 Harbor Way", "city": "Seattle", "country": "US"}
    assert row.changes["note"] == "Prefers <b>gold</b>"
    bad = dict(form, address_country="USA")
    resp = await owner.post(f"/admin/clients/{cid}/edit", bad, htmx=True)
    assert 'id="err-address_country"' in resp.text


async def test_edit_is_scoped_like_the_client_page(rt: Runtime, panels: Any, org: Org) -> None:
    cat = await panels(org.users["cat"])
    ann = await panels(org.users["ann"])
    target = org.clients["ann_client"]
    assert (await cat.get(f"/admin/clients/{target}")).status_code == 404
    assert (await cat.get(f"/admin/clients/{target}/edit")).status_code == 404
    resp = await cat.post(f"/admin/clients/{target}/edit", {"first_name": "Hacked"})
    assert resp.status_code == 404
    # Ann ("own" mode at Downtown) cannot edit Bob's client either.
    assert (await ann.post(f"/admin/clients/{org.clients['bob_client']}/edit", {"first_name": "X"})).status_code == 404
    # Cat ("store" mode at Uptown) edits the store book; a field left out of the form is left alone.
    uptown = org.clients["uptown_client"]
    assert (await cat.post(f"/admin/clients/{uptown}/edit", {"first_name": "Uma-Rose"})).status_code == 303
    assert [r.changes for r in await feed_rows(rt, uptown)] == [{"first_name": "Uma-Rose"}]
    assert await feed_rows(rt, target) == []
    # Without the CSRF token the edit is refused outright.
    raw = await ann.client.post(f"/admin/clients/{target}/edit", data={"first_name": "X"})
    assert raw.status_code == 403


async def test_a_merged_client_is_edited_on_its_survivor(rt: Runtime, panels: Any, org: Org) -> None:
    survivor, absorbed = org.clients["ann_client"], org.clients["harbor_bought_downtown"]
    async with rt.db.transaction() as s:
        await merge_clients(s, survivor, absorbed, actor="test", reason="manual:test")
    owner = await panels(org.users["owner"])
    page = await owner.get(f"/admin/clients/{absorbed}")
    assert "This client was merged into" in page.text and f'href="/admin/clients/{survivor}"' in page.text
    assert f'href="/admin/clients/{absorbed}/edit"' not in page.text
    resp = await owner.post(f"/admin/clients/{absorbed}/edit", {"first_name": "Hope"})
    assert resp.status_code == 303 and resp.headers["location"] == f"/admin/clients/{survivor}"
    assert "edit that client instead" in (await owner.get(f"/admin/clients/{survivor}")).text
