"""The duplicates report in the panel, merging from it, and undoing a merge from the client page.
Real HTTP against the real app, on both backends."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlmodel import col, select

from core.models import AuditLog, ChangeFeed, Client, ClientContact, ClientMerge
from core.runtime import Runtime
from tests.admin.conftest import Org, text_of


async def add_duplicates(rt: Runtime, org: Org) -> dict[str, int]:
    """Likely duplicates the rules did not merge: two at Downtown, two at Harbor, one pair across both."""
    dt, hb = org.locations["downtown"], org.locations["harbor"]
    async with rt.db.transaction() as s:
        rows = {
            "dt_a": Client(first_name="Dora", last_name="Diaz", home_location_id=dt, birthday=date(1985, 4, 2)),
            "dt_b": Client(first_name="dora", last_name="DIAZ", home_location_id=dt, birthday=date(1985, 4, 2)),
            "hb_a": Client(first_name="Hank", last_name="Hale", home_location_id=hb),
            "hb_b": Client(first_name="Henry", last_name="Hale", home_location_id=hb),
            "x_dt": Client(first_name="Xena", last_name="Cross", home_location_id=dt),
            "x_hb": Client(first_name="Xena", last_name="Cross", home_location_id=hb),
        }
        s.add_all(rows.values())
        await s.flush()
        ids = {k: v.id for k, v in rows.items()}
        s.add_all(
            [
                ClientContact(client_id=ids["dt_b"], kind="phone", value="+12125550199", is_primary=True),
                ClientContact(client_id=ids["hb_a"], kind="email", value="hank@hale.example", is_primary=True),
                ClientContact(client_id=ids["hb_b"], kind="email", value="hank@hale.example", is_primary=True),
                ClientContact(client_id=ids["x_dt"], kind="phone", value="+12125550123", is_primary=True),
                ClientContact(client_id=ids["x_hb"], kind="phone", value="+12125550123", is_primary=True),
            ]
        )
    return ids  # type: ignore[return-value]


def groups(html: str) -> list[set[int]]:
    """The client ids of each group shown on the duplicates page."""
    out = []
    for section in re.findall(r'<section class="card dup-group.*?</section>', html, flags=re.S):
        out.append({int(i) for i in re.findall(r'data-client-id="(\d+)"', section)})
    return out


async def test_owner_sees_every_group_and_a_manager_only_their_stores(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await add_duplicates(rt, org)
    owner = await panels(org.users["owner"])
    manager = await panels(org.users["manager"])
    page = await owner.get("/admin/duplicates")
    assert page.status_code == 200
    shown = groups(page.text)
    assert {ids["dt_a"], ids["dt_b"]} in shown and {ids["hb_a"], ids["hb_b"]} in shown
    assert {ids["x_dt"], ids["x_hb"]} in shown
    text = text_of(page.text)
    assert "Same name and birthday" in text and "Same email" in text and "Same phone" in text
    assert f'href="/admin/clients/{ids["dt_a"]}"' in page.text and f'href="/admin/clients/{ids["dt_b"]}"' in page.text

    mine = groups((await manager.get("/admin/duplicates")).text)
    # Harbor's pair is not theirs; the cross-store pair would show a Harbor client: neither is listed.
    assert mine == [{ids["dt_a"], ids["dt_b"]}]
    for person in ("ann", "cat"):
        associate = await panels(org.users[person])
        assert (await associate.get("/admin/duplicates")).status_code == 403
        resp = await associate.post("/admin/duplicates/merge", {"survivor": ids["dt_a"], "members": [ids["dt_b"]]})
        assert resp.status_code == 403
    # A manager cannot merge a client outside their scope, even by posting its id.
    resp = await manager.post(
        "/admin/duplicates/merge", {"survivor": ids["x_dt"], "members": [ids["x_dt"], ids["x_hb"]]}
    )
    assert resp.status_code == 303
    async with rt.db.session() as s:
        assert (await s.exec(select(ClientMerge))).all() == []
    assert "outside your scope" in (await manager.get("/admin/duplicates")).text


async def test_merge_then_undo_from_the_panel_restores_the_client(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await add_duplicates(rt, org)
    manager = await panels(org.users["manager"])
    await manager.get("/admin/duplicates")
    resp = await manager.post(
        "/admin/duplicates/merge", {"survivor": ids["dt_a"], "members": [ids["dt_a"], ids["dt_b"]]}, htmx=True
    )
    assert resp.status_code == 200, resp.text
    assert "Merged" in resp.text and "Undo merge" in resp.text

    async with rt.db.session() as s:
        absorbed = await s.get(Client, ids["dt_b"])
        [merge] = (await s.exec(select(ClientMerge))).all()
        moved = (await s.exec(select(ClientContact).where(ClientContact.value == "+12125550199"))).one()
    assert absorbed is not None and absorbed.merged_into_id == ids["dt_a"]
    assert merge.reason.startswith("manual:user:") and merge.actor == org.users["manager"]
    assert moved.client_id == ids["dt_a"]
    assert groups((await manager.get("/admin/duplicates")).text) == []
    # The survivor's page shows the merge with an "Undo merge" button; the absorbed one points to it.
    page = await manager.get(f"/admin/clients/{ids['dt_a']}")
    assert "Merge history" in page.text and f"/merges/{merge.id}/undo" in page.text
    assert "+12125550199" in page.text
    gone = await manager.get(f"/admin/clients/{ids['dt_b']}")
    assert "This client was merged into" in gone.text

    undo = await manager.post(f"/admin/clients/{ids['dt_a']}/merges/{merge.id}/undo")
    assert undo.status_code == 303 and undo.headers["location"] == f"/admin/clients/{ids['dt_a']}"
    page = await manager.get(f"/admin/clients/{ids['dt_a']}")
    assert "Merge undone" in page.text and "undone" in text_of(page.text)
    async with rt.db.session() as s:
        back = await s.get(Client, ids["dt_b"])
        contact = (await s.exec(select(ClientContact).where(ClientContact.value == "+12125550199"))).one()
        merge_row = await s.get(ClientMerge, merge.id)
        audit = [a.action for a in (await s.exec(select(AuditLog).order_by(col(AuditLog.id)))).all()]
        feed_ops = [f.op for f in (await s.exec(select(ChangeFeed).order_by(col(ChangeFeed.id)))).all()]
    assert back is not None and back.merged_into_id is None and back.first_name == "dora"
    assert contact.client_id == ids["dt_b"]
    assert merge_row is not None and merge_row.undone_at is not None
    assert "client.merge" in audit and "client.unmerge" in audit
    assert feed_ops == ["merge", "merge", "unmerge", "unmerge"]
    # Undoing twice is refused with a message, not an error page.
    again = await manager.post(f"/admin/clients/{ids['dt_a']}/merges/{merge.id}/undo")
    assert again.status_code == 303
    assert "could not be undone" in (await manager.get(f"/admin/clients/{ids['dt_a']}")).text
    # A person who unmerged a pair has said they are two people: the report does not list them again.
    assert groups((await manager.get("/admin/duplicates")).text) == []


async def test_undo_is_scoped(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await add_duplicates(rt, org)
    owner = await panels(org.users["owner"])
    await owner.get("/admin/duplicates")
    # The owner merges the Harbor pair; Downtown's manager may not see (nor undo) it.
    resp = await owner.post("/admin/duplicates/merge", {"survivor": ids["hb_b"], "members": [ids["hb_a"], ids["hb_b"]]})
    assert resp.status_code == 303
    async with rt.db.session() as s:
        [merge] = (await s.exec(select(ClientMerge))).all()
    manager = await panels(org.users["manager"])
    await manager.get("/admin")
    assert (await manager.post(f"/admin/clients/{ids['hb_b']}/merges/{merge.id}/undo")).status_code == 404
    ann = await panels(org.users["ann"])
    await ann.get("/admin")
    assert (await ann.post(f"/admin/clients/{ids['hb_b']}/merges/{merge.id}/undo")).status_code == 403
    # A merge id under the wrong client is not found either.
    assert (await owner.post(f"/admin/clients/{ids['dt_a']}/merges/{merge.id}/undo")).status_code == 404
    async with rt.db.session() as s:
        assert (await s.get(ClientMerge, merge.id)).undone_at is None  # type: ignore[union-attr]
