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
