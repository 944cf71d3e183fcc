"""The Today page over real HTTP: each person sees only the follow-ups in their scope, with the
client's context and one-tap actions; done and snooze change the task; managers see completion."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus

from sqlmodel import select

from core.models import Associate, AuditLog, ClientContact, Outreach, Task, utcnow
from core.runtime import Runtime
from tests.admin.conftest import PASSWORD, Org, text_of


async def add_tasks(rt: Runtime, org: Org) -> dict[str, int]:
    now = utcnow()
    async with rt.db.transaction() as s:
        assoc = {a.first_name: a.id for a in (await s.exec(select(Associate))).all()}
        s.add(ClientContact(client_id=org.clients["ann_client"], kind="phone", value="+12125550134", is_primary=True))
        rows = {
            "ann": Task(client_id=org.clients["ann_client"], associate_id=assoc["Ann"],
                        location_id=org.locations["downtown"], title="Birthday: Ada Ames",
                        body="Happy birthday Ada & co!", due_at=now),
            "ann_old": Task(client_id=org.clients["harbor_bought_downtown"], associate_id=assoc["Ann"],
                            location_id=org.locations["downtown"], title="Thank-you: Hope Hill",
                            due_at=now - timedelta(days=3), created_at=now - timedelta(days=3)),
            "bob": Task(client_id=org.clients["bob_client"], associate_id=assoc["Bob"],
                        location_id=org.locations["downtown"], title="Birthday: Ben Bell", due_at=now),
            "uptown": Task(client_id=org.clients["uptown_client"], location_id=org.locations["uptown"],
                           title="Anniversary: Uma Urban", due_at=now),
        }
        s.add_all(rows.values())
        await s.flush()
        return {k: v.id for k, v in rows.items()}  # type: ignore[misc]


async def task(rt: Runtime, task_id: int) -> Task:
    async with rt.db.session() as s:
        row = await s.get(Task, task_id)
        assert row is not None
        return row


async def test_associates_see_only_their_own_follow_ups_with_context_and_actions(
    rt: Runtime, panels: Any, org: Org
) -> None:
    ids = await add_tasks(rt, org)
    ann = await panels(org.users["ann"])
    resp = await ann.get("/admin/today")
    assert resp.status_code == 200, resp.text
    page = text_of(resp.text)
    assert "Birthday: Ada Ames" in page and "Thank-you: Hope Hill" in page
    assert "Ben Bell" not in page and "Uma Urban" not in page
    assert "Overdue" in page and "Due today" in page
    assert "Last purchase" in page and "$1,250.00" in page  # Hope's Downtown purchase
    assert 'href="tel:+12125550134"' in resp.text
    link = f'/admin/clients/{org.clients["ann_client"]}/messages?task={ids["ann"]}&body='
    assert link + quote_plus("Happy birthday Ada & co!") in resp.text.replace("&amp;", "&")
    assert "by associate" not in page  # completion is for managers

    # Uptown keeps a communal book: Cat sees the store's unassigned follow-up.
    cat_page = text_of((await (await panels(org.users["cat"])).get("/admin/today")).text)
    assert "Anniversary: Uma Urban" in cat_page and "Ada Ames" not in cat_page

    # Someone else's task is not found, and stays untouched.
    assert (await ann.post(f"/admin/today/{ids['bob']}/done", htmx=True)).status_code == 404
    assert (await ann.post(f"/admin/today/{ids['uptown']}/snooze", {"days": "1"})).status_code == 404
    assert (await task(rt, ids["bob"])).state == "open" and (await task(rt, ids["uptown"])).state == "open"


async def test_done_and_snooze_change_the_task_and_are_audited(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await add_tasks(rt, org)
    ann = await panels(org.users["ann"])
    await ann.get("/admin/today")
    resp = await ann.post(f"/admin/today/{ids['ann']}/done", htmx=True)
    assert resp.status_code == 200, resp.text
    assert 'id="today-tasks"' in resp.text and "Done today" in text_of(resp.text)
    done = await task(rt, ids["ann"])
    assert done.state == "done" and done.done_at is not None
    # A second tap does not complete it twice.
    assert (await ann.post(f"/admin/today/{ids['ann']}/done", htmx=True)).status_code == 404

    resp = await ann.post(f"/admin/today/{ids['ann_old']}/snooze", {"days": "3"})
    assert resp.status_code == 303
    snoozed = await task(rt, ids["ann_old"])
    assert snoozed.state == "snoozed" and snoozed.snoozed_until is not None
    assert timedelta(days=2) < snoozed.snoozed_until - utcnow() < timedelta(days=4)
    page = text_of((await ann.get("/admin/today")).text)
    assert "Upcoming (1)" in page and "Overdue (" not in page

    async with rt.db.session() as s:
        actions = sorted(a.action for a in (await s.exec(select(AuditLog).where(AuditLog.target_type == "task"))).all())
    assert actions == ["task.complete", "task.snooze"]


async def test_managers_see_their_stores_completion(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await add_tasks(rt, org)
    ann = await panels(org.users["ann"])
    await ann.get("/admin/today")
    assert (await ann.post(f"/admin/today/{ids['ann']}/done", htmx=True)).status_code == 200
    manager = await panels(org.users["manager"])
    resp = await manager.get("/admin/today")
    page = text_of(resp.text)
    assert "by associate" in page
    assert "Ann Lee 1 1 0 1" in page  # due today 1, done 1, open 0, overdue 1 (Hope's thank-you)
    assert "Bob Ray 1 0 1 0" in page
    assert "Uma Urban" not in page  # Uptown is not the manager's store
    assert 'href="/admin/today"' in resp.text  # in the nav


# ------------------------------------------------------------------------------ Today at scale (HTTP)


async def many_overdue(rt: Runtime, org: Org, n: int) -> list[int]:
    """``n`` of Ann's follow-ups, created three days ago and never done (oldest first)."""
    now = utcnow()
    async with rt.db.transaction() as s:
        ann = (await s.exec(select(Associate).where(Associate.first_name == "Ann"))).one()
        rows = [
            Task(client_id=org.clients["ann_client"], associate_id=ann.id, location_id=org.locations["downtown"],
                 kind="call" if i % 2 else "text", title=f"Old follow-up {i:02d}",
                 due_at=now - timedelta(days=3, minutes=-i), created_at=now - timedelta(days=3))
            for i in range(n)
        ]
        s.add_all(rows)
        await s.flush()
        return [r.id for r in rows]  # type: ignore[misc]


def card_ids(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'id="task-(\d+)"', html)]


async def test_overdue_is_capped_with_show_more_filters_and_counts(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await many_overdue(rt, org, 34)
    manager = await panels(org.users["manager"])
    resp = await manager.get("/admin/today")
    assert resp.status_code == 200
    page = text_of(resp.text)
    assert "Overdue (34)" in page and "Overdue 34" in page  # the heading and the counts line
    assert card_ids(resp.text) == ids[:10]
    assert "Show 20 more (24 not shown)" in page
    # "Show more" with htmx: the next 20 cards and a new button, no full page.
    more = await manager.get("/admin/today/more?group=overdue&offset=10", headers={"hx-request": "true"})
    assert more.status_code == 200 and "<html" not in more.text
    assert card_ids(more.text) == ids[10:30] and "Show 4 more" in text_of(more.text)
    last = await manager.get("/admin/today/more?group=overdue&offset=30", headers={"hx-request": "true"})
    assert card_ids(last.text) == ids[30:] and "more" not in text_of(last.text).lower()
    # Without JavaScript the same link shows a longer page.
    assert card_ids((await manager.get("/admin/today?show_overdue=30")).text) == ids[:30]
    # Filters: by type, and by associate (offered to a manager, with only their stores' people).
    calls = await manager.get("/admin/today?kind=call")
    assert "Overdue (17)" in text_of(calls.text)
    assert all(i % 2 for i in (ids.index(t) for t in card_ids(calls.text)))
    assert '<option value="call"' in resp.text and "Ann Lee" in page
    assert "Cat Fox" not in page  # Uptown is not the manager's store
    htmx = await manager.get("/admin/today?kind=text", headers={"hx-request": "true", "hx-target": "today-tasks"})
    assert htmx.text.lstrip().startswith('<div id="today-tasks"') and "Overdue (17)" in text_of(htmx.text)
    # A filter on a store outside the manager's scope shows nothing of it.
    uptown = text_of((await manager.get(f"/admin/today?location={org.locations['uptown']}")).text)
    assert "No follow-ups match these filters." in uptown


async def test_text_is_offered_only_with_a_number_that_takes_texts(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await add_tasks(rt, org)  # Ada has +12125550134 (no label: possibly a mobile)
    async with rt.db.transaction() as s:
        s.add(ClientContact(client_id=org.clients["harbor_bought_downtown"], kind="phone", value="+12125550199",
                            label="Home", is_primary=True))
    ann = await panels(org.users["ann"])
    html = (await ann.get("/admin/today")).text
    ada = html[html.index(f'id="task-{ids["ann"]}"'):]
    ada = ada[: ada.index("</li>")]
    hope = html[html.index(f'id="task-{ids["ann_old"]}"'):]
    hope = hope[: hope.index("</li>")]
    assert ">Text</a>" in ada and 'href="tel:+12125550134"' in ada
    assert ">Text</a>" not in hope and 'href="tel:+12125550199"' in hope
    assert "No Text: landline only." in text_of(hope)


async def test_sending_the_prefilled_text_completes_the_task_once(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await add_tasks(rt, org)
    ann = await panels(org.users["ann"])
    client_id = org.clients["ann_client"]
    composer = await ann.get(f"/admin/clients/{client_id}/messages?task={ids['ann']}&body=Happy+birthday+Ada")
    assert f'name="task_id" value="{ids["ann"]}"' in composer.text
    assert "sending this text marks it done" in text_of(composer.text)
    form = {"body": "Happy birthday Ada", "kind": "transactional", "task_id": str(ids["ann"])}
    resp = await ann.post(f"/admin/clients/{client_id}/messages", form)
    assert resp.status_code == 303, resp.text
    done = await task(rt, ids["ann"])
    assert done.state == "done" and done.done_at is not None
    # The same form sent again (a double tap, a reload) sends nothing new.
    again = await ann.post(f"/admin/clients/{client_id}/messages", form)
    assert again.status_code == 303
    async with rt.db.session() as s:
        rows = (await s.exec(select(Outreach).where(Outreach.client_id == client_id))).all()
        audits = (await s.exec(select(AuditLog).where(AuditLog.action == "task.complete"))).all()
    assert len(rows) == 1 and rows[0].task_id == ids["ann"] and rows[0].state == "pending"
    assert rows[0].to_address == "+12125550134" and len(audits) == 1
    page = text_of((await ann.get("/admin/today")).text)
    assert "Done today (1)" in page
    # Someone else's task cannot be completed by texting one's own client with its id.
    resp = await ann.post(f"/admin/clients/{client_id}/messages", {**form, "task_id": str(ids["bob"])})
    assert resp.status_code == 400 and (await task(rt, ids["bob"])).state == "open"


async def test_an_unlinked_associate_is_told_their_account_is_not_linked(rt: Runtime, panels: Any, org: Org) -> None:
    from core.users import create_user

    async with rt.db.transaction() as s:
        await create_user(s, email="new@example.com", password=PASSWORD, name="New",
                          role="associate", location_ids=[org.locations["downtown"]])
    await add_tasks(rt, org)
    panel = await panels()
    assert (await panel.sign_in("new@example.com")).status_code == 303
    page = text_of((await panel.get("/admin/today")).text)
    assert "Your account isn't linked to a POS associate" in page and "Ask an owner to link it" in page
    assert "Nothing to follow up on" not in page and "Ada Ames" not in page
