"""Screenshots of the dashboard and connector pages at desktop and phone widths, on demo-like data.

They land in test-artifacts/screens/; with ``CLASP_TEST_SCREENSHOTS=1`` they refresh docs/screenshots/.
The test also checks that a phone gets a layout without sideways scrolling.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.models import Associate, Client, Connector, Location, Sale, SyncError, SyncRun, utcnow
from core.runtime import Runtime
from core.settings import Settings
from core.web import create_app
from tests.admin.conftest import PASSWORD, SCREEN_SIZES, ServedApp, build_org, runtime_with, screenshot_dir

pytestmark = pytest.mark.browser

FIRST = ["Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Grace", "Leo"]
LAST = ["Martin", "Nguyen", "Garcia", "Okafor", "Rossi", "Kowalski", "Haddad", "Silva", "Berg", "Tanaka"]


async def demo_data(rt: Runtime) -> dict[str, int]:
    org = await build_org(rt)
    now = utcnow()
    rng = random.Random(7)
    async with rt.db.transaction() as s:
        downtown = await s.get(Location, org.locations["downtown"])
        assoc = Associate(location_id=downtown.id, first_name="Dana", last_name="Wells")  # type: ignore[union-attr]
        s.add(assoc)
        await s.flush()
        for i in range(140):
            client = Client(
                first_name=rng.choice(FIRST),
                last_name=rng.choice(LAST),
                home_location_id=rng.choice(list(org.locations.values())),
                owner_associate_id=assoc.id if i % 3 == 0 else None,
            )
            s.add(client)
            await s.flush()
            if i % 2 == 0:
                s.add(
                    Sale(
                        location_id=client.home_location_id,
                        client_id=client.id,
                        status="completed",
                        currency="USD",
                        total_minor=rng.randrange(20_000, 900_000),
                        occurred_at=now - timedelta(days=rng.randrange(400)),
                    )
                )
        existing = await s.get(Connector, org.connector_id)
        existing.name, existing.state, existing.last_success_at = (
            "Downtown Lightspeed",
            "ok",
            now - timedelta(minutes=3),
        )  # type: ignore[union-attr]
        uptown = Connector(
            type="lightspeed_r",
            kind="pos",
            name="Uptown Lightspeed",
            state="ok",
            last_success_at=now - timedelta(hours=6),
            settings={"poll_interval_seconds": 300},
        )
        harbor = Connector(
            type="lightspeed_x",
            kind="pos",
            name="Harbor Lightspeed",
            state="needs_auth",
            state_message="refresh token revoked",
            last_success_at=now - timedelta(days=1, hours=3),
        )
        texting = Connector(type="twilio", kind="messaging", name="Store texting", state="ok")
        crm = Connector(
            type="salesforce", kind="crm", name="Salesforce", state="ok", last_success_at=now - timedelta(minutes=9)
        )
        s.add_all([uptown, harbor, texting, crm])
        await s.flush()
        runs = [
            SyncRun(
                connector_id=existing.id,
                status="succeeded",
                records=214,
                pages=3,
                trigger="schedule",  # type: ignore[union-attr]
                started_at=now - timedelta(minutes=4),
                finished_at=now - timedelta(minutes=3),
            ),
            SyncRun(
                connector_id=uptown.id,
                status="running",
                full=True,
                records=18_450,
                pages=185,
                progress=0.62,
                stream="sales",
                trigger="panel",
                started_at=now - timedelta(minutes=12),
                heartbeat_at=now,
            ),
            SyncRun(
                connector_id=harbor.id,
                status="failed",
                records=0,
                trigger="schedule",
                message="401 from Lightspeed: refresh token revoked",
                started_at=now - timedelta(minutes=30),
                finished_at=now - timedelta(minutes=30),
            ),
            SyncRun(
                connector_id=crm.id,
                status="succeeded",
                records=37,
                pages=1,
                trigger="schedule",
                started_at=now - timedelta(minutes=10),
                finished_at=now - timedelta(minutes=9),
            ),
            SyncRun(
                connector_id=existing.id,
                status="succeeded",
                records=1_204,
                pages=13,
                trigger="schedule",  # type: ignore[union-attr]
                started_at=now - timedelta(hours=1),
                finished_at=now - timedelta(minutes=58),
            ),
        ]
        s.add_all(runs)
        for i in range(4):
            s.add(
                SyncError(
                    connector_id=harbor.id,
                    stream="customers",
                    external_id=f"C-10{i}",
                    reason="phone +1 555 0100 is not a valid number",
                )
            )
    return {"uptown": uptown.id, "downtown": org.connector_id, "owner_email": org.users["owner"]}  # type: ignore[dict-item]


async def test_dashboard_and_connector_screenshots(
    settings: Settings, db: Any, serve: Callable[..., ServedApp], browser: Any
) -> None:
    def build(url: str) -> Any:
        return create_app(runtime_with(settings.model_copy(update={"base_url": url})))

    clasp = serve(build)
    rt = runtime_with(settings)
    try:
        ids = await demo_data(rt)
    finally:
        await rt.close()
    out = screenshot_dir()
    pages = {
        "dashboard": "/admin",
        "connectors": "/admin/connectors",
        "connector": f"/admin/connectors/{ids['uptown']}",
    }
    for label, viewport in SCREEN_SIZES.items():
        context = await browser.new_context(viewport=viewport, device_scale_factor=1)
        page = await context.new_page()
        await page.goto(clasp.url + "/admin/sign-in")
        await page.get_by_label("Email").fill(str(ids["owner_email"]))
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(clasp.url + "/admin")
        for name, path in pages.items():
            await page.goto(clasp.url + path)
            await page.wait_for_load_state("networkidle")
            # Nothing may force a phone to scroll sideways.
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} overflows by {overflow}px at {viewport['width']}px"
            path_png: Path = out / f"{name}-{label}.png"
            assert len(await page.screenshot(path=str(path_png), full_page=True)) > 10_000
        await context.close()
