"""The Today page over real HTTP: each person sees only the follow-ups in their scope, with the
client's context and one-tap actions; done and snooze change the task; managers see completion."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus

from sqlmodel import select

from core.models import Associate, AuditLog, ClientContact, Task, utcnow
from core.runtime import Runtime
from tests.admin.conftest import Org, text_of


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
                            due_at=now - timedelta(days=3)),
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
    assert f'/admin/clients/{org.clients["ann_client"]}/messages?body={quote_plus("Happy birthday Ada & co!")}' in (
        resp.text.replace("&amp;", "&")
    )
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
    assert "Upcoming" in page and "Overdue" not in page

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
