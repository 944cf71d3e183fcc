"""Attribution on the real database: sales and refunds arrive through a real sync (the test POS over
HTTP), touches are the rows the outbox, the inbound webhook and the Today page leave behind (with the
feed row those paths append), and credit comes from the attribution consumer reading the feed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from core.attribution.jobs import consume_feed, recompute, recompute_all
from core.attribution.settings import load_attribution_settings, save_attribution_settings
from core.attribution.touches import touch_changed
from core.errors import list_errors, replay_error
from core.identity import merge_clients, unmerge
from core.models import Attribution, ExternalRef, Outreach, Task
from core.plugin import AttributionModel, Credit, SaleFacts, Touch, hookimpl
from core.plugins import load_plugins
from core.runtime import Runtime, create_runtime
from core.settings import Settings
from core.sync import SyncOptions, run_sync
from tests.testpos import plugin as testpos_plugin
from tests.testpos.fake import FakePOS, iso
from tests.testpos.fixtures import add_testpos

FAST = SyncOptions(retry_base_delay=0.01, retry_max_delay=0.05)
# Sales happen at this moment unless a test says otherwise: recent enough for the backfill window.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)


class Chain:
    """Two shops (New York, Chicago), an associate in each, two clients; ids as Clasp stored them."""

    def __init__(self, rt: Runtime, pos: FakePOS, connector_id: int) -> None:
        self.rt, self.pos, self.connector_id = rt, pos, connector_id
        self.ids: dict[tuple[str, str], int] = {}
        self.line_no = 0

    async def sync(self) -> None:
        run = await run_sync(self.rt, self.connector_id, options=FAST)
        assert run.status == "succeeded", run.error
        async with self.rt.db.session() as s:
            rows = (await s.exec(select(ExternalRef).where(ExternalRef.connector_id == self.connector_id))).all()
        self.ids = {(r.object_type, r.external_id): r.unified_id for r in rows}

    def id(self, kind: str, ext: str) -> int:
        return self.ids[(kind, ext)]

    def sale(self, ext: str, *, customer: str | None, shop: str, at: datetime, amount: str = "1000.00",
             tax: str = "0.00", refund_of: str | None = None, status: str = "completed") -> str:
        """Ring up a sale at the till; ``refund_of`` makes it return that line. Returns its line id."""
        self.line_no += 1
        line = f"L{self.line_no}"
        sign = "-" if refund_of else ""
        total = f"{float(amount) + float(tax):.2f}"
        self.pos.put("sales", {
            "id": ext, "shop_id": shop, "employee_id": "E1" if shop == "S1" else "E2", "customer_id": customer,
            "status": status, "currency": "USD", "subtotal": f"{sign}{amount}", "tax": f"{sign}{tax}",
            "total": f"{sign}{total}", "completed_at": iso(at),
            "lines": [{"id": line, "item_id": "I1", "sku": "SKU-1", "description": "Ring",
                       "qty": -1 if refund_of else 1, "unit_price": amount, "total": f"{sign}{total}",
                       "refund_of": refund_of}],
        })
        return line


@pytest.fixture
async def chain(settings: Settings, db: Any, fake_pos: FakePOS) -> Any:
    rt = create_runtime(settings, plugins=load_plugins(settings, extra=[testpos_plugin]))
    assert set(rt.registry.attribution_models) >= {"last_touch", "engagement_weighted"}
    pos = fake_pos
    pos.put("shops", {"id": "S1", "name": "Fifth Avenue", "tz": "America/New_York", "currency": "USD", "country": "US"})
    pos.put("shops", {"id": "S2", "name": "Oak Brook", "tz": "America/Chicago", "currency": "USD", "country": "US"})
    for emp, shop in (("E1", "S1"), ("E2", "S2")):
        pos.put("employees", {"id": emp, "first": emp, "last": "Staff", "email": f"{emp.lower()}@shop.test",
                              "shop_id": shop, "active": True})
    for cust, shop, first in (("C1", "S1", "Ada"), ("C2", "S2", "Grace"), ("C3", "S2", "Ada")):
        pos.put("customers", {"id": cust, "first_name": first, "last_name": "Client",
                              "emails": [{"address": f"{cust.lower()}@example.com", "primary": True}],
                              "phones": [], "dob": None, "shop_id": shop, "note": None})
    pos.put("items", {"id": "I1", "sku": "SKU-1", "description": "Ring", "brand": "Maison", "category": "rings",
                      "price": "1000.00", "currency": "USD", "images": [], "archived": False})
    c = Chain(rt, pos, await add_testpos(rt, pos))
    await c.sync()
    yield c
    await rt.close()


# ------------------------------------------------------------------------- touches as Clasp records them


async def text(c: Chain, client: str, emp: str, shop: str, delivered: datetime) -> int:
    """A text the outbox sent and the provider reported delivered (with the feed row that path appends)."""
    async with c.rt.db.transaction() as s:
        row = Outreach(client_id=c.id("client", client), associate_id=c.id("associate", emp),
                       location_id=c.id("location", shop), direction="outbound", channel="sms", state="delivered",
                       body="Hello from the store", to_address="+12125550100", due_at=delivered - timedelta(minutes=1),
                       sent_at=delivered - timedelta(seconds=5), delivered_at=delivered,
                       provider_id=f"SM{delivered.timestamp():.0f}{client}")
        s.add(row)
        await s.flush()
        await touch_changed(s, entity="outreach", entity_id=row.id, client_id=row.client_id, at=delivered,
                            state="delivered", origin="connector:9")
        return row.id  # type: ignore[return-value]


async def reply(c: Chain, client: str, at: datetime) -> None:
    async with c.rt.db.transaction() as s:
        row = Outreach(client_id=c.id("client", client), direction="inbound", channel="sms", state="received",
                       kind="transactional", body="Yes please!", from_address="+12125550100", due_at=at, sent_at=at,
                       created_at=at)
        s.add(row)
        await s.flush()
        await touch_changed(s, entity="outreach", entity_id=row.id, client_id=row.client_id, at=at,
                            state="received", origin="connector:9")


async def call_done(c: Chain, client: str, emp: str, shop: str, at: datetime, kind: str = "call") -> int:
    async with c.rt.db.transaction() as s:
        task = Task(client_id=c.id("client", client), associate_id=c.id("associate", emp),
                    location_id=c.id("location", shop), kind=kind, title="Call about the ring", state="done",
                    due_at=at - timedelta(hours=2), done_at=at)
        s.add(task)
        await s.flush()
        await touch_changed(s, entity="task", entity_id=task.id, client_id=task.client_id, at=at, state="done",
                            origin="maya@shop.test")
        return task.id  # type: ignore[return-value]


async def catch_up(c: Chain) -> None:
    """Run the attribution consumer until it has read the whole feed (no ingest is running)."""
    for _ in range(20):
        done = await consume_feed(c.rt, settle=timedelta(0))
        if not done["rows"] and not done["full_pass"]:
            return
    raise AssertionError("the attribution consumer never caught up")


async def attribution_errors(rt: Runtime) -> list[Any]:
    async with rt.db.session() as s:
        return [e for e in await list_errors(s) if e.stage == "attribution"]


async def credits(c: Chain, model: str = "last_touch", sale: str | None = None) -> list[Attribution]:
    stmt = (select(Attribution).where(Attribution.model == model)
            .order_by(col(Attribution.sale_id), col(Attribution.touch)))
    if sale is not None:
        stmt = stmt.where(Attribution.sale_id == c.id("sale", sale))
    async with c.rt.db.session() as s:
        return list((await s.exec(stmt)).all())


def touches(rows: Sequence[Attribution]) -> list[str]:
    return [r.touch for r in rows]


# ---------------------------------------------------------------------------------------------- tests


async def test_cross_store_credit(chain: Chain) -> None:
    """The New York associate texts a client who then buys in Chicago: the sale credits that text."""
    oid = await text(chain, "C1", "E1", "S1", T0 - timedelta(days=3))
    chain.sale("T1", customer="C1", shop="S2", at=T0, amount="1000.00", tax="80.00")
    await chain.sync()
    await catch_up(chain)

    [credit] = await credits(chain, sale="T1")
    assert credit.touch == f"outreach:{oid}" and credit.outreach_id == oid and credit.task_id is None
    assert credit.associate_id == chain.id("associate", "E1")
    assert credit.outreach_location_id == chain.id("location", "S1")
    assert credit.sale_location_id == chain.id("location", "S2")
    assert credit.client_id == chain.id("client", "C1")
    # Pre-tax revenue, whole sale to the one touch.
    assert (credit.revenue_minor, credit.currency, credit.weight) == (100000, "USD", 1.0)
    assert credit.sale_at == T0 and credit.touch_at == T0 - timedelta(days=3)
    assert credit.sale_day == T0.astimezone(ZoneInfo("America/Chicago")).date()
    # Running the consumer again changes nothing.
    await catch_up(chain)
    assert [(r.id, r.revenue_minor) for r in await credits(chain)] == [(credit.id, 100000)]


@pytest.mark.parametrize(
    ("before", "credited"),
    [
        (timedelta(days=30), True),  # exactly at the window's start: inside
        (timedelta(days=30, seconds=1), False),  # a second older: outside
        (timedelta(0), True),  # delivered at the very moment of the sale
        (-timedelta(seconds=1), False),  # delivered after the sale: cannot have led to it
    ],
)
async def test_window_edges(chain: Chain, before: timedelta, credited: bool) -> None:
    await text(chain, "C1", "E1", "S1", T0 - before)
    chain.sale("T1", customer="C1", shop="S1", at=T0)
    await chain.sync()
    await catch_up(chain)
    assert bool(await credits(chain, sale="T1")) is credited
    assert bool(await credits(chain, "engagement_weighted", sale="T1")) is credited


async def test_window_setting_recomputes_every_sale(chain: Chain) -> None:
    await text(chain, "C1", "E1", "S1", T0 - timedelta(days=20))
    chain.sale("T1", customer="C1", shop="S1", at=T0)
    await chain.sync()
    await catch_up(chain)
    assert await credits(chain, sale="T1")
    async with chain.rt.db.transaction() as s:
        settings = await load_attribution_settings(s)
        settings.window_days = 14
        await save_attribution_settings(s, settings)
    await catch_up(chain)
    assert await credits(chain, sale="T1") == []
    async with chain.rt.db.session() as s:
        assert (await load_attribution_settings(s)).recompute_requested_at is None


async def test_refund_after_attribution_reduces_revenue(chain: Chain) -> None:
    await text(chain, "C1", "E1", "S1", T0 - timedelta(days=2))
    first = chain.sale("T1", customer="C1", shop="S1", at=T0, amount="1000.00", tax="80.00")
    second = chain.sale("T2", customer="C1", shop="S1", at=T0 + timedelta(minutes=1), amount="400.00", tax="32.00")
    await chain.sync()
    await catch_up(chain)
    assert [r.revenue_minor for r in await credits(chain)] == [100000, 40000]

    # A week later she returns the second ring — at the Chicago store, rung up there as its own sale.
    chain.sale("R1", customer="C1", shop="S2", at=T0 + timedelta(days=7), amount="400.00", tax="32.00",
               refund_of=second)
    await chain.sync()
    await catch_up(chain)
    by_sale = {r.sale_id: r.revenue_minor for r in await credits(chain)}
    # The fully refunded sale credits nobody; the return itself is not a sale to reward.
    assert by_sale == {chain.id("sale", "T1"): 100000}

    # Half of the first ring comes back (a partial refund of that line).
    chain.sale("R2", customer="C1", shop="S1", at=T0 + timedelta(days=8), amount="250.00", tax="20.00",
               refund_of=first)
    await chain.sync()
    await catch_up(chain)
    for model in ("last_touch", "engagement_weighted"):
        assert [(r.sale_id, r.revenue_minor) for r in await credits(chain, model)] == [(chain.id("sale", "T1"), 75000)]


async def test_two_outreaches_compete_for_one_sale(chain: Chain) -> None:
    early = await text(chain, "C1", "E1", "S1", T0 - timedelta(days=10))
    await reply(chain, "C1", T0 - timedelta(days=9))
    task = await call_done(chain, "C1", "E2", "S2", T0 - timedelta(days=3))
    chain.sale("T1", customer="C1", shop="S1", at=T0, amount="1000.01")
    await chain.sync()
    await catch_up(chain)

    # Last touch: the later call wins outright, though the earlier text got a reply.
    [last] = await credits(chain, sale="T1")
    assert last.touch == f"task:{task}" and last.associate_id == chain.id("associate", "E2")
    assert last.revenue_minor == 100001

    # Engagement-weighted: the replied-to text (3 points) outranks the call (2); shares add up exactly.
    weighted = {r.touch: r for r in await credits(chain, "engagement_weighted", sale="T1")}
    assert set(weighted) == {f"outreach:{early}", f"task:{task}"}
    assert weighted[f"outreach:{early}"].weight == pytest.approx(0.6)
    assert weighted[f"task:{task}"].weight == pytest.approx(0.4)
    assert weighted[f"outreach:{early}"].revenue_minor + weighted[f"task:{task}"].revenue_minor == 100001
    assert weighted[f"outreach:{early}"].revenue_minor == 60001  # the odd cent goes to the larger remainder


async def test_a_reply_after_the_sale_does_not_count(chain: Chain) -> None:
    early = await text(chain, "C1", "E1", "S1", T0 - timedelta(days=10))
    task = await call_done(chain, "C1", "E2", "S2", T0 - timedelta(days=3))
    chain.sale("T1", customer="C1", shop="S1", at=T0)
    await chain.sync()
    await catch_up(chain)
    weights = {r.touch: r.weight for r in await credits(chain, "engagement_weighted", sale="T1")}
    assert weights == {f"outreach:{early}": pytest.approx(1 / 3), f"task:{task}": pytest.approx(2 / 3)}
    await reply(chain, "C1", T0 + timedelta(hours=1))  # arrives late, and after the sale anyway
    await catch_up(chain)
    assert {r.touch: r.weight for r in await credits(chain, "engagement_weighted", sale="T1")} == weights


async def test_late_outreach_recomputes_earlier_sales(chain: Chain) -> None:
    """The sale is synced first; the delivery report for a text sent before it arrives afterwards."""
    chain.sale("T1", customer="C1", shop="S2", at=T0)
    await chain.sync()
    await catch_up(chain)
    assert await credits(chain) == []
    oid = await text(chain, "C1", "E1", "S1", T0 - timedelta(days=1))
    await catch_up(chain)
    assert touches(await credits(chain, sale="T1")) == [f"outreach:{oid}"]
    # A task done even later, but still before the sale, takes last touch from the text.
    task = await call_done(chain, "C1", "E2", "S2", T0 - timedelta(hours=2), kind="text")
    await catch_up(chain)
    assert touches(await credits(chain, sale="T1")) == [f"task:{task}"]


async def test_merge_brings_touches_and_sales_together_and_unmerge_takes_them_apart(chain: Chain) -> None:
    # C3 is the same person as C1 entered at another store with another email: the rules do not merge them.
    oid = await text(chain, "C1", "E1", "S1", T0 - timedelta(days=5))
    chain.sale("T1", customer="C3", shop="S2", at=T0)
    await chain.sync()
    await catch_up(chain)
    assert await credits(chain) == []
    async with chain.rt.db.transaction() as s:
        merge = await merge_clients(s, chain.id("client", "C1"), chain.id("client", "C3"), actor="owner@shop.test",
                                    reason="same person")
    await catch_up(chain)
    [credit] = await credits(chain, sale="T1")
    assert credit.touch == f"outreach:{oid}" and credit.client_id == chain.id("client", "C1")
    async with chain.rt.db.transaction() as s:
        await unmerge(s, merge.id, actor="owner@shop.test")
    await catch_up(chain)
    assert await credits(chain) == []


async def test_non_completed_and_walk_in_sales_earn_nothing(chain: Chain) -> None:
    await text(chain, "C1", "E1", "S1", T0 - timedelta(days=1))
    chain.sale("Q1", customer="C1", shop="S1", at=T0, status="quote")
    chain.sale("W1", customer=None, shop="S1", at=T0)
    await chain.sync()
    await catch_up(chain)
    assert await credits(chain) == []
    assert await credits(chain, "engagement_weighted") == []


class Broken(AttributionModel):
    name = "house_rules"
    title = "House rules"
    fixed = False

    def credit(self, sale: SaleFacts, touches: Sequence[Touch]) -> list[Credit]:
        # The bug: every touch gets full weight, so two touches add up to 2.
        if type(self).fixed:
            return [Credit(t, 1 / len(touches)) for t in touches]
        return [Credit(t, 1.0) for t in touches]


class BrokenPlugin:
    @hookimpl
    def clasp_register_attribution_models(self, register: Any) -> None:
        register(Broken())


async def test_a_failing_model_sends_the_sale_to_the_error_queue_and_replays(
    settings: Settings, chain: Chain
) -> None:
    rt = create_runtime(settings, plugins=load_plugins(settings, extra=[testpos_plugin, BrokenPlugin()]))
    try:
        chain.rt = rt
        await text(chain, "C1", "E1", "S1", T0 - timedelta(days=4))
        await call_done(chain, "C1", "E2", "S2", T0 - timedelta(days=2))
        chain.sale("T1", customer="C1", shop="S1", at=T0)
        await chain.sync()
        Broken.fixed = False
        await catch_up(chain)
        # The other models still credited the sale.
        assert len(await credits(chain, sale="T1")) == 1
        assert await credits(chain, "house_rules") == []
        [error] = await attribution_errors(rt)
        assert error.stream == "house_rules" and error.external_id == str(chain.id("sale", "T1"))
        assert "add up to 2" in error.reason and error.payload == {"sale_id": chain.id("sale", "T1"),
                                                                   "model": "house_rules"}
        # Recomputing again while still broken keeps one open error.
        await recompute(rt, [chain.id("sale", "T1")])
        assert [e.attempts for e in await attribution_errors(rt)] == [2]
        Broken.fixed = True
        result = await replay_error(rt, error.id)  # type: ignore[arg-type]
        assert result.ok, result.message
        assert sorted(r.weight for r in await credits(chain, "house_rules")) == [0.5, 0.5]
        assert await attribution_errors(rt) == []
    finally:
        Broken.fixed = False
        await rt.close()


async def test_recompute_all_rebuilds_the_same_rows(chain: Chain) -> None:
    await text(chain, "C1", "E1", "S1", T0 - timedelta(days=4))
    await text(chain, "C2", "E2", "S2", T0 - timedelta(days=6))
    chain.sale("T1", customer="C1", shop="S1", at=T0)
    chain.sale("T2", customer="C2", shop="S1", at=T0 + timedelta(days=1))
    await chain.sync()
    await catch_up(chain)
    before = [(r.sale_id, r.model, r.touch, r.revenue_minor) for r in await credits(chain)]
    assert len(before) == 2
    result = await recompute_all(chain.rt)
    assert result.credited == 2
    assert [(r.sale_id, r.model, r.touch, r.revenue_minor) for r in await credits(chain)] == before


async def test_the_cli_catches_up_and_recomputes(chain: Chain, clasp_cli: Any) -> None:
    oid = await text(chain, "C2", "E2", "S2", T0 - timedelta(days=2))
    chain.sale("T1", customer="C2", shop="S1", at=T0)
    await chain.sync()
    # The feed only hands out rows older than its settle window: age them as if a few seconds passed.
    async with chain.rt.db.transaction() as s:
        from sqlalchemy import update

        from core.models import ChangeFeed

        await s.exec(update(ChangeFeed).values(created_at=datetime.now(UTC) - timedelta(minutes=1)))  # type: ignore[call-overload]
    done = clasp_cli("attribution", "catch-up")
    assert done.returncode == 0, done.stderr
    assert "1 credited" in done.stdout
    assert touches(await credits(chain, sale="T1")) == [f"outreach:{oid}"]
    again = clasp_cli("attribution", "recompute", "--sale", str(chain.id("sale", "T1")))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("1 sale(s) looked at, 1 credited, 2 credit row(s).")
