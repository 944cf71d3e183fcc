"""An associate's day on the demo chain, end to end, as people do it.

``clasp demo`` runs for real (web app, worker, Lightspeed R and Twilio sandboxes, embedded Redis) on
the test's database. The owner creates an associate with the CLI, linked to a POS employee; the
associate signs in to headless Chromium at phone size, sees their book, opens one of their clients,
records the in-store opt-in the client just gave, and the birthday automation then texts that client
through the Twilio sandbox. The profile shows the client's purchases with product names and images,
and a Today task's prefilled text, once sent, completes the task.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import func, text
from sqlmodel import col, select

from core.db import Database
from core.models import Associate, Client, ClientContact, Connector, ExternalRef, Location, Outreach, SyncRun, Task
from core.outreach.consent import current_consent
from core.timezones import zone

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
OWNER_PASSWORD = "demo-password-123"
ASSOCIATE_EMAIL = "associate@clasp.local"
ASSOCIATE_PASSWORD = "associate-password-123"
PHONE = {"width": 390, "height": 844}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Demo:
    url: str
    twilio: str
    db: Database
    log: Path

    def clasp(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """The ``clasp`` command line against the demo's database, as its owner would type it."""
        return subprocess.run(
            [sys.executable, "-m", "core.cli", *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
            timeout=120, env=os.environ.copy(),
        )


def _tail_all(log: Path) -> str:
    return log.read_text()


def _tail(log: Path) -> str:
    return log.read_text()[-4000:]


async def _wait(
    what: str, proc: subprocess.Popen[str], log: Path, check: Callable[[], Any], limit: float = 120.0
) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"clasp demo exited while waiting for {what}:\n{_tail(log)}")
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{_tail(log)}")


@pytest.fixture
async def demo(db: Database, browser: Any, tmp_path: Path) -> AsyncIterator[Demo]:
    """``clasp demo`` on a small chain, backfilled, with the worker having assigned owners."""
    port = _free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 (starting a process does not block; waiting is polled)
            [sys.executable, "-m", "core.cli", "demo", "--port", str(port), "--shops", "2", "--clients", "80",
             "--years", "1", "--sales-per-day", "1.5", "--drip-rate", "500"],
            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            env={**os.environ, "CLASP_DEMO_PASSWORD": OWNER_PASSWORD},
        )
    try:
        async def synced() -> bool:
            async with db.session() as session:
                run = (await session.exec(
                    select(SyncRun).join(Connector, col(Connector.id) == SyncRun.connector_id)
                    .where(col(Connector.type) == "lightspeed_r", col(SyncRun.status) == "succeeded"))).first()
                owned = (await session.exec(
                    select(func.count()).select_from(Client).where(col(Client.owner_associate_id).is_not(None))
                )).one()
            return run is not None and owned > 0

        await _wait("the backfill and the owner rule", proc, log, synced, limit=240)

        def sandbox_url() -> str | None:
            found = re.search(r"sandbox:\s+twilio at (http://\S+)", _tail_all(log))
            return found.group(1) if found else None

        async def twilio() -> str | None:
            return sandbox_url()

        twilio_url = await _wait("the Twilio sandbox", proc, log, twilio)
        yield Demo(url=f"http://127.0.0.1:{port}", twilio=twilio_url, db=db, log=log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


async def _sign_in(page: Page, demo: Demo, email: str, password: str, then: str = "/admin") -> None:
    await page.goto(demo.url + then)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(demo.url + then)


async def _no_sideways_scroll(page: Page) -> None:
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url} scrolls sideways at {width[1]} px: {width[0]} px wide"


async def _busiest_associate(db: Database) -> tuple[Associate, str, Location]:
    """The POS employee owning the most clients with a textable mobile, their POS id and store."""
    async with db.session() as session:
        mobile = (
            select(ClientContact.client_id)
            .where(col(ClientContact.kind) == "phone", col(ClientContact.unusable).is_(False))
        )
        row = (await session.exec(
            select(Client.owner_associate_id, func.count())
            .where(col(Client.owner_associate_id).is_not(None), col(Client.merged_into_id).is_(None),
                   col(Client.id).in_(mobile))
            .group_by(col(Client.owner_associate_id)).order_by(func.count().desc()).limit(1)
        )).one()
        associate = await session.get(Associate, row[0])
        assert associate is not None and associate.location_id is not None
        ext = (await session.exec(
            select(ExternalRef.external_id)
            .where(col(ExternalRef.object_type) == "associate", col(ExternalRef.unified_id) == associate.id)
        )).one()
        location = await session.get(Location, associate.location_id)
        assert location is not None
    return associate, ext, location


async def test_an_associate_created_by_the_cli_works_their_day(demo: Demo, browser: Any) -> None:
    associate, external_id, store = await _busiest_associate(demo.db)

    # The owner adds the associate from the command line, linked to their POS employee record.
    added = demo.clasp("user", "add", ASSOCIATE_EMAIL, "--role", "associate", "--associate", external_id,
                       "--name", f"{associate.first_name} {associate.last_name}", "--password-stdin",
                       stdin=ASSOCIATE_PASSWORD + "\n")
    assert added.returncode == 0, added.stderr

    context = await browser.new_context(viewport=PHONE)
    context.set_default_timeout(20_000)
    page = await context.new_page()
    try:
        await _sign_in(page, demo, ASSOCIATE_EMAIL, ASSOCIATE_PASSWORD, then="/admin/clients")

        # Their book: the clients the POS says they serve, nobody else's.
        async with demo.db.session() as session:
            book = (await session.exec(
                select(Client)
                .join(ClientContact, col(ClientContact.client_id) == col(Client.id))
                .where(col(Client.owner_associate_id) == associate.id, col(Client.merged_into_id).is_(None),
                       col(ClientContact.kind) == "phone", col(ClientContact.unusable).is_(False))
                .order_by(col(Client.id))
            )).all()
            other = (await session.exec(
                select(Client).where(col(Client.owner_associate_id) != associate.id,
                                     col(Client.home_location_id) != store.id).limit(1)
            )).first()
            # Someone who has not agreed to marketing texts yet: without the in-store opt-in below,
            # the birthday text would be skipped.
            waiting = [c for c in book if await current_consent(session, c.id, "sms") != "opted_in"]  # type: ignore[arg-type]
        assert waiting, "the busiest associate owns clients with a mobile and no text opt-in"
        client = waiting[0]
        name = f"{client.first_name} {client.last_name}".strip()
        await page.get_by_role("searchbox").fill(client.last_name)
        await page.get_by_role("button", name="Search").click()
        await expect(page.get_by_role("link", name=name).first).to_be_visible()
        await _no_sideways_scroll(page)
        if other is not None:
            response = await page.goto(f"{demo.url}/admin/clients/{other.id}")
            assert response is not None and response.status == 404

        # The profile: purchases with product names and their images, loaded for real.
        await page.goto(f"{demo.url}/admin/clients/{client.id}")
        await expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
        await _no_sideways_scroll(page)
        purchases = page.locator("section.purchases")
        async with demo.db.session() as session:
            product_names = (await session.exec(text(
                "SELECT DISTINCT p.name FROM sale s JOIN sale_line l ON l.sale_id = s.id"
                " JOIN product p ON p.id = l.product_id WHERE s.client_id = :c AND p.name <> ''"
            ), params={"c": client.id})).all()  # type: ignore[call-overload]
        assert product_names, "the client has bought named pieces"
        await expect(purchases.get_by_text(product_names[0][0]).first).to_be_visible()
        images = purchases.locator("img")
        await expect(images.first).to_be_visible()
        await images.first.scroll_into_view_if_needed()
        loaded = await images.first.evaluate(
            "img => (img.complete && img.naturalWidth > 0) || new Promise(done => {"
            " img.addEventListener('load', () => done(img.naturalWidth > 0));"
            " img.addEventListener('error', () => done(false)); })"
        )
        assert loaded, "the product thumbnail did not load"

        # The client says yes to texts in the store: the associate records it with the wording shown.
        consent = page.locator("#consent-card")
        await consent.get_by_text("Record what the client said in store").click()
        await expect(consent.get_by_label("Channel")).to_have_value("sms")
        await consent.get_by_label("agreed (opt-in)").check()
        wording = await consent.get_by_label("Exact wording shown to the client").input_value()
        assert wording.strip(), "the standard wording is prefilled"
        await consent.get_by_role("button", name="Record").click()
        texts = page.locator("#consent-card li.consent-line[data-channel='sms'][data-purpose='marketing']")
        await expect(texts).to_have_attribute("data-status", "opted_in")
        await expect(texts.get_by_text(wording.strip()[:40], exact=False)).to_be_visible()
        await _no_sideways_scroll(page)

        # Today is their birthday in the store's timezone, all day the store may text.
        today = datetime.now(zone(store.timezone)).date()
        async with demo.db.transaction() as session:
            c = await session.get(Client, client.id)
            assert c is not None
            c.birthday = today.replace(year=1985) if not (today.month == 2 and today.day == 29) else today
            session.add(c)
            loc = await session.get(Location, store.id)
            assert loc is not None
            loc.quiet_hours_start, loc.quiet_hours_end = "00:00", "23:59"
            session.add(loc)

        configured = demo.clasp("automations", "configure", "birthday", "--action", "send",
                                "--set", "send_time=00:00", "--set", "catch_up_hours=24")
        assert configured.returncode == 0, configured.stderr
        enabled = demo.clasp("automations", "enable", "birthday")
        assert enabled.returncode == 0, enabled.stderr
        ran = demo.clasp("automations", "run", "--name", "birthday")
        assert ran.returncode == 0, ran.stderr

        async def texted() -> dict[str, Any] | None:
            async with httpx.AsyncClient(timeout=5) as http:
                messages = (await http.get(demo.twilio + "/_sandbox/messages")).json()
            rows = messages if isinstance(messages, list) else messages.get("messages", [])
            return next((m for m in rows if client.first_name in m.get("body", "")
                         and "birthday" in m.get("body", "").lower()), None)

        deadline = time.monotonic() + 60
        message = None
        while message is None and time.monotonic() < deadline:
            message = await texted()
            if message is None:
                await asyncio.sleep(0.5)
        assert message is not None, "the birthday text never reached the Twilio sandbox"
        async with demo.db.session() as session:
            sent = (await session.exec(
                select(Outreach).where(col(Outreach.client_id) == client.id,
                                       col(Outreach.occasion_key).like("%birthday%"))
            )).one()
        assert sent.state in ("sent", "delivered"), (sent.state, sent.state_reason)

        # A Today task whose prefilled text, once sent, completes it.
        second = next((c for c in book if c.id != client.id), client)
        async with demo.db.transaction() as session:
            task = Task(client_id=second.id, associate_id=associate.id, location_id=store.id, kind="text",
                        title=f"Follow up with {second.first_name}",
                        body=f"Hi {second.first_name}, your piece is ready.")
            session.add(task)
            await session.flush()
            task_id = task.id
        await page.goto(f"{demo.url}/admin/today")
        card = page.locator(f"[data-task-id='{task_id}']")
        await expect(card).to_be_visible()
        await _no_sideways_scroll(page)
        await card.get_by_role("link", name=re.compile("^Text", re.I)).click()
        await page.get_by_role("button", name=re.compile("^Send", re.I)).click()

        async def done() -> bool:
            async with demo.db.session() as session:
                row = await session.get(Task, task_id)
                return row is not None and row.state == "done"

        deadline = time.monotonic() + 20
        while not await done():
            assert time.monotonic() < deadline, "sending the prefilled text did not complete the task"
            await asyncio.sleep(0.3)
    finally:
        await context.close()
