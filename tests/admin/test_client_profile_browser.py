"""The client profile on a phone (390 px), in headless Chromium against the real app: it reads
without sideways scrolling, with its purchases, pictures and activity."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from core.runtime import Runtime
from core.settings import Settings
from core.web import create_app
from tests.admin.conftest import PASSWORD, SCREEN_SIZES, Org, ServedApp, build_org, runtime_with, screenshot_dir
from tests.admin.test_client_profile import seed_history

pytestmark = pytest.mark.browser


@pytest.fixture
async def served(settings: Settings, db: Any, serve: Callable[..., ServedApp], browser: Any
                 ) -> AsyncIterator[tuple[ServedApp, Runtime, Org]]:
    runtimes: list[Runtime] = []

    def build(url: str) -> Any:
        runtime = runtime_with(settings.model_copy(update={"base_url": url}))
        runtimes.append(runtime)
        return create_app(runtime)

    async def close_runtime() -> None:
        await runtimes[0].close()

    clasp = serve(build, on_stop=close_runtime)
    rt = runtime_with(settings.model_copy(update={"base_url": clasp.url}))
    org = await build_org(rt)
    try:
        yield clasp, rt, org
    finally:
        await rt.close()


async def test_the_profile_reads_on_a_phone_without_sideways_scroll(
    browser: Any, served: tuple[ServedApp, Runtime, Org]
) -> None:
    clasp, rt, org = served
    ids = await seed_history(rt, org, extra_sales=12)
    context = await browser.new_context(viewport=SCREEN_SIZES["phone"])
    page: Page = await context.new_page()
    try:
        await page.goto(clasp.url + f"/admin/clients/{ids['client']}")
        await page.get_by_label("Email").fill(org.users["owner"])
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(re.compile(rf"/admin/clients/{ids['client']}$"))
        await expect(page.get_by_text("Returned: Diamond Studs 1ct from")).to_be_visible()
        await expect(page.locator("img.thumb").first).to_have_attribute("src", "https://img.example/ring-first.jpg")
        await page.get_by_role("link", name=re.compile(r"Show all \d+ purchases")).click()
        await expect(page.locator("li.purchase")).to_have_count(2 + 3 + 12)
        await page.screenshot(path=str(screenshot_dir() / "client-profile-phone.png"), full_page=True)
        widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the profile scrolls sideways at 390 px: {widths}"
        # No element pokes out of the viewport on the right either (an overflow:hidden parent would hide it).
        wide = await page.evaluate(
            "Array.from(document.querySelectorAll('#client-main *, #purchases *, #timeline *'))"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
            ".map(e => e.tagName + '.' + e.className).slice(0, 5)"
        )
        assert wide == [], wide
    finally:
        await context.close()
