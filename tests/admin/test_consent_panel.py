"""The consent card on a client's page: recording an in-store opt-in with its exact wording, over
real HTTP against the real app, scoped like the client page (both backends)."""

from __future__ import annotations

from html import unescape

from sqlmodel import col, select

from core.models import AuditLog, Consent
from core.outreach.consent import current_consent
from core.runtime import Runtime
from tests.admin.conftest import Org, text_of


async def _ledger(rt: Runtime, client_id: int) -> list[Consent]:
    async with rt.db.session() as s:
        return list((await s.exec(select(Consent).where(col(Consent.client_id) == client_id))).all())


async def test_an_associate_records_an_in_store_opt_in_with_the_wording_shown(
    rt: Runtime, org: Org, panels
) -> None:  # type: ignore[no-untyped-def]
    ann = await panels(org.users["ann"])
    cid = org.clients["ann_client"]
    card = await ann.get(f"/admin/clients/{cid}/consent")
    assert card.status_code == 200, card.text
    page = text_of(card.text)
    assert "Texts · Promotions" in page and "No consent on record" in page
    # The standard wording is prefilled, with the client's store in it.
    assert "receive texts from Downtown" in unescape(card.text)
    # Choosing another channel swaps in that channel's wording.
    email = await ann.get(f"/admin/clients/{cid}/consent?channel=email", headers={"hx-request": "true"})
    assert "receive emails from Downtown" in unescape(email.text)

    wording = "Yes, text me about new pieces from Downtown. Reply STOP to opt out."
    resp = await ann.post(f"/admin/clients/{cid}/consent", htmx=True,
                          data={"channel": "sms", "purpose": "marketing", "status": "opted_in", "wording": wording})
    assert resp.status_code == 200 and 'id="consent-card"' in resp.text
    shown = text_of(unescape(resp.text))
    assert "In-store opt-in recorded" in shown and "Opted in" in shown and org.users["ann"] in shown
    assert wording in shown
    [row] = await _ledger(rt, cid)
    assert (row.channel, row.purpose, row.status, row.source_kind) == ("sms", "marketing", "opted_in", "in_store")
    assert row.recorded_by == org.users["ann"] and row.wording == wording
    async with rt.db.session() as s:
        assert await current_consent(s, cid, "sms") == "opted_in"
        audit = (await s.exec(select(AuditLog).where(col(AuditLog.action) == "client.consent"))).all()
    assert [(a.actor, a.target_id, a.details["wording"]) for a in audit] == [(org.users["ann"], str(cid), wording)]

    # Without htmx: a redirect back to the client page. An opt-out needs no wording.
    plain = await ann.post(f"/admin/clients/{cid}/consent",
                           data={"channel": "email", "purpose": "marketing", "status": "opted_out", "wording": ""})
    assert plain.status_code == 303 and plain.headers["location"] == f"/admin/clients/{cid}"
    assert len(await _ledger(rt, cid)) == 2


async def test_bad_input_is_refused_and_nothing_is_recorded(rt: Runtime, org: Org, panels) -> None:  # type: ignore[no-untyped-def]
    ann = await panels(org.users["ann"])
    cid = org.clients["ann_client"]
    await ann.get(f"/admin/clients/{cid}/consent")
    resp = await ann.post(f"/admin/clients/{cid}/consent", htmx=True,
                          data={"channel": "sms", "purpose": "marketing", "status": "opted_in", "wording": " "})
    assert resp.status_code == 200 and "exact words" in resp.text
    bad = await ann.post(f"/admin/clients/{cid}/consent", htmx=True,
                         data={"channel": "pigeon", "purpose": "marketing", "status": "opted_in", "wording": "x"})
    assert "Choose how the client may be contacted" in bad.text
    assert await _ledger(rt, cid) == []


async def test_other_stores_clients_answer_404_and_csrf_is_required(rt: Runtime, org: Org, panels) -> None:  # type: ignore[no-untyped-def]
    ann = await panels(org.users["ann"])
    await ann.get("/admin/clients")
    for key in ("uptown_client", "harbor_client", "bob_client"):
        cid = org.clients[key]
        assert (await ann.get(f"/admin/clients/{cid}/consent")).status_code == 404
        resp = await ann.post(f"/admin/clients/{cid}/consent",
                              data={"channel": "sms", "purpose": "marketing", "status": "opted_in", "wording": "x"})
        assert resp.status_code == 404
        assert await _ledger(rt, cid) == []
    # The manager of Downtown may record for Downtown's clients.
    manager = await panels(org.users["manager"])
    await manager.get("/admin/clients")
    ok = await manager.post(f"/admin/clients/{org.clients['bob_client']}/consent", htmx=True,
                            data={"channel": "sms", "purpose": "marketing", "status": "opted_in", "wording": "Yes."})
    assert ok.status_code == 200 and len(await _ledger(rt, org.clients["bob_client"])) == 1
    # No CSRF token: refused.
    no_token = await ann.client.post(f"/admin/clients/{org.clients['ann_client']}/consent",
                                     data={"channel": "sms", "purpose": "marketing", "status": "opted_in",
                                           "wording": "x"}, follow_redirects=False)
    assert no_token.status_code == 403
    assert await _ledger(rt, org.clients["ann_client"]) == []
