"""The API tokens page: a token made in the panel works against the JSON API until it is revoked,
its value is shown once, and people see and revoke only their own (owners: everyone's)."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import select

from core.models import ApiToken, AuditLog
from core.runtime import Runtime
from tests.admin.conftest import Org, text_of

TOKEN = re.compile(r'value="(clasp_[A-Za-z0-9_\-]+)"')


async def create(panel: Any, name: str) -> tuple[Any, str]:
    await panel.get("/admin/tokens")
    resp = await panel.post("/admin/tokens", {"name": name})
    assert resp.status_code == 200, resp.text
    found = TOKEN.findall(resp.text)
    assert len(found) == 1, "the new token is shown exactly once on the page"
    return resp, found[0]


async def test_a_panel_token_authenticates_until_revoked(rt: Runtime, panels: Any, org: Org) -> None:
    ann = await panels(org.users["ann"])
    resp, token = await create(ann, "Ann's phone shortcut")
    assert "no-store" in resp.headers["cache-control"]
    assert "shown only this once" in resp.text and 'id="copy-token"' in resp.text

    api = ann.client  # a bearer request needs no cookie, but the jar does not matter either
    ok = await api.get("/api/v1/clients", headers={"authorization": f"Bearer {token}"})
    assert ok.status_code == 200, ok.text
    names = {f"{c['first_name']} {c['last_name']}" for c in ok.json()["items"]}
    assert names == {"Ada Ames", "Hope Hill"}  # the token acts with Ann's scope

    # The value is never shown again: not on the list, not after a reload.
    listing = await ann.get("/admin/tokens")
    assert token not in listing.text and token[:12] in listing.text and "Ann&#39;s phone shortcut" in listing.text

    async with rt.db.session() as s:
        row = (await s.exec(select(ApiToken))).one()
        assert row.token_hash != token and token not in str(row.model_dump())
    revoked = await ann.post(f"/admin/tokens/{row.id}/revoke")
    assert revoked.status_code == 303
    assert "revoked" in text_of((await ann.get("/admin/tokens")).text)
    denied = await api.get("/api/v1/clients", headers={"authorization": f"Bearer {token}"})
    assert denied.status_code == 401

    async with rt.db.session() as s:
        actions = [a.action for a in (await s.exec(select(AuditLog).where(AuditLog.target_type == "api_token"))).all()]
        assert sorted(actions) == ["api_token.create", "api_token.revoke"]
        for a in (await s.exec(select(AuditLog).where(AuditLog.target_type == "api_token"))).all():
            assert token not in str(a.details)


async def test_people_see_and_revoke_only_their_own_tokens(rt: Runtime, panels: Any, org: Org) -> None:
    ann = await panels(org.users["ann"])
    cat = await panels(org.users["cat"])
    owner = await panels(org.users["owner"])
    await create(ann, "ann-script")
    await create(cat, "cat-script")
    async with rt.db.session() as s:
        ids = {t.name: t.id for t in (await s.exec(select(ApiToken))).all()}

    ann_page = text_of((await ann.get("/admin/tokens")).text)
    assert "ann-script" in ann_page and "cat-script" not in ann_page
    owner_page = text_of((await owner.get("/admin/tokens")).text)
    assert "ann-script" in owner_page and "cat-script" in owner_page and org.users["cat"] in owner_page

    assert (await ann.post(f"/admin/tokens/{ids['cat-script']}/revoke")).status_code == 404
    assert (await owner.post(f"/admin/tokens/{ids['cat-script']}/revoke")).status_code == 303
    async with rt.db.session() as s:
        tokens = {t.name: t for t in (await s.exec(select(ApiToken))).all()}
    assert tokens["cat-script"].revoked_at is not None and tokens["ann-script"].revoked_at is None


async def test_a_token_needs_a_name(rt: Runtime, panels: Any, org: Org) -> None:
    manager = await panels(org.users["manager"])
    await manager.get("/admin/tokens")
    resp = await manager.post("/admin/tokens", {"name": "   "})
    assert resp.status_code == 422 and 'id="err-name"' in resp.text and "needs a name" in resp.text
    assert not TOKEN.search(resp.text)
    async with rt.db.session() as s:
        assert (await s.exec(select(ApiToken))).all() == []
    # Without the CSRF token nothing is created.
    assert (await manager.client.post("/admin/tokens", data={"name": "x"})).status_code == 403
