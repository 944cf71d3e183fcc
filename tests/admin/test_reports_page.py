"""/admin/reports and its CSV exports over real HTTP on the real app, for every role; the owner's
attribution settings form; and the page in Chromium (with a screenshot for docs/).

The figures come from the chain of ``tests.test_attribution_reports`` and are checked against the
plain-Python reading of its rows there (``expect``), not against the report's own SQL.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from core.attribution.settings import load_attribution_settings
from core.models import Associate, Attribution, AuditLog, Client, Location, Outreach, Sale, Task, utcnow
from core.runtime import Runtime
from core.settings import Settings
from core.users import create_user
from core.web import create_app
from tests.admin.conftest import PASSWORD, SCREEN_SIZES, Panel, ServedApp, runtime_with, screenshot_dir, text_of
from tests.test_attribution_reports import LAST_TOUCH, Chain, build_chain, expect

PERIOD = "from=2026-03-01&to=2026-03-14"


async def _people(rt: Runtime, chain: Chain) -> dict[str, str]:
    """owner, a Downtown manager, Ann (an associate), and an associate user linked to no associate."""
    people = {
        "owner": dict(role="owner"),
        "manager": dict(role="manager", location_ids=[chain.loc["downtown"]]),
        "ann": dict(role="associate", location_ids=[chain.loc["downtown"]], associate_id=chain.assoc["ann"]),
        "newbie": dict(role="associate", location_ids=[chain.loc["downtown"]]),
    }
    async with rt.db.transaction() as s:
        for person, kwargs in people.items():
            await create_user(s, email=f"{person}@example.com", password=PASSWORD, name=person.title(), **kwargs)  # type: ignore[arg-type]
    return {p: f"{p}@example.com" for p in people}


@pytest.fixture
async def chain(rt: Runtime) -> Chain:
    return await build_chain(rt.db)


@pytest.fixture
async def people(rt: Runtime, chain: Chain) -> dict[str, str]:
    return await _people(rt, chain)


def _csv(resp: Any) -> list[dict[str, str]]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(resp.text)))


def _major(minor: int) -> str:
    return f"{minor / 100:.2f}"


async def test_owner_page_shows_the_figures(panels: Callable[..., Any], chain: Chain, people: dict[str, str]) -> None:
    owner: Panel = await panels(people["owner"])
    resp = await owner.get(f"/admin/reports?{PERIOD}&model={LAST_TOUCH}")
    assert resp.status_code == 200, resp.text
    html = resp.text
    assert '<a href="/admin/reports" aria-current="page">Reports</a>' in html
    text = text_of(html)
    want = expect(chain, key="associate")[chain.assoc["ann"]]
    table = html.split('id="by-associate"')[1].split("</table>")[0]
    ann_row = re.search(rf'<tr data-associate="{chain.assoc["ann"]}">(.*?)</tr>', table, re.S)
    assert ann_row, html
    cells = text_of(ann_row.group(1)).split()
    assert cells[:8] == ["Ann", "Lee", "Downtown", str(want.sent), str(want.delivered), str(want.replies),
                         str(want.tasks_done), f"{want.sales:g}"]
    assert "280.00 USD" in text_of(ann_row.group(1))  # 80.00 (s1 net of its refund) + 50.00 + 150.00
    assert "80.00 USD" in text_of(ann_row.group(1)) and "50% (1 of 2)" in text_of(ann_row.group(1))
    # Cross-store credit is explicit: Downtown's text, Harbor's sale, in a highlighted cell.
    cell = re.search(
        rf'<td class="num cross" data-from="{chain.loc["downtown"]}" data-to="{chain.loc["harbor"]}">(.*?)</td>',
        html, re.S)
    assert cell and "80.00 USD" in text_of(cell.group(1))
    assert "120.00 CAD" in text  # Montreal's sale from Harbor's automated text
    store = re.search(rf'<tr data-location="{chain.loc["downtown"]}">(.*?)</tr>', html, re.S)
    assert store
    store_text = text_of(store.group(1))
    assert "80.00 USD sold elsewhere" in store_text and "30.00 USD from other stores" in store_text
    # The leaderboard: Ann and Cat both on two points, Ann first on revenue.
    board = re.search(r'<table[^>]*id="leaderboard">(.*?)</table>', html, re.S)
    assert board and re.search(r"1\.\s*Ann Lee.*2\.\s*Cat Fox.*3\.\s*Bob Ray", text_of(board.group(1)))
    assert html.count("<svg") == 3  # revenue per currency (USD, CAD) and outreach vs sales
    assert 'role="img"' in html and "<script" not in html.split("<main>")[1]
    assert 'action="/admin/reports/settings"' in html
    for by in ("associate", "location", "leaderboard", "matrix"):
        assert f"/admin/reports.csv?from=2026-03-01&amp;to=2026-03-14&amp;model={LAST_TOUCH}&amp;by={by}" in html


async def test_defaults_and_bad_filters(panels: Callable[..., Any], rt: Runtime, chain: Chain,
                                        people: dict[str, str]) -> None:
    owner: Panel = await panels(people["owner"])
    resp = await owner.get("/admin/reports")
    assert resp.status_code == 200
    async with rt.db.session() as s:
        settings = await load_attribution_settings(s)
    today = utcnow().astimezone(ZoneInfo(settings.report_timezone)).date()
    assert f'name="from" value="{(today - timedelta(days=29)).isoformat()}"' in resp.text
    assert f'name="to" value="{today.isoformat()}"' in resp.text
    assert f'<option value="{settings.report_model}" selected>' in resp.text
    resp = await owner.get("/admin/reports?from=2026-03-14&to=2026-03-01&model=nope")
    assert resp.status_code == 200
    text = text_of(resp.text)
    assert "swapped" in text and "no attribution model “nope”" in text
    assert 'name="from" value="2026-03-01"' in resp.text
    resp = await owner.get("/admin/reports?from=yesterday")
    assert resp.status_code == 200 and "not a date" in resp.text


async def test_csv_exports(panels: Callable[..., Any], chain: Chain, people: dict[str, str]) -> None:
    owner: Panel = await panels(people["owner"])
    resp = await owner.get(f"/admin/reports.csv?by=associate&{PERIOD}&model={LAST_TOUCH}")
    assert resp.headers["content-disposition"] == (
        f'attachment; filename="clasp-associate-2026-03-01-2026-03-14-{LAST_TOUCH}.csv"')
    rows = {r["associate"]: r for r in _csv(resp)}
    want = expect(chain, key="associate")
    ann = want[chain.assoc["ann"]]
    assert rows["Ann Lee"]["sent"] == str(ann.sent) and rows["Ann Lee"]["attributed_sales"] == f"{ann.sales:g}"
    assert rows["Ann Lee"]["attributed_revenue_USD"] == _major(ann.revenue["USD"])
    assert rows["Ann Lee"]["cross_store_revenue_USD"] == _major(ann.cross_store_revenue["USD"])
    assert rows["Ann Lee"]["attributed_revenue_CAD"] == "0.00"
    assert rows["Ann Lee"]["repeat_client_rate"] == "0.5000"
    assert rows["No associate (automations)"]["attributed_revenue_CAD"] == _major(want[None].revenue["CAD"])
    assert set(rows) == {"Ann Lee", "Bob Ray", "Cat Fox", "Hal Hart", "No associate (automations)"}

    stores = {r["store"]: r for r in _csv(await owner.get(f"/admin/reports.csv?by=location&{PERIOD}"))}
    by_loc = expect(chain, key="location")
    assert stores["Downtown"]["attributed_revenue_USD"] == _major(by_loc[chain.loc["downtown"]].revenue["USD"])
    assert stores["Downtown"]["sold_at_other_stores_USD"] == "80.00"
    assert stores["Downtown"]["sales_here_from_other_stores_USD"] == "30.00"
    assert stores["Montreal"]["sales_here_from_other_stores_CAD"] == "120.00"

    board = _csv(await owner.get(f"/admin/reports.csv?by=leaderboard&{PERIOD}"))
    assert [(r["rank"], r["associate"], r["points"]) for r in board] == [
        ("1", "Ann Lee", "2"), ("2", "Cat Fox", "2"), ("3", "Bob Ray", "1")]

    matrix = _csv(await owner.get(f"/admin/reports.csv?by=matrix&{PERIOD}"))
    cross = {(r["outreach_store"], r["sale_store"]) for r in matrix if r["cross_store"] == "yes"}
    assert cross == {("Downtown", "Harbor"), ("Uptown", "Downtown"), ("Harbor", "Montreal")}
    assert (await owner.get("/admin/reports.csv?by=clients")).status_code == 404


async def test_manager_sees_their_store(panels: Callable[..., Any], chain: Chain, people: dict[str, str]) -> None:
    manager: Panel = await panels(people["manager"])
    resp = await manager.get(f"/admin/reports?{PERIOD}")
    assert resp.status_code == 200
    text = text_of(resp.text)
    assert "Ann Lee" in text and "Bob Ray" in text
    assert "Cat Fox" not in text and "Hal Hart" not in text and "No associate" not in text and "Montreal" not in text
    assert 'action="/admin/reports/settings"' not in resp.text
    rows = _csv(await manager.get(f"/admin/reports.csv?by=associate&{PERIOD}"))
    assert {r["associate"] for r in rows} == {"Ann Lee", "Bob Ray"}
    stores = _csv(await manager.get(f"/admin/reports.csv?by=location&{PERIOD}"))
    assert [r["store"] for r in stores] == ["Downtown"]
    matrix = _csv(await manager.get(f"/admin/reports.csv?by=matrix&{PERIOD}"))
    assert {(r["outreach_store"], r["sale_store"]) for r in matrix} == {
        ("Downtown", "Harbor"), ("Downtown", "Downtown"), ("Uptown", "Downtown")}
    assert (await manager.post("/admin/reports/settings", {"window_days": "7"})).status_code == 403


async def test_associate_sees_their_own(panels: Callable[..., Any], chain: Chain, people: dict[str, str]) -> None:
    ann: Panel = await panels(people["ann"])
    resp = await ann.get(f"/admin/reports?{PERIOD}")
    assert resp.status_code == 200
    assert '<a href="/admin/reports" aria-current="page">Reports</a>' in resp.text
    assert re.findall(r'<tr data-associate="([^"]+)">', resp.text) == [str(chain.assoc["ann"])] * 2  # board + table
    assert "Bob Ray" not in resp.text and "Cat Fox" not in resp.text
    rows = _csv(await ann.get(f"/admin/reports.csv?by=associate&{PERIOD}"))
    assert [r["associate"] for r in rows] == ["Ann Lee"]
    board = _csv(await ann.get(f"/admin/reports.csv?by=leaderboard&{PERIOD}"))
    assert [(r["associate"], r["points"]) for r in board] == [("Ann Lee", "2")]
    assert (await ann.post("/admin/reports/settings", {"window_days": "7"})).status_code == 403

    newbie: Panel = await panels(people["newbie"])
    resp = await newbie.get(f"/admin/reports?{PERIOD}")
    assert resp.status_code == 200
    assert "not linked to an associate" in text_of(resp.text)
    assert "<svg" not in resp.text and 'id="by-associate"' not in resp.text
    assert _csv(await newbie.get(f"/admin/reports.csv?by=associate&{PERIOD}")) == []


async def test_owner_saves_settings(panels: Callable[..., Any], rt: Runtime, chain: Chain,
                                    people: dict[str, str]) -> None:
    owner: Panel = await panels(people["owner"])
    await owner.get("/admin/reports")
    resp = await owner.post("/admin/reports/settings", {
        "window_days": "14", "report_model": LAST_TOUCH, "report_timezone": "America/Chicago",
        "from": "2026-03-01", "to": "2026-03-14", "model": LAST_TOUCH,
    })
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/admin/reports?from=2026-03-01&to=2026-03-14&model={LAST_TOUCH}"
    async with rt.db.session() as s:
        saved = await load_attribution_settings(s)
        entry = (await s.exec(select(AuditLog).where(col(AuditLog.action) == "attribution.settings"))).one()
    assert (saved.window_days, saved.report_timezone) == (14, "America/Chicago")
    assert saved.recompute_requested_at is not None  # a new window asks for every sale to be recomputed
    assert entry.actor == people["owner"] and entry.details["changed"]["window_days"] == [30, 14]
    page = await owner.get(resp.headers["location"])
    assert "recomputed" in page.text and "America/Chicago" in page.text

    bad = await owner.post("/admin/reports/settings", {
        "window_days": "0", "report_model": "nope", "report_timezone": "Mars/Olympus"})
    assert bad.status_code == 422
    text = text_of(bad.text)
    assert "greater than or equal to 1" in text and "unknown timezone" in text and "registered models" in text
    assert 'value="Mars/Olympus"' in bad.text
    # Without the CSRF token the form is refused.
    refused = await owner.client.post("/admin/reports/settings", data={"window_days": "9"}, follow_redirects=False)
    assert refused.status_code == 403
    async with rt.db.session() as s:
        assert (await load_attribution_settings(s)).window_days == 14


# ------------------------------------------------------------------------------------- the browser

FIRST = ["Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Grace", "Leo"]
LAST = ["Martin", "Nguyen", "Garcia", "Okafor", "Rossi", "Kowalski", "Haddad", "Silva", "Berg", "Tanaka"]


async def busy_month(rt: Runtime) -> str:
    """Thirty days of texts, replies, follow-ups and the sales they earned, across three stores."""
    rng = random.Random(11)
    now = utcnow()
    async with rt.db.transaction() as s:
        stores = [Location(name=n, timezone=z) for n, z in (
            ("Downtown", "America/New_York"), ("Uptown", "America/Chicago"), ("Harbor", "America/Los_Angeles"))]
        s.add_all(stores)
        await s.flush()
        staff = [Associate(location_id=stores[i % 3].id, first_name=f, last_name=last)
                 for i, (f, last) in enumerate([("Ann", "Lee"), ("Cat", "Fox"), ("Hal", "Hart"), ("Bob", "Ray"),
                                             ("Dana", "Wells"), ("Eli", "Moss")])]
        s.add_all(staff)
        await s.flush()
        clients = [Client(first_name=rng.choice(FIRST), last_name=rng.choice(LAST)) for _ in range(60)]
        s.add_all(clients)
        await s.flush()
        for client in clients[:25]:  # a past purchase: some credited clients are returning ones
            s.add(Sale(location_id=rng.choice(stores).id, client_id=client.id, status="completed", currency="USD",
                       total_minor=rng.randrange(10_000, 90_000),
                       occurred_at=now - timedelta(days=rng.randrange(60, 400))))
        for _ in range(320):
            who = rng.choice(staff)
            client = rng.choice(clients)
            at = now - timedelta(days=rng.randrange(30), hours=rng.randrange(24))
            text = Outreach(client_id=client.id, associate_id=who.id, location_id=who.location_id, state="delivered",
                            sent_at=at, delivered_at=at + timedelta(seconds=20), created_at=at)
            s.add(text)
            await s.flush()
            if rng.random() < 0.3:
                s.add(Outreach(client_id=client.id, associate_id=who.id, location_id=who.location_id,
                               direction="inbound", state="received", created_at=at + timedelta(hours=1)))
            if rng.random() < 0.2:
                s.add(Task(client_id=client.id, associate_id=who.id, location_id=who.location_id, kind="call",
                           title="Follow up", state="done", done_at=at + timedelta(hours=3)))
            if rng.random() < 0.22:
                sold_at = min(now - timedelta(minutes=5), at + timedelta(days=rng.randrange(4), hours=rng.randrange(9)))
                store = rng.choice(stores) if rng.random() < 0.3 else next(x for x in stores if x.id == who.location_id)
                total = rng.randrange(8_000, 260_000)
                sale = Sale(location_id=store.id, client_id=client.id, status="completed", currency="USD",
                            total_minor=total, occurred_at=sold_at)
                s.add(sale)
                await s.flush()
                s.add(Attribution(
                    sale_id=sale.id, model=LAST_TOUCH, touch=f"outreach:{text.id}", outreach_id=text.id,
                    client_id=client.id, associate_id=who.id, outreach_location_id=who.location_id,
                    sale_location_id=store.id, touch_at=text.delivered_at, sale_at=sold_at,
                    sale_day=sold_at.astimezone(ZoneInfo(store.timezone)).date(),
                    weight=1.0, revenue_minor=total, currency="USD",
                ))
        await create_user(s, email="owner@example.com", password=PASSWORD, name="Olive Owner", role="owner")
    return "owner@example.com"


@pytest.mark.browser
async def test_reports_page_in_the_browser(
    settings: Settings, db: Any, serve: Callable[..., ServedApp], browser: Any
) -> None:
    def build(url: str) -> Any:
        return create_app(runtime_with(settings.model_copy(update={"base_url": url})))

    clasp = serve(build)
    rt = runtime_with(settings)
    try:
        email = await busy_month(rt)
    finally:
        await rt.close()
    out = screenshot_dir()
    for label, viewport in SCREEN_SIZES.items():
        context = await browser.new_context(viewport=viewport, device_scale_factor=1)
        page = await context.new_page()
        await page.goto(clasp.url + "/admin/sign-in")
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(clasp.url + "/admin")
        reports = page.get_by_role("link", name="Reports")
        if not await reports.is_visible():  # on a phone it sits behind the navigation's "Menu"
            await page.locator("nav summary", has_text="Menu").click()
        await reports.click()
        await page.wait_for_url(re.compile(r".*/admin/reports$"))
        await page.wait_for_load_state("networkidle")
        assert await page.locator("svg[role=img]").count() == 2
        assert await page.locator("#leaderboard tbody tr").count() == 6
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"reports overflow by {overflow}px at {viewport['width']}px"
        path_png: Path = out / f"reports-{label}.png"
        assert len(await page.screenshot(path=str(path_png), full_page=True)) > 10_000
        # The period form is a plain GET: a shorter period reloads with it in the address (and per day).
        start = (date.today() - timedelta(days=6)).isoformat()
        await page.get_by_label("From").fill(start)
        await page.get_by_role("button", name="Show").click()
        await page.wait_for_url(re.compile(rf".*from={start}.*"))
        assert await page.locator("svg[role=img] rect[fill='#5b3cc4'] >> nth=0").count() == 1
        await context.close()
