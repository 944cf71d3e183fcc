"""Owners add and deactivate panel accounts; the new person signs in with the scope they were given."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from core.models import Associate, AuditLog
from core.runtime import Runtime
from tests.admin.conftest import Org, Panel, text_of


async def test_owner_adds_an_associate_who_signs_in_with_that_scope(rt: Runtime, panels: Any, org: Org) -> None:
    owner = await panels(org.users["owner"])
    async with rt.db.session() as s:
        bob = (await s.exec(select(Associate).where(Associate.first_name == "Bob"))).one()
    bad = await owner.post("/admin/users", {"email": "bob@example.com", "role": "associate", "password": "short"})
    assert bad.status_code == 422 and "at least 8 characters" in bad.text
    assert 'value="bob@example.com"' in bad.text
    form = {
        "email": "Bob@Example.com",
        "name": "Bob Ray",
        "role": "associate",
        "password": "bobs-password",
        "location_ids": str(org.locations["downtown"]),
        "associate_id": str(bob.id),
    }
    resp = await owner.post("/admin/users", form)
    assert resp.status_code == 303
    page = text_of((await owner.get("/admin/users")).text)
    assert "bob@example.com can now sign in as associate." in page and "Downtown" in page
    bob_panel: Panel = await panels()
    assert (await bob_panel.sign_in("bob@example.com", password="bobs-password")).status_code == 303
    assert (await bob_panel.get(f"/admin/clients/{org.clients['bob_client']}")).status_code == 200
    assert (await bob_panel.get(f"/admin/clients/{org.clients['ann_client']}")).status_code == 404
    # Deactivated: the open session stops working at once, and signing in again fails.
    async with rt.db.session() as s:
        entry = (await s.exec(select(AuditLog).where(AuditLog.action == "user.create"))).one()
    assert entry.details["role"] == "associate" and entry.actor == org.users["owner"]
    resp = await owner.post(f"/admin/users/{entry.target_id}/active", {"active": "false"})
    assert resp.status_code == 303
    assert (await bob_panel.get("/admin")).status_code == 302
    assert (await bob_panel.sign_in("bob@example.com", password="bobs-password")).status_code == 401


async def test_an_owner_cannot_lock_themselves_out(rt: Runtime, panels: Any, org: Org) -> None:
    owner = await panels(org.users["owner"])
    html = (await owner.get("/admin/users")).text
    me = html.split(org.users["owner"])[1].split("</tr>")[0]
    assert "Deactivate" not in me
    async with rt.db.session() as s:
        from core.models import User

        my_id = (await s.exec(select(User.id).where(User.email == org.users["owner"]))).one()
    assert (await owner.post(f"/admin/users/{my_id}/active", {"active": "false"})).status_code == 400


async def _user_row(rt: Runtime, email: str) -> tuple[Any, list[int]]:
    from core.models import User, UserLocation

    async with rt.db.session() as s:
        row = (await s.exec(select(User).where(User.email == email))).one()
        locations = (await s.exec(select(UserLocation.location_id).where(UserLocation.user_id == row.id))).all()
    return row, sorted(locations)


async def test_owner_edits_role_locations_and_associate_link(rt: Runtime, panels: Any, org: Org) -> None:
    owner = await panels(org.users["owner"])
    cat, _ = await _user_row(rt, org.users["cat"])
    async with rt.db.session() as s:
        bob = (await s.exec(select(Associate).where(Associate.first_name == "Bob"))).one()
    page = (await owner.get(f"/admin/users/{cat.id}/edit")).text
    # The associate select is grouped by store, each option telling namesakes apart.
    assert '<optgroup label="Downtown">' in page and '<optgroup label="Uptown">' in page
    assert f'<option value="{cat.associate_id}" selected>Cat Fox · Uptown' in page

    # Refused: a manager with no store. Nothing changes, the form keeps what was typed.
    bad = await owner.post(f"/admin/users/{cat.id}", {"name": "Cat", "role": "manager", "associate_id": ""})
    assert bad.status_code == 422 and "needs at least one location" in bad.text
    assert (await _user_row(rt, org.users["cat"]))[0].role == "associate"

    # Moved to Downtown and linked to Bob's record: Bob's client appears in her book, her old one goes.
    form = {"name": "Cat Fox", "role": "associate", "location_ids": str(org.locations["downtown"]),
            "associate_id": str(bob.id)}  # fmt: skip
    resp = await owner.post(f"/admin/users/{cat.id}", form)
    assert resp.status_code == 303
    row, locations = await _user_row(rt, org.users["cat"])
    assert row.associate_id == bob.id and locations == [org.locations["downtown"]] and row.name == "Cat Fox"
    cat_panel = await panels(org.users["cat"])
    assert (await cat_panel.get(f"/admin/clients/{org.clients['bob_client']}")).status_code == 200
    assert (await cat_panel.get(f"/admin/clients/{org.clients['uptown_client']}")).status_code == 404
    async with rt.db.session() as s:
        entry = (await s.exec(select(AuditLog).where(AuditLog.action == "user.edit"))).one()
    assert entry.actor == org.users["owner"] and entry.target_id == str(cat.id)
    assert entry.details["changes"]["associate_id"] == [cat.associate_id, bob.id]
    assert entry.details["changes"]["location_ids"] == [[org.locations["uptown"]], [org.locations["downtown"]]]

    # Unlinked: saved, and the list says exactly what she will see.
    form["associate_id"] = ""
    assert (await owner.post(f"/admin/users/{cat.id}", form)).status_code == 303
    listing = text_of((await owner.get("/admin/users")).text)
    assert "not linked to a POS associate — they will see an empty book" in listing
    row_html = text_of((await owner.get("/admin/users")).text.split(org.users["ann"])[1].split("</tr>")[0])
    assert "Ann Lee" in row_html and "Downtown" in row_html
    # Owners cannot demote themselves; other people cannot reach the page.
    me, _ = await _user_row(rt, org.users["owner"])
    mine = await owner.post(f"/admin/users/{me.id}", {"name": "Owner", "role": "manager",
                                                      "location_ids": str(org.locations["downtown"])})  # fmt: skip
    assert mine.status_code == 422 and "your own role" in mine.text
    manager = await panels(org.users["manager"])
    assert (await manager.get(f"/admin/users/{cat.id}/edit")).status_code == 403
    assert (await manager.post(f"/admin/users/{cat.id}", form)).status_code == 403
    assert (await owner.get("/admin/users/999999/edit")).status_code == 404


async def test_a_cli_associate_signs_in_and_sees_their_book(clasp_cli: Any, rt: Runtime, panels: Any, org: Org) -> None:
    from core.models import ExternalRef

    async with rt.db.transaction() as s:
        ann = (await s.exec(select(Associate).where(Associate.first_name == "Ann"))).one()
        s.add(ExternalRef(connector_id=org.connector_id, object_type="associate", external_id="emp-41",
                          unified_id=ann.id))  # fmt: skip
    proc = clasp_cli("user", "add", "ann.lee@clasp.local", "--role", "associate", "--associate", "emp-41",
                     "--password-stdin", input="anns-password-1\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "linked to Ann Lee (Downtown, Downtown POS:emp-41)" in proc.stdout
    # The org's ann@example.com already signs in as Ann: allowed (a second login), but said.
    assert proc.stderr.strip() == "warning: ann.lee@clasp.local: Ann Lee is also linked to ann@example.com"
    panel: Panel = await panels()
    assert (await panel.sign_in("ann.lee@clasp.local", password="anns-password-1")).status_code == 303
    clients = text_of((await panel.get("/admin/clients")).text)
    # Her own clients (Ada Ames at Downtown, Hope Hill who bought from her there), nobody else's.
    assert "Ames" in clients and "Hill" in clients
    assert "Bell" not in clients and "Urban" not in clients and "Hart" not in clients


async def test_panel_add_accepts_the_products_own_test_domain(rt: Runtime, panels: Any, org: Org) -> None:
    owner = await panels(org.users["owner"])
    form = {"email": "Manager@Clasp.Local", "role": "manager", "password": "manager-pass-1",
            "location_ids": str(org.locations["uptown"])}  # fmt: skip
    assert (await owner.post("/admin/users", form)).status_code == 303
    assert (await _user_row(rt, "manager@clasp.local"))[1] == [org.locations["uptown"]]
    bad = await owner.post("/admin/users", {**form, "email": "manager@@clasp"})
    assert bad.status_code == 422 and "invalid email" in bad.text
    # An associate added without a link is told at once what that means.
    form = {"email": "new@example.com", "role": "associate", "password": "new-pass-123",
            "location_ids": str(org.locations["downtown"])}  # fmt: skip
    resp = await owner.post("/admin/users", form)
    assert resp.status_code == 303
    assert "they will see an empty book" in text_of((await owner.get("/admin/users")).text)
