"""The panel driven as a person would, in headless Chromium, against the real app served by
uvicorn over a real socket, with a real database, Redis, worker and a fake OAuth provider."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect
from sqlmodel import delete

from core.connectors import add_connector
from core.models import WebSession
from core.runtime import Runtime
from core.settings import Settings
from core.web import create_app
from tests.admin import fakeshop
from tests.admin.conftest import PASSWORD, Org, ServedApp, build_org, runtime_with

pytestmark = pytest.mark.browser


class Live:
    def __init__(self, clasp: ServedApp, provider: ServedApp, rt: Runtime, org: Org) -> None:
        self.clasp, self.provider, self.rt, self.org = clasp, provider, rt, org

    def url(self, path: str) -> str:
        return self.clasp.url + path


@pytest.fixture
async def live(settings: Settings, db: Any, serve: Callable[..., ServedApp], browser: Any) -> AsyncIterator[Live]:
    """Clasp served for real (with the FakeShop test plugin), FakeShop's provider, and the org."""
    provider = serve(lambda _url: fakeshop.create_provider(clients=8, page_size=2, page_delay=0.6))
    runtimes: list[Runtime] = []

    def build(url: str) -> Any:
        runtime = runtime_with(settings.model_copy(update={"base_url": url}), fakeshop)
        runtimes.append(runtime)
        return create_app(runtime)

    async def close_runtime() -> None:
        await runtimes[0].close()

    clasp = serve(build, on_stop=close_runtime)
    # The test's own runtime (this event loop): for setup and for running the worker in-process.
    rt = runtime_with(settings.model_copy(update={"base_url": clasp.url}), fakeshop)
    org = await build_org(rt)
    try:
        yield Live(clasp, provider, rt, org)
    finally:
        if rt.redis is not None:
            await rt.redis.aclose()
        await rt.close()


async def sign_in(page: Page, live: Live, person: str = "owner", then: str = "/admin") -> None:
    await page.goto(live.url(then))
    await expect(page).to_have_url(re.compile(r"/admin/sign-in"))
    await page.get_by_label("Email").fill(live.org.users[person])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(live.url(then))


async def test_sign_in_failure_then_success_then_sign_out(page: Page, live: Live) -> None:
    await page.goto(live.url("/"))
    await expect(page).to_have_url(re.compile(r"/admin/sign-in"))
    await page.get_by_label("Email").fill(live.org.users["manager"])
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("do not match an active account")
    await expect(page.get_by_label("Email")).to_have_value(live.org.users["manager"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Connectors")).to_be_visible()
    await expect(nav.get_by_role("link", name="Audit")).to_have_count(0)  # managers do not audit
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    await page.goto(live.url("/admin/clients"))
    await expect(page).to_have_url(re.compile(r"/admin/sign-in\?next=/admin/clients"))


async def test_add_connector_authorize_and_test_the_connection(page: Page, live: Live) -> None:
    await sign_in(page, live)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Connectors").click()
    await page.locator(".type-card", has_text="FakeShop").get_by_role("link", name="Add").click()
    await expect(page.get_by_role("heading", name="New FakeShop connector")).to_be_visible()
    # Mistakes first: no name, a page size out of range.
    await page.get_by_label("FakeShop URL").fill(live.provider.url)
    await page.get_by_label("OAuth client id").fill("clasp-app")
    await page.get_by_label("Page size").fill("0")
    await page.get_by_label("Data region").select_option("eu")
    await page.get_by_role("button", name="Add connector").click()
    await expect(page.locator('[data-field="name"] .error')).to_contain_text("Give the connector a name")
    await expect(page.locator('[data-field="page_size"] .error')).to_contain_text("greater than or equal to 1")
    await expect(page.get_by_label("FakeShop URL")).to_have_value(live.provider.url)
    await expect(page.get_by_label("Data region")).to_have_value("eu")
    # Fixed.
    await page.get_by_label("Name").fill("FakeShop Downtown")
    await page.get_by_label("Page size").fill("2")
    await page.get_by_role("button", name="Add connector").click()
    await expect(page.get_by_role("heading", name="FakeShop Downtown")).to_be_visible()
    await expect(page.get_by_text("Connector “FakeShop Downtown” added.")).to_be_visible()
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#check-result")).to_contain_text("Not authorized yet")
    # One-click OAuth: off to FakeShop, approve, and back.
    await page.get_by_role("button", name="Authorize with FakeShop").click()
    await expect(page.get_by_role("heading", name="Allow Clasp to read FakeShop?")).to_be_visible()
    assert page.url.startswith(live.provider.url + "/authorize")
    await page.get_by_role("link", name="Approve").click()
    await expect(page.get_by_text("“FakeShop Downtown” is authorized.")).to_be_visible()
    await expect(page.locator('[data-field="access_token"]')).to_contain_text("•••• set")
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#check-result")).to_contain_text("Connected to FakeShop Downtown")
    # Everything above is in the audit log.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    for action in (
        "auth.sign_in",
        "connector.create",
        "connector.authorize_started",
        "connector.authorized",
        "connector.check",
    ):
        await expect(page.locator("table.audit").get_by_text(action, exact=True).first).to_be_visible()


async def _authorized_connector(live: Live) -> int:
    async with live.rt.db.transaction() as session:
        connector = await add_connector(
            live.rt,
            session,
            type_name="fakeshop",
            name="FakeShop Downtown",
            values={"base_url": live.provider.url, "client_id": "clasp-app", "access_token": "t0ken-123"},
        )
    assert connector.id is not None
    return connector.id


async def test_sync_now_shows_live_progress_and_the_result(page: Page, live: Live) -> None:
    from core.jobs import create_worker

    cid = await _authorized_connector(live)
    await sign_in(page, live, "manager", then=f"/admin/connectors/{cid}")
    await page.get_by_label("full backfill").check()
    await page.get_by_role("button", name="Sync now").click()
    await expect(page.locator("#check-result")).to_have_text("Full backfill queued.")
    worker = await create_worker(live.rt, burst=True)
    running = asyncio.create_task(worker.async_run())
    try:
        status = page.locator("#sync-status")
        await expect(status).to_contain_text("Backfill running", timeout=20_000)
        await expect(status.locator("progress")).to_be_visible()
        await expect(status).to_contain_text("Last run: succeeded", timeout=30_000)
        await expect(status).to_contain_text("9 records")  # 1 shop + 8 clients
        await asyncio.wait_for(running, 30)
    finally:
        await worker.close()
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    runs = page.locator("section", has=page.get_by_role("heading", name="Recent sync runs"))
    await expect(runs.locator("tbody tr").first).to_contain_text("succeeded")
    await expect(runs.locator("tbody tr").first).to_contain_text("panel")


async def test_an_expired_session_sends_polling_pages_to_sign_in(page: Page, live: Live) -> None:
    cid = await _authorized_connector(live)
    await sign_in(page, live, "owner", then=f"/admin/connectors/{cid}")
    async with live.rt.db.transaction() as session:
        await session.exec(delete(WebSession))  # type: ignore[call-overload]
    # The next poll of the status fragment gets a client redirect, not a sign-in form in the fragment.
    await expect(page).to_have_url(re.compile(rf"/admin/sign-in\?next=/admin/connectors/{cid}$"), timeout=10_000)
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#sync-status")).to_have_count(0)


async def test_an_associate_cannot_open_another_stores_client(page: Page, live: Live) -> None:
    await sign_in(page, live, "cat")
    await page.goto(live.url(f"/admin/clients/{live.org.clients['ann_client']}"))
    await expect(page.get_by_role("heading", name="Nothing here")).to_be_visible()
    await page.goto(live.url("/admin/connectors"))
    await expect(page.get_by_role("heading", name="You do not have access to this")).to_be_visible()
