"""Dashboard health and alerts, the audit page, and what other plugins contribute to the panel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from core.models import AuditLog, ChangeFeed, Connector, FeedConsumer, SyncError, SyncRun, utcnow
from core.runtime import Runtime
from core.settings import Settings
from core.web import create_app
from tests.admin import fakeshop
from tests.admin.conftest import Org, Panel, build_org, http_client, runtime_with, text_of


async def add_runs(rt: Runtime) -> dict[str, int]:
    now = utcnow()
    async with rt.db.transaction() as s:
        healthy = Connector(type="lightspeed_r", kind="pos", name="Uptown POS", state="ok", last_success_at=now)
        failing = Connector(
            type="lightspeed_x",
            kind="pos",
            name="Harbor POS",
            state="error",
            state_message="401 Unauthorized from Lightspeed",
            last_success_at=now - timedelta(days=2),
        )
        s.add_all([healthy, failing])
        await s.flush()
        s.add(
            SyncRun(
                connector_id=healthy.id,
                status="succeeded",
                records=1234,
                pages=13,
                trigger="schedule",
                started_at=now - timedelta(minutes=5),
                finished_at=now - timedelta(minutes=4),
            )
        )
        s.add(
            SyncRun(
                connector_id=failing.id,
                status="failed",
                message="token expired",
                trigger="schedule",
                started_at=now - timedelta(hours=1),
                finished_at=now - timedelta(hours=1),
            )
        )
        s.add(
            SyncRun(
                connector_id=healthy.id,
                status="running",
                full=True,
                records=420,
                pages=5,
                progress=0.42,
                stream="sales",
                started_at=now - timedelta(minutes=1),
                heartbeat_at=now,
            )
        )
        for i in range(3):
            s.add(SyncError(connector_id=failing.id, stream="customers", external_id=f"x{i}", reason="bad phone"))
            s.add(ChangeFeed(entity="client", entity_id=i + 1, op="update", origin="user:1"))
        s.add(FeedConsumer(name=f"writeback:{failing.id}", position=0))
    return {"healthy": healthy.id, "failing": failing.id}  # type: ignore[dict-item]


async def test_dashboard_shows_health_runs_and_alerts(rt: Runtime, panels: Any, org: Org) -> None:
    ids = await add_runs(rt)
    owner = await panels(org.users["owner"])
    page = text_of((await owner.get("/admin")).text)
    assert "Connector error: 401 Unauthorized from Lightspeed" in page
    assert "Last sync failed: token expired" in page
    assert "3 record(s) in the error queue." in page
    assert "No successful sync for a while" in page
    assert "Uptown POS" in page and "1,234" in page  # the finished run's records while the backfill runs
    assert "running" in page and "backfill" in page
    status = text_of((await owner.get(f"/admin/connectors/{ids['healthy']}/status")).text)
    assert "Backfill running" in status and "42%" in status and "420 records" in status and "5 pages" in status
    failing = text_of((await owner.get(f"/admin/connectors/{ids['failing']}")).text)
    assert "bad phone" in failing and "Open errors 3" in failing
    assert "Writeback backlog 3 changes" in failing
    # Associates see their book, not the connector health.
    ann = text_of((await (await panels(org.users["ann"])).get("/admin")).text)
    assert "Connector health" not in ann and "clients you can see" in ann


async def test_empty_states(panels: Any, org: Org, rt: Runtime) -> None:
    owner = await panels(org.users["owner"])
    async with rt.db.transaction() as s:
        await s.delete(await s.get(Connector, org.connector_id))
    assert "No connectors yet" in text_of((await owner.get("/admin")).text)
    assert "No connectors configured" in text_of((await owner.get("/admin/connectors")).text)
    assert "No client matches “zzz”" in text_of((await owner.get("/admin/clients?q=zzz")).text)


async def test_audit_page_filters_and_paginates(rt: Runtime, panels: Any, org: Org) -> None:
    async with rt.db.transaction() as s:
        for i in range(60):
            s.add(
                AuditLog(
                    action="connector.sync",
                    actor="robot",
                    target_type="connector",
                    target_id=str(i),
                    at=utcnow() - timedelta(minutes=i),
                )
            )
    owner = await panels(org.users["owner"])
    first = text_of((await owner.get("/admin/audit?action=connector.sync")).text)
    assert "60 entries" in first and "Page 1 of 2" in first and "connector 0 " in first and "connector 59" not in first
    second = text_of((await owner.get("/admin/audit?action=connector.sync&page=2")).text)
    assert "connector 59" in second and "Page 2 of 2" in second
    sign_ins = text_of((await owner.get("/admin/audit?action=auth.sign_in")).text)
    assert (
        "1 entry" in sign_ins
        and "owner@example.com" in sign_ins
        and "connector.sync" not in sign_ins.split("Filter")[1]
    )


@pytest.fixture
async def shop_rt(settings: Settings, db: Any) -> AsyncIterator[Runtime]:
    runtime = runtime_with(settings, fakeshop)
    yield runtime
    if runtime.redis is not None:
        await runtime.redis.aclose()
    await runtime.close()


async def test_plugin_nav_items_pages_and_client_panels(shop_rt: Runtime) -> None:
    org = await build_org(shop_rt)
    app = create_app(shop_rt)
    async with http_client(app) as a, http_client(app) as b:
        owner, ann = Panel(a), Panel(b)
        await owner.sign_in(org.users["owner"])
        await ann.sign_in(org.users["ann"])
        assert 'href="/admin/fakeshop-report"' in (await owner.get("/admin")).text
        assert 'href="/admin/fakeshop-report"' not in (await ann.get("/admin")).text  # nav filtered by role
        assert "FakeShop report" in (await owner.get("/admin/fakeshop-report")).text
        client_page = (await ann.get(f"/admin/clients/{org.clients['ann_client']}")).text
        assert "Loyalty tier for Ada: gold" in client_page
        assert "This panel could not be shown" in client_page  # a broken plugin panel does not break the page
        crash = await owner.get("/admin/fakeshop-crash")
        assert crash.status_code == 500 and "Something went wrong on our side" in crash.text
        assert 'href="/admin/clients"' in crash.text and "boom" not in crash.text  # the layout, no internals
        # Plugin pages sit behind the panel's sign-in like every other page.
        async with http_client(app) as anonymous:
            resp = await anonymous.get("/admin/fakeshop-report")
        assert resp.status_code == 302 and resp.headers["location"].startswith("/admin/sign-in")
