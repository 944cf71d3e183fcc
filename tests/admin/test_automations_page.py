"""The Automations page over real HTTP: who may do what, configuring with validation and audit, a
live preview with a real client (and an inline template error), and a dry run whose counts are what a
real run then creates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect
from sqlmodel import select

from core.models import Associate, AuditLog, Automation, Client, Task, utcnow
from core.runtime import Runtime
from core.settings import Settings
from core.web import create_app
from tests.admin.conftest import PASSWORD, Org, ServedApp, build_org, runtime_with, text_of


async def birthdays_today(rt: Runtime, org: Org) -> date:
    """Ada (Ann's, Downtown) and Uma (Uptown's store book) have their birthday today, locally."""
    async with rt.db.transaction() as s:
        for key, tz in (("ann_client", "America/New_York"), ("uptown_client", "America/Chicago")):
            client = await s.get(Client, org.clients[key])
            assert client is not None
            local = utcnow().astimezone(ZoneInfo(tz)).date()
            client.birthday = local.replace(year=1985)
            s.add(client)
    return local


async def automation(rt: Runtime, name: str) -> Automation:
    async with rt.db.session() as s:
        return (await s.exec(select(Automation).where(Automation.name == name))).one()


async def test_only_owners_change_automations_and_associates_see_none(rt: Runtime, panels: Any, org: Org) -> None:
    ann = await panels(org.users["ann"])
    assert (await ann.get("/admin/automations")).status_code == 403
    await ann.get("/admin/today")
    assert (await ann.post("/admin/automations/birthday/enable")).status_code == 403
    assert (await ann.post("/admin/automations/birthday/configure", {"template": "hi"})).status_code == 403
    assert "/admin/automations" not in (await ann.get("/admin/today")).text  # not in an associate's nav

    manager = await panels(org.users["manager"])
    listing = await manager.get("/admin/automations")
    assert listing.status_code == 200 and "birthday" in listing.text and "thank_you" in listing.text
    assert (await manager.post("/admin/automations/birthday/enable")).status_code == 403
    assert (await manager.post("/admin/automations/birthday/run")).status_code == 403
    assert (await automation(rt, "birthday")).enabled is False


async def test_configure_validates_saves_and_audits(rt: Runtime, panels: Any, org: Org) -> None:
    owner = await panels(org.users["owner"])
    page = await owner.get("/admin/automations/birthday")
    assert page.status_code == 200 and 'name="send_time"' in page.text and 'name="catch_up_hours"' in page.text
    before = await automation(rt, "birthday")

    bad = await owner.post("/admin/automations/birthday/configure", {
        "send_time": "09:30", "catch_up_hours": "999", "action": "task", "template": "Hi {{ client.first_name }}"})
    assert bad.status_code == 422 and "catch_up_hours" in text_of(bad.text).replace("Catch up", "catch_up_hours")
    broken = await owner.post("/admin/automations/birthday/configure", {
        "send_time": "09:30", "catch_up_hours": "2", "action": "task", "template": "Hi {{ client.first_name"})
    assert broken.status_code == 422 and "template" in text_of(broken.text).lower()
    unchanged = await automation(rt, "birthday")
    assert unchanged.settings == before.settings and unchanged.template == before.template

    ok = await owner.post("/admin/automations/birthday/configure", {
        "send_time": "09:30", "catch_up_hours": "2", "action": "task", "template": "Hi {{ client.first_name }}!",
        "location_ids": str(org.locations["downtown"])})
    assert ok.status_code == 303, ok.text
    saved = await automation(rt, "birthday")
    assert saved.settings["send_time"].startswith("09:30") and saved.settings["catch_up_hours"] == 2
    assert saved.action == "task" and saved.template == "Hi {{ client.first_name }}!"
    assert saved.scope == {"location_ids": [org.locations["downtown"]]}

    assert (await owner.post("/admin/automations/birthday/enable")).status_code == 303
    assert (await automation(rt, "birthday")).enabled is True
    assert (await owner.post("/admin/automations/birthday/disable")).status_code == 303
    async with rt.db.session() as s:
        actions = [a.action for a in (await s.exec(select(AuditLog).where(AuditLog.target_type == "automation")))]
    assert sorted(actions) == ["automation.configure", "automation.disable", "automation.enable"]


async def test_preview_renders_a_real_client_and_shows_template_errors_inline(
    rt: Runtime, panels: Any, org: Org
) -> None:
    owner = await panels(org.users["owner"])
    await owner.get("/admin/automations/birthday")
    resp = await owner.post("/admin/automations/birthday/preview", {
        "client_id": str(org.clients["ann_client"]), "template": "Dear {{ client.first_name }} {{ client.last_name }}"},
        htmx=True)
    assert resp.status_code == 200 and "Dear Ada Ames" in resp.text
    broken = await owner.post("/admin/automations/birthday/preview", {
        "client_id": str(org.clients["ann_client"]), "template": "Dear {{ client.first_name"}, htmx=True)
    assert broken.status_code == 200 and "template-error" in broken.text and "Dear" not in text_of(broken.text)
    # A manager previews only with clients they may see.
    manager = await panels(org.users["manager"])
    await manager.get("/admin/automations/birthday")
    hidden = await manager.post("/admin/automations/birthday/preview", {
        "client_id": str(org.clients["harbor_client"]), "template": "Dear {{ client.first_name }}"}, htmx=True)
    assert "Hal" not in hidden.text and "template-error" in hidden.text


async def test_dry_run_counts_are_what_run_now_creates(rt: Runtime, panels: Any, org: Org) -> None:
    await birthdays_today(rt, org)
    owner = await panels(org.users["owner"])
    await owner.get("/admin/automations/birthday")
    saved = await owner.post("/admin/automations/birthday/configure", {
        "send_time": "00:00", "catch_up_hours": "0", "action": "task",
        "template": "Happy birthday {{ client.first_name }}"})
    assert saved.status_code == 303, saved.text
    assert (await owner.post("/admin/automations/birthday/enable")).status_code == 303

    dry = await owner.post("/admin/automations/birthday/dry-run", htmx=True)
    assert dry.status_code == 200
    summary = text_of(dry.text)
    assert "2 task(s) would be created" in summary
    assert "Downtown 1" in summary and "Uptown 1" in summary
    async with rt.db.session() as s:
        assert (await s.exec(select(Task))).all() == []  # a dry run writes nothing

    ran = await owner.post("/admin/automations/birthday/run")
    assert ran.status_code == 303
    async with rt.db.session() as s:
        tasks = (await s.exec(select(Task))).all()
        ann = (await s.exec(select(Associate).where(Associate.first_name == "Ann"))).one()
    assert sorted(t.location_id for t in tasks) == sorted([org.locations["downtown"], org.locations["uptown"]])
    assert {t.client_id: t.associate_id for t in tasks}[org.clients["ann_client"]] == ann.id
    assert "created 2 task(s)" in text_of((await owner.get("/admin/automations/birthday")).text)
    # Run again: nothing twice.
    await owner.post("/admin/automations/birthday/run")
    async with rt.db.session() as s:
        assert len((await s.exec(select(Task))).all()) == 2
    history = text_of((await owner.get("/admin/automations/birthday")).text)
    assert "open: 2" in history and "Happy birthday Ada" in history and "Happy birthday Uma" in history
    manager = await panels(org.users["manager"])  # Downtown only
    theirs = text_of((await manager.get("/admin/automations/birthday")).text)
    assert "open: 1" in theirs and "Happy birthday Ada" in theirs and "Uma" not in theirs


# ------------------------------------------------------------------------------------------ browser


@pytest.mark.browser
async def test_owner_enables_previews_and_runs_then_associate_completes_on_today(
    settings: Settings, db: Any, serve: Callable[..., ServedApp], browser: Any, page: Page
) -> None:
    runtimes: list[Runtime] = []

    def build(_url: str) -> Any:
        runtimes.append(runtime_with(settings))
        return create_app(runtimes[-1])

    async def close_runtime() -> None:
        await runtimes[0].close()

    clasp = serve(build, on_stop=close_runtime)
    rt = runtime_with(settings)
    try:
        org = await build_org(rt)
        await birthdays_today(rt, org)

        async def sign_in(p: Page, person: str, then: str) -> None:
            await p.goto(clasp.url + then)
            await p.get_by_label("Email").fill(org.users[person])
            await p.get_by_label("Password").fill(PASSWORD)
            await p.get_by_role("button", name="Sign in").click()
            await expect(p).to_have_url(clasp.url + then)

        await sign_in(page, "owner", "/admin/automations")
        await page.get_by_role("link", name="birthday").click()
        await page.locator("#f-send_time").fill("00:00")
        await page.locator("#f-action").select_option("task")
        await page.locator("#f-template").fill("Happy birthday {{ client.first_name }}, from {{ location.name }}")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_text("Settings saved.")).to_be_visible()
        await page.locator("#toggle-automation").click()
        await expect(page.get_by_text("“birthday” enabled.")).to_be_visible()

        await page.locator("#preview-client").fill(str(org.clients["ann_client"]))
        await page.locator("#preview-button").click()
        await expect(page.locator("#preview .preview-body")).to_have_text("Happy birthday Ada, from Downtown")
        await page.locator("#dry-run-button").click()
        await expect(page.locator("#dry-run")).to_contain_text("2 task(s) would be created")
        await page.locator("#run-now").click()
        await expect(page.get_by_text("birthday: created 2 task(s).")).to_be_visible()

        context = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone on the floor
        phone = await context.new_page()
        try:
            await sign_in(phone, "ann", "/admin/today")
            task = phone.locator(".today-task", has_text="Birthday: Ada Ames")
            await expect(task).to_be_visible()
            await expect(task).to_contain_text("Happy birthday Ada, from Downtown")
            await expect(phone.get_by_text("Uma Urban")).to_have_count(0)
            await task.get_by_role("button", name="Mark done").click()
            await expect(phone.locator(".today-done")).to_contain_text("Birthday: Ada Ames")
            await expect(phone.get_by_role("button", name="Mark done")).to_have_count(0)
        finally:
            await context.close()
        async with rt.db.session() as s:
            done = (await s.exec(select(Task).where(Task.client_id == org.clients["ann_client"]))).one()
        assert done.state == "done"
    finally:
        if rt.redis is not None:
            await rt.redis.aclose()
        await rt.close()
