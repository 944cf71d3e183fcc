"""The demo's orchestration (core.demo) against the real sandboxes served over real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func
from sqlmodel import col, select

from core import demo
from core.connectors import load_settings
from core.models import AppSetting, AuditLog, Connector, Location, Sale, SyncRun
from core.runtime import Runtime

# Small enough for seconds per backend, big enough for several pages of sales with refunds and walk-ins.
CHAIN = demo.ChainOptions(shops=2, clients=40, years=1, seed=11, sales_per_day=0.6, drip_rate=500.0)


class Served:
    """An ASGI app served by uvicorn on a real socket in a thread (the demo serves it in its loop)."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the sandbox did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(self.url + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=10)
        response.raise_for_status()
        return response.json()


@contextmanager
def sandboxes(rt: Runtime, *names: str) -> Iterator[dict[str, tuple[Served, demo.RunningSandbox]]]:
    served: dict[str, tuple[Served, demo.RunningSandbox]] = {}
    try:
        for name in names:
            sb = rt.registry.sandboxes[name]
            server = Served(demo.build_sandbox_app(rt, sb, CHAIN))
            served[name] = (server, demo.RunningSandbox(sb, server.url))
        yield served
    finally:
        for server, _ in served.values():
            server.stop()


async def _count(rt: Runtime, model: Any, *where: Any) -> int:
    async with rt.db.session() as session:
        return (await session.exec(select(func.count()).select_from(model).where(*where))).one()


async def test_setup_authorizes_for_real_and_the_backfill_matches_the_sandbox_truth(rt: Runtime) -> None:
    with sandboxes(rt, "lightspeed-r", "twilio") as served:
        ls, twilio = served["lightspeed-r"], served["twilio"]
        result = await demo.setup(rt, [ls[1], twilio[1]], chain=CHAIN)
        assert not result.skipped
        pos, sms = result.connector("lightspeed-r"), result.connector("twilio")
        assert pos is not None and sms is not None
        assert pos.created and pos.authorized and pos.ready, pos.message
        assert (pos.name, pos.kind, sms.name, sms.kind) == (
            "Lightspeed R (sandbox)", "pos", "Twilio (sandbox)", "messaging")

        # The tokens came from the sandbox's token endpoint and are stored encrypted, never in clear.
        assert ls[0].get("/_sandbox/stats")["oauth"]["issued"] == 1
        async with rt.db.session() as session:
            row = await session.get(Connector, pos.connector_id)
            assert row is not None
            settings = load_settings(rt, row)
            token = settings.access_token.get_secret_value()
            assert token and settings.refresh_token is not None
            assert "access_token" not in row.settings and "refresh_token" not in row.settings
            assert row.secrets and token not in row.secrets
            assert settings.api_base_url == ls[0].url and settings.history_years == CHAIN.years
            authorized = (await session.exec(select(AuditLog).where(
                col(AuditLog.action) == "connector.authorized",
                col(AuditLog.target_id) == str(pos.connector_id)))).all()
            assert len(authorized) == 1 and authorized[0].details["headless"] is True

        # Texts sent to the Twilio sandbox's number come back to this connector's webhook.
        inbound = demo.inbound_webhook_url(rt, sms)
        assert twilio[0].post("/_sandbox/config", {})["inbound_url"] == inbound
        assert inbound.endswith(f"/webhooks/twilio/{sms.connector_id}/inbound")

        progress: list[Any] = []
        run = await demo.sync_now(rt, pos.connector_id, on_progress=progress.append)
        assert run.status == "succeeded" and run.trigger == "demo"
        assert progress and progress[-1].progress == 1.0 and progress[-1].stream == "sales"
        assert progress[-1].records == run.records

        truth = ls[0].get("/_sandbox/truth")
        assert truth["sales"] > 100 and truth["refund_sales"] and truth["walk_ins"]
        assert await _count(rt, Sale) == truth["sales"]
        async with rt.db.session() as session:
            completed = (await session.exec(select(func.sum(Sale.total_minor)).where(
                col(Sale.status) == "completed"))).one()
        assert completed == truth["completed_total_minor"]
        assert await _count(rt, Sale, col(Sale.client_id).is_(None)) == truth["walk_ins"]
        assert await _count(rt, Location) == truth["shops"]

        # A second start is idempotent: same connectors, nothing re-authorized, the next run incremental.
        again = await demo.setup(rt, [ls[1], twilio[1]], chain=CHAIN)
        assert [(c.connector_id, c.created, c.authorized) for c in again.connectors] == [
            (pos.connector_id, False, False), (sms.connector_id, False, False)]
        assert await _count(rt, Connector) == 2
        before = ls[0].get("/_sandbox/stats")["requests"]
        incremental = await demo.sync_now(rt, pos.connector_id)
        assert incremental.status == "succeeded" and incremental.records < 20
        assert ls[0].get("/_sandbox/stats")["requests"] - before < 12  # a handful of pages, not a backfill
        assert await _count(rt, Sale) == truth["sales"]


async def test_a_new_shop_added_in_the_sandbox_appears_after_the_next_sync(rt: Runtime) -> None:
    with sandboxes(rt, "lightspeed-r") as served:
        server, running = served["lightspeed-r"]
        pos = (await demo.setup(rt, [running], chain=CHAIN)).connectors[0]
        await demo.sync_now(rt, pos.connector_id)
        assert await _count(rt, Location, col(Location.name) == "Maison Clasp Denver") == 0

        shop = server.post("/_sandbox/shops", {"name": "Maison Clasp Denver", "timeZone": "America/Denver",
                                                "city": "Denver"})
        run = await demo.sync_now(rt, pos.connector_id)  # the next incremental run; nothing configured
        assert run.status == "succeeded"
        async with rt.db.session() as session:
            location = (await session.exec(select(Location).where(col(Location.name) == "Maison Clasp Denver"))).one()
        assert location.timezone == "America/Denver"
        assert shop["shopID"] == 3 and await _count(rt, Location) == 3


async def test_a_sandbox_back_on_another_port_keeps_its_connector_and_resumes(rt: Runtime) -> None:
    """Sandboxes come back on new ports (and forget their OAuth grants) when the demo restarts."""
    sb = rt.registry.sandboxes["lightspeed-r"]
    first = Served(demo.build_sandbox_app(rt, sb, CHAIN))
    try:
        pos = (await demo.setup(rt, [demo.RunningSandbox(sb, first.url)], chain=CHAIN)).connectors[0]
        await demo.sync_now(rt, pos.connector_id)
        sales = await _count(rt, Sale)
    finally:
        first.stop()
    assert (await demo.remembered_ports(rt))["lightspeed-r"] == int(first.url.rsplit(":", 1)[1])

    second = Served(demo.build_sandbox_app(rt, sb, CHAIN))  # a fresh fake: same data, new grants, new port
    try:
        again = (await demo.setup(rt, [demo.RunningSandbox(sb, second.url)], chain=CHAIN)).connectors[0]
        assert again.connector_id == pos.connector_id and not again.created
        assert again.authorized and again.ready, again.message  # the old refresh token died with the old fake
        async with rt.db.session() as session:
            row = await session.get(Connector, pos.connector_id)
            assert row is not None and load_settings(rt, row).api_base_url == second.url
            state = await session.get(AppSetting, demo.SETTING_KEY)
            assert state is not None and state.value["sandboxes"]["lightspeed-r"]["url"] == second.url
        run = await demo.sync_now(rt, pos.connector_id)
        assert run.status == "succeeded" and not run.full
        assert await _count(rt, Sale) == sales
        assert await _count(rt, Connector) == 1
        assert await _count(rt, SyncRun, col(SyncRun.status) == "succeeded") == 2
    finally:
        second.stop()


async def test_sandboxes_without_a_connector_recipe_are_reported_not_guessed(rt: Runtime) -> None:
    from core.plugin import Sandbox

    stray = Sandbox(name="stray", app_factory=lambda: None, connector_type="no_such_type")
    result = await demo.setup(rt, [demo.RunningSandbox(stray, "http://127.0.0.1:9")])
    assert result.connectors == [] and result.skipped[0][0] == "stray"
    assert await _count(rt, Connector) == 0


@pytest.mark.parametrize("name, expected", [("lightspeed-r", "Lightspeed R (sandbox)"), ("twilio", "Twilio (sandbox)")])
def test_connector_names(name: str, expected: str) -> None:
    from core.plugin import Sandbox

    assert demo.connector_name(Sandbox(name=name, app_factory=dict)) == expected


async def test_the_demo_outreach_history_credits_sales_as_the_attribution_window_says(rt: Runtime) -> None:
    from datetime import timedelta

    from core.demo_outreach import generate_outreach_history
    from core.models import Attribution, Outreach, Task

    with sandboxes(rt, "lightspeed-r") as served:
        ls = served["lightspeed-r"]
        result = await demo.setup(rt, [ls[1]], chain=CHAIN)
        pos = result.connector("lightspeed-r")
        assert pos is not None and pos.ready
        await demo.sync_now(rt, pos.connector_id)
    history = await generate_outreach_history(rt, seed=CHAIN.seed)
    assert history.texts and history.tasks and history.replies and history.credited
    assert (await generate_outreach_history(rt, seed=CHAIN.seed)).skipped  # written once

    # Recompute last touch independently from the rows: the latest delivered text or done call/text
    # task to the sale's client within 30 days before it, from any store.
    async with rt.db.session() as s:
        sales = (await s.exec(select(Sale).where(col(Sale.status) == "completed",
                                                 col(Sale.client_id).is_not(None)))).all()
        texts = (await s.exec(select(Outreach).where(col(Outreach.direction) == "outbound",
                                                     col(Outreach.state) == "delivered"))).all()
        tasks = (await s.exec(select(Task).where(col(Task.state) == "done"))).all()
        credits = (await s.exec(select(Attribution).where(col(Attribution.model) == "last_touch"))).all()
    touches = [(t.client_id, t.delivered_at, f"outreach:{t.id}", t.location_id) for t in texts]
    touches += [(t.client_id, t.done_at, f"task:{t.id}", t.location_id) for t in tasks if t.kind in ("call", "text")]
    expected: dict[int, str] = {}
    cross_store = 0
    for sale in sales:
        window = [t for t in touches
                  if t[0] == sale.client_id and sale.occurred_at - timedelta(days=30) <= t[1] <= sale.occurred_at]
        if window:
            latest = max(window, key=lambda t: t[1])
            expected[sale.id] = latest[2]  # type: ignore[index]
            cross_store += latest[3] != sale.location_id
    got = {c.sale_id: c.touch for c in credits}
    # Sales fully refunded earn nothing: the only difference allowed, and each must be one.
    for sale_id in set(expected) - set(got):
        async with rt.db.session() as s:
            from core.attribution.engine import net_revenue

            assert (await net_revenue(await s.connection(), [sale_id])).get(sale_id, 0) <= 0
    assert {k: v for k, v in expected.items() if k in got} == got
    assert len(got) == history.credited and cross_store > 0
