"""The panel on a 390 px phone, for every role: the navigation is one compact bar with a "Menu", and no
page scrolls sideways, on a small chain with the long names, emails, URLs and row counts real stores have.

The pages come from each person's own rendered navigation (so a page added to the nav is checked
without touching this test), plus a client, a sale and a conversation thread. Screenshots land in
test-artifacts/screens/ (docs/screenshots/ with ``CLASP_TEST_SCREENSHOTS=1``).
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import Page, expect
from sqlmodel import select

from core.models import (
    Associate,
    Client,
    ClientContact,
    Outreach,
    Product,
    ProductImage,
    Sale,
    SaleLine,
    SyncError,
    Task,
    User,
    utcnow,
)
from core.runtime import Runtime
from core.settings import Settings
from core.web import create_app
from tests.admin import fakeshop
from tests.admin.conftest import PASSWORD, SCREEN_SIZES, Org, ServedApp, build_org, runtime_with, screenshot_dir

pytestmark = pytest.mark.browser

PHONE = SCREEN_SIZES["phone"]
NAV_MAX_HEIGHT = 64  # px: one row, where the old navigation took four (232 px)
PEOPLE = ("owner", "manager", "ann")  # an owner, a Downtown manager, a Downtown associate

LONG_FIRST = ["Anastasia-Maximiliana", "Bartholomew", "Guinevere", "Maximilian-Alexander", "Oluwaseun", "Thandiwe"]
LONG_LAST = ["Papadopoulou-Vanderberg", "Castellanos-Montgomery", "Wolfeschlegelsteinhausen", "Nakamura-Fitzgerald"]
LONG_URL = "https://maison-clasp.example.com/collections/engagement/" + "platinum-oval-solitaire-" * 6 + "?utm=spring"
# An image far wider than a phone: it must shrink into its box, not widen the page.
WIDE_IMAGE = "data:image/svg+xml," + quote(
    "<svg xmlns='http://www.w3.org/2000/svg' width='2400' height='1200'>"
    "<rect width='2400' height='1200' fill='#c9bcff'/></svg>"
)

# The widest element whose right edge passes the viewport, skipping those inside a scroll box that itself
# fits (a table allowed to scroll inside its card does not scroll the page).
OFFENDER_JS = """() => {
  const vw = window.innerWidth;
  const describe = (el) => {
    const r = el.getBoundingClientRect();
    const name = typeof el.className === 'string' ? el.className.trim() : '';
    const cls = name ? '.' + name.split(/\\s+/).join('.') : '';
    return {width: Math.round(r.width), right: Math.round(r.right),
            element: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls,
            text: (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 60)};
  };
  const inFittingScrollBox = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== 'visible' && p.getBoundingClientRect().right <= vw + 0.5) return true;
    }
    return false;
  };
  const past = [...document.querySelectorAll('body *')].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.right > vw + 0.5 && (r.width > 0 || r.height > 0) && el.checkVisibility();
  });
  // Text that runs past its own box (an unbreakable word in a box that may not grow) counts as its parent.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(node);
    const r = range.getBoundingClientRect();
    const parent = node.parentElement;
    if (r.right > vw + 0.5 && parent && parent.checkVisibility() && !past.includes(parent)) past.push(parent);
  }
  const loose = past.filter((el) => !inFittingScrollBox(el));
  const pool = loose.length ? loose : past;
  pool.sort((a, b) => b.getBoundingClientRect().width - a.getBoundingClientRect().width);
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: vw, worst: pool.slice(0, 3).map(describe)};
}"""


@dataclass
class Chain:
    served: ServedApp
    org: Org
    client_id: int  # Ada Ames: Ann's client at Downtown, in every signed-in person's scope
    sale_id: int  # a Downtown sale of Ada's, by Ann, with long lines and a refund


async def long_chain(rt: Runtime) -> tuple[Org, int, int]:
    """build_org plus what stretches a layout: long names, emails and product names, a thread with a
    long link, many tasks and sales, sync errors with long reasons."""
    org = await build_org(rt)
    rng = random.Random(14)
    now = utcnow()
    downtown = org.locations["downtown"]
    async with rt.db.transaction() as s:
        for person, email in org.users.items():
            user = (await s.exec(select(User).where(User.email == email))).one()
            user.name = f"{person.title()} Wolfeschlegelsteinhausen-Bergerdorff"
        ann = (await s.exec(select(Associate).where(Associate.first_name == "Ann"))).one()
        ann.last_name = "Lee-Castellanos-Montgomery"
        ada = await s.get(Client, org.clients["ann_client"])
        assert ada is not None
        ada.first_name, ada.last_name = "Adelaide-Anastasia", "Ames-Papadopoulou-Vanderberg"
        s.add(ClientContact(client_id=ada.id, kind="phone", value="+13125550177", is_primary=True))
        product = Product(
            sku="RING-PLAT-OVAL-SOLITAIRE-2.5CT-VS1-F-SIZE-6.5-ENGRAVED",
            name="Platinum oval solitaire engagement ring, 2.5 ct, VS1 F, hand-engraved milgrain band",
            vendor="Atelier Wolfeschlegelsteinhausen & Fils",
            price_minor=2_450_000,
            currency="USD",
        )
        s.add(product)
        await s.flush()
        s.add(ProductImage(product_id=product.id, url=WIDE_IMAGE))  # type: ignore[arg-type]
        sale = Sale(
            location_id=downtown,
            associate_id=ann.id,
            client_id=ada.id,
            status="completed",
            currency="USD",
            total_minor=2_450_000 - 180_000,
            occurred_at=now - timedelta(days=2),
        )
        s.add(sale)
        await s.flush()
        ring = SaleLine(
            sale_id=sale.id,  # type: ignore[arg-type]
            product_id=product.id,
            sku=product.sku,
            name=product.name,
            quantity=1,
            unit_price_minor=2_450_000,
            total_minor=2_450_000,
        )
        s.add(ring)
        await s.flush()
        s.add(
            SaleLine(
                sale_id=sale.id,  # type: ignore[arg-type]
                sku="SVC-ENGRAVING-CUSTOM-SCRIPT-FONT",
                name="Refund: custom engraving 'Forever and always, my dearest Anastasia'",
                quantity=-1,
                unit_price_minor=180_000,
                total_minor=-180_000,
                parent_line_id=ring.id,
            )
        )
        for i in range(45):
            first, last = rng.choice(LONG_FIRST), rng.choice(LONG_LAST)
            client = Client(first_name=first, last_name=last, home_location_id=downtown, owner_associate_id=ann.id)
            s.add(client)
            await s.flush()
            email = f"{first}.{last}.{i}@extremely-long-family-office-domain-name.example.com".lower()
            s.add(ClientContact(client_id=client.id, kind="email", value=email, is_primary=True))  # type: ignore[arg-type]
            s.add(
                Sale(
                    location_id=downtown,
                    associate_id=ann.id,
                    client_id=client.id,
                    status="completed" if i % 7 else "voided",
                    currency="USD",
                    total_minor=rng.randrange(20_000, 9_000_000),
                    occurred_at=now - timedelta(days=rng.randrange(1, 900)),
                )
            )
            if i < 24:
                s.add(
                    Task(
                        client_id=client.id,
                        associate_id=ann.id,
                        location_id=downtown,
                        kind="call" if i % 2 else "text",
                        title=f"Follow up with {first} {last} about the {product.name}",
                        body=f"They asked for the certificate: {LONG_URL}",
                        due_at=now - timedelta(days=i % 5),
                    )
                )
        thread = [
            ("inbound", "received", "Hi! Is the oval solitaire still available? " + LONG_URL),
            ("outbound", "delivered", "It is, Adelaide-Anastasia. We can hold it until Saturday: " + LONG_URL),
            ("inbound", "received", "Wonderful, thank you!!! " + "x" * 90),
            ("outbound", "failed", "Reminder: your appointment is at 3 pm."),
        ]
        for n, (direction, state, body) in enumerate(thread):
            s.add(
                Outreach(
                    client_id=ada.id,
                    associate_id=ann.id,
                    location_id=downtown,
                    channel="sms",
                    direction=direction,
                    kind="transactional",
                    state=state,
                    state_reason="30007 carrier filtered the message as spam" if state == "failed" else None,
                    from_address="+13125550177" if direction == "inbound" else "+13125550100",
                    to_address="+13125550100" if direction == "inbound" else "+13125550177",
                    body=body,
                    created_at=now - timedelta(hours=5 - n),
                )
            )
        s.add(  # a text from a number nobody has: the Inbox's "unknown numbers"
            Outreach(
                location_id=downtown,
                channel="sms",
                direction="inbound",
                kind="transactional",
                state="received",
                from_address="+13125550999",
                to_address="+13125550100",
                body="Hello, this is Bartholomew's assistant, about the repair ticket " + "R-" + "9" * 60,
            )
        )
        for i in range(3):
            s.add(
                SyncError(
                    connector_id=org.connector_id,
                    stream="customers",
                    external_id=f"C-{'7' * 40}{i}",
                    reason="email 'anastasia.maximiliana@' is not valid: " + "the domain is missing " * 5,
                    payload={"customer": {"email": "anastasia.maximiliana@", "note": LONG_URL * 2}},
                )
            )
    return org, org.clients["ann_client"], sale.id  # type: ignore[return-value]


@pytest.fixture
async def chain(settings: Settings, db: Any, serve: Callable[..., ServedApp], browser: Any) -> AsyncIterator[Chain]:
    runtimes: list[Runtime] = []

    def build(url: str) -> Any:
        runtime = runtime_with(settings.model_copy(update={"base_url": url}), fakeshop)
        runtimes.append(runtime)
        return create_app(runtime)

    async def close_runtime() -> None:
        await runtimes[0].close()

    served = serve(build, on_stop=close_runtime)
    rt = runtime_with(settings.model_copy(update={"base_url": served.url}), fakeshop)
    try:
        org, client_id, sale_id = await long_chain(rt)
        yield Chain(served, org, client_id, sale_id)
    finally:
        if rt.redis is not None:
            await rt.redis.aclose()
        await rt.close()


async def sign_in(page: Page, chain: Chain, person: str) -> None:
    await page.goto(chain.served.url + "/admin/sign-in")
    await page.get_by_label("Email").fill(chain.org.users[person])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(chain.served.url + "/admin")


async def assert_fits(page: Page, where: str) -> None:
    fit = await page.evaluate(OFFENDER_JS)
    assert fit["scrollWidth"] <= fit["innerWidth"], (
        f"{where} scrolls sideways: {fit['scrollWidth']} px wide in a {fit['innerWidth']} px viewport; "
        f"widest elements past the edge: {fit['worst']}"
    )


def shot_name(person: str, path: str) -> str:
    return f"phone-{person}-" + (
        re.sub(r"[^a-z0-9]+", "-", path.removeprefix("/admin").lower()).strip("-") or "dashboard"
    )


async def test_every_page_fits_a_phone_for_every_role(browser: Any, chain: Chain) -> None:
    out = screenshot_dir()
    context = await browser.new_context(viewport=PHONE, device_scale_factor=1)
    context.set_default_timeout(15_000)
    page = await context.new_page()
    try:
        for person in PEOPLE:
            await context.clear_cookies()
            await sign_in(page, chain, person)
            nav = page.get_by_role("navigation", name="Main")
            # Every page of this person's nav, from the nav itself (including the entries behind "Menu").
            hrefs = await nav.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
            paths = list(dict.fromkeys(hrefs))
            assert "/admin/clients" in paths and "/admin/today" in paths, paths
            paths += [
                f"/admin/clients/{chain.client_id}",
                f"/admin/sales/{chain.sale_id}",
                f"/admin/clients/{chain.client_id}/messages",
            ]
            for path in paths:
                response = await page.goto(chain.served.url + path)
                assert response is not None and response.status == 200, (
                    f"{person} {path}: {response and response.status}"
                )
                await page.wait_for_load_state("networkidle")
                await assert_fits(page, f"{person} {path}")
                if await nav.count():
                    box = await page.locator("header.topbar").bounding_box()
                    assert box is not None and box["height"] <= NAV_MAX_HEIGHT, f"{person} {path}: top bar is {box} px"
                await page.screenshot(path=str(out / f"{shot_name(person, path)}.png"), full_page=True)
    finally:
        await context.close()


async def test_the_phone_menu_opens_by_touch_and_keyboard_and_the_desktop_shows_every_page(
    browser: Any, chain: Chain
) -> None:
    out = screenshot_dir()
    context = await browser.new_context(viewport=PHONE, device_scale_factor=1)
    context.set_default_timeout(15_000)
    page = await context.new_page()
    try:
        await sign_in(page, chain, "manager")
        await page.goto(chain.served.url + "/admin/clients")
        nav = page.get_by_role("navigation", name="Main")
        # Closed: the three shortcuts, the current page marked, the rest behind "Menu".
        for label in ("Today", "Clients", "Inbox"):
            await expect(nav.get_by_role("link", name=label)).to_be_visible()
        await expect(nav.get_by_role("link", name="Clients")).to_have_attribute("aria-current", "page")
        await expect(nav.get_by_role("link", name="Connectors")).to_be_hidden()
        await expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
        menu = nav.locator("summary", has_text="Menu")
        await menu.click()
        await expect(nav.get_by_role("link", name="Connectors")).to_be_visible()
        await expect(nav.get_by_role("link", name="Audit")).to_have_count(0)  # not a manager's page
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        await assert_fits(page, "the open menu")
        await page.screenshot(path=str(out / "phone-menu-open.png"))
        # Escape closes it and gives focus back to "Menu"; Enter opens it again; a page in it opens.
        await page.keyboard.press("Escape")
        await expect(nav.get_by_role("link", name="Connectors")).to_be_hidden()
        await expect(menu).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(nav.get_by_role("link", name="Sales")).to_be_visible()
        await nav.get_by_role("link", name="Sales").click()
        await expect(page).to_have_url(chain.served.url + "/admin/sales")
        await expect(nav.get_by_role("link", name="Sales")).to_be_hidden()  # a new page starts closed
        await expect(menu).to_have_class(re.compile(r"\bhas-current\b"))  # the current page is in the menu
        # A tap outside closes it.
        await menu.click()
        await page.mouse.click(PHONE["width"] // 2, PHONE["height"] - 20)
        await expect(nav.get_by_role("link", name="Sales")).to_be_hidden()
        # Wide screens: every page of the nav in view at once, no "Menu".
        await page.set_viewport_size(SCREEN_SIZES["desktop"])
        for link in await nav.locator("li.nav-wide a, li.nav-shortcut a").all():
            await expect(link).to_be_in_viewport()
        await expect(menu).to_be_hidden()
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        await page.screenshot(path=str(out / "desktop-nav.png"))
    finally:
        await context.close()
