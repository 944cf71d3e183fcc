"""The report queries (core.attribution.reports) on real rows, on every backend.

A small chain — four stores in three timezones, four associates, clients buying across stores,
texts, replies, Today tasks, sales, a refund and credit rows from two models — is built through the
models. Expected figures come from a plain-Python reading of those same rows (``expect``), checked
against the SQL for each role's scope; a few headline figures are also spelled out by hand.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.access import Principal
from core.attribution.reports import (
    Figures,
    Period,
    build_report,
    by_associate,
    by_location,
    cross_store_matrix,
    leaderboard,
    period_for,
    totals,
    trend,
)
from core.attribution.settings import AttributionSettings, save_attribution_settings
from core.db import Database
from core.models import Associate, Attribution, Client, Location, Outreach, Sale, Task

ZONE = ZoneInfo("America/New_York")
FIRST, LAST = date(2026, 3, 1), date(2026, 3, 14)
LAST_TOUCH, WEIGHTED = "last_touch", "engagement_weighted"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@dataclass
class Chain:
    loc: dict[str, int] = field(default_factory=dict)
    loc_zone: dict[int, ZoneInfo] = field(default_factory=dict)
    assoc: dict[str, int] = field(default_factory=dict)
    assoc_loc: dict[int, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)
    outreach: list[Outreach] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    sales: dict[str, Sale] = field(default_factory=dict)
    credits: list[Attribution] = field(default_factory=list)


async def build_chain(db: Database) -> Chain:
    """The rows every test reads. Times are chosen around the period's edges in New York time:
    2026-03-01 05:00 UTC is midnight starting the period; 2026-03-15 04:00 UTC midnight ending it."""
    c = Chain()
    async with db.transaction() as s:
        stores = {
            "downtown": Location(name="Downtown", timezone="America/New_York"),
            "uptown": Location(name="Uptown", timezone="America/Chicago"),
            "harbor": Location(name="Harbor", timezone="America/Los_Angeles"),
            "montreal": Location(name="Montreal", timezone="America/Toronto", currency="CAD", country="CA"),
        }
        s.add_all(stores.values())
        await s.flush()
        c.loc = {k: v.id for k, v in stores.items()}  # type: ignore[misc]
        c.loc_zone = {v.id: ZoneInfo(v.timezone) for v in stores.values()}  # type: ignore[misc]
        people = {
            "ann": Associate(location_id=c.loc["downtown"], first_name="Ann", last_name="Lee"),
            "bob": Associate(location_id=c.loc["downtown"], first_name="Bob", last_name="Ray"),
            "cat": Associate(location_id=c.loc["uptown"], first_name="Cat", last_name="Fox"),
            "hal": Associate(location_id=c.loc["harbor"], first_name="Hal", last_name="Hart"),
        }
        s.add_all(people.values())
        await s.flush()
        c.assoc = {k: v.id for k, v in people.items()}  # type: ignore[misc]
        c.assoc_loc = {v.id: v.location_id for v in people.values()}  # type: ignore[misc]
        clients = {k: Client(first_name=k.upper()) for k in ("c1", "c2", "c3", "c4", "c5", "c6")}
        s.add_all(clients.values())
        await s.flush()
        c.clients = {k: v.id for k, v in clients.items()}  # type: ignore[misc]
        a, L, cl = c.assoc, c.loc, c.clients

        def out(who: str | None, where: str, *, channel: str = "sms", direction: str = "outbound",
                sent: datetime | None = None, delivered: datetime | None = None, created: datetime | None = None,
                client: str = "c1") -> Outreach:
            row = Outreach(
                client_id=cl[client], associate_id=a[who] if who else None, location_id=L[where], channel=channel,
                direction=direction,
                state="received" if direction == "inbound" else "delivered" if delivered else "sent",
                sent_at=sent, delivered_at=delivered, created_at=created or sent or utc(2026, 2, 1),
            )
            c.outreach.append(row)
            return row

        o1 = out("ann", "downtown", sent=utc(2026, 3, 2, 15), delivered=utc(2026, 3, 2, 15, 1))
        out("ann", "downtown", channel="email", sent=utc(2026, 3, 3, 14), client="c2")  # never delivered
        out("ann", "downtown", channel="call", sent=utc(2026, 3, 3, 15), delivered=utc(2026, 3, 3, 15))  # not a message
        # Sent before the period, delivered 00:30 on its first New York day.
        o4 = out("cat", "uptown", channel="mms", sent=utc(2026, 2, 27, 12), delivered=utc(2026, 3, 1, 5, 30),
                 client="c3")
        # 00:30 on the day after the period: outside. 23:30 on its last day: sent inside, delivered outside.
        out("bob", "downtown", sent=utc(2026, 3, 15, 4, 30), delivered=utc(2026, 3, 15, 4, 31), client="c2")
        out("bob", "downtown", sent=utc(2026, 3, 15, 3, 30), delivered=utc(2026, 3, 15, 4, 10), client="c2")
        o6 = out(None, "harbor", sent=utc(2026, 3, 5, 17), delivered=utc(2026, 3, 5, 17, 1), client="c5")
        out("ann", "downtown", direction="inbound", created=utc(2026, 3, 2, 16))  # a reply
        out("cat", "uptown", direction="inbound", created=utc(2026, 3, 1, 4, 59), client="c3")  # 23:59 the day before
        s.add_all(c.outreach)

        def task(who: str, where: str, state: str, done: datetime | None) -> Task:
            row = Task(associate_id=a[who], location_id=L[where], kind="call", title="Follow up", state=state,
                       done_at=done, client_id=cl["c1"])
            c.tasks.append(row)
            return row

        t1 = task("ann", "downtown", "done", utc(2026, 3, 4, 16))
        task("cat", "uptown", "done", utc(2026, 3, 6, 16))
        task("ann", "downtown", "open", None)
        task("bob", "downtown", "done", utc(2026, 2, 20, 16))
        s.add_all(c.tasks)
        await s.flush()

        def sale(name: str, client: str, where: str, total: int, at: datetime, *, status: str = "completed",
                 currency: str = "USD") -> Sale:
            row = Sale(location_id=L[where], client_id=cl[client], status=status, currency=currency,
                       subtotal_minor=total, total_minor=total, occurred_at=at)
            c.sales[name] = row
            return row

        sale("c3_before", "c3", "harbor", 45000, utc(2026, 1, 10, 18))  # c3 is a returning client
        sale("c4_voided", "c4", "downtown", 9000, utc(2026, 2, 1, 18), status="voided")  # never happened
        sale("c2_return", "c2", "uptown", -4000, utc(2026, 2, 2, 18))  # a return is not a purchase
        sale("s1", "c1", "harbor", 10000, utc(2026, 3, 5, 18))  # 10:00 in Harbor: Ann's text sold elsewhere
        sale("s2", "c1", "downtown", 5000, utc(2026, 3, 5, 20))  # same client, same day again
        sale("s1_refund", "c1", "uptown", -2000, utc(2026, 3, 7, 18))  # part of s1 back, at a third store
        sale("s3", "c2", "downtown", 15000, utc(2026, 3, 8, 18))
        sale("s4", "c3", "uptown", 20000, utc(2026, 3, 10, 18))
        sale("s5", "c4", "downtown", 3000, utc(2026, 3, 12, 18))
        sale("s6", "c5", "montreal", 12000, utc(2026, 3, 9, 16), currency="CAD")
        sale("s8", "c6", "downtown", 700, utc(2026, 3, 1, 5))  # midnight opening the period
        sale("early", "c1", "downtown", 1100, utc(2026, 3, 1, 4))  # 23:00 the evening before
        sale("late", "c1", "downtown", 1300, utc(2026, 3, 15, 5))  # 01:00 after the last day
        s.add_all(c.sales.values())
        await s.flush()

        def credit(sale_name: str, who: str | None, from_store: str, *, outreach: Outreach | None = None,
                   task_row: Task | None = None, weight: float = 1.0, revenue: int | None = None,
                   model: str = LAST_TOUCH) -> None:
            sold = c.sales[sale_name]
            touch = outreach or task_row
            assert touch is not None
            touch_at = outreach.delivered_at if outreach else task_row.done_at  # type: ignore[union-attr]
            c.credits.append(Attribution(
                sale_id=sold.id, model=model, touch=f"{'outreach' if outreach else 'task'}:{touch.id}",
                outreach_id=outreach.id if outreach else None, task_id=task_row.id if task_row else None,
                client_id=sold.client_id, associate_id=a[who] if who else None, outreach_location_id=L[from_store],
                sale_location_id=sold.location_id, touch_at=touch_at or sold.occurred_at, sale_at=sold.occurred_at,
                sale_day=sold.occurred_at.astimezone(c.loc_zone[sold.location_id]).date(), weight=weight,
                revenue_minor=sold.total_minor if revenue is None else revenue, currency=sold.currency,
            ))

        credit("s1", "ann", "downtown", outreach=o1, revenue=8000)  # net of the 20.00 refund
        credit("s2", "ann", "downtown", task_row=t1)
        credit("s3", "ann", "downtown", outreach=o1)
        credit("s4", "cat", "uptown", outreach=o4)
        credit("s5", "cat", "uptown", outreach=o4)  # Uptown's text, Downtown's sale
        credit("s6", None, "harbor", outreach=o6)  # an automated text from Harbor, bought in Montreal
        credit("s8", "bob", "downtown", outreach=o1)
        credit("early", "ann", "downtown", outreach=o1)
        credit("late", "ann", "downtown", outreach=o1)
        # The weighted model shares s3 between Ann and Bob, and credits s4 like last touch does.
        credit("s3", "ann", "downtown", outreach=o1, weight=0.5, revenue=7500, model=WEIGHTED)
        credit("s3", "bob", "downtown", task_row=t1, weight=0.5, revenue=7500, model=WEIGHTED)
        credit("s4", "cat", "uptown", outreach=o4, model=WEIGHTED)
        s.add_all(c.credits)
        await save_attribution_settings(s, AttributionSettings(report_timezone="America/New_York"))
    return c


# ------------------------------------------------------------------------------ reference reading


def _in(moment: datetime | None, first: date, last: date) -> bool:
    return moment is not None and first <= moment.astimezone(ZONE).date() <= last


Keep = Callable[[Any], bool]


def _everything(_: Any) -> bool:
    return True


def expect(
    c: Chain,
    model: str = LAST_TOUCH,
    first: date = FIRST,
    last: date = LAST,
    *,
    key: str,
    keep_row: Keep = _everything,
    keep_credit: Keep = _everything,
) -> dict[Any, Figures]:
    """Figures from the rows as created. ``key``: "associate", "location" (outreach side) or "all"."""
    out: dict[Any, Figures] = defaultdict(Figures)

    def k(row: Any, location: int | None) -> Any:
        return None if key == "all" else row.associate_id if key == "associate" else location

    for o in c.outreach:
        if not keep_row(o):
            continue
        message = o.direction == "outbound" and o.channel in ("sms", "mms", "email")
        f = out[k(o, o.location_id)]
        f.sent += message and _in(o.sent_at, first, last)
        f.delivered += message and _in(o.delivered_at, first, last)
        f.replies += o.direction == "inbound" and _in(o.created_at, first, last)
    for t in c.tasks:
        if keep_row(t) and t.state == "done" and _in(t.done_at, first, last):
            out[k(t, t.location_id)].tasks_done += 1
    clients: dict[Any, set[int]] = defaultdict(set)
    repeat: dict[Any, set[int]] = defaultdict(set)
    for r in c.credits:
        if r.model != model or not _in(r.sale_at, first, last) or not keep_credit(r):
            continue
        f = out[k(r, r.outreach_location_id)]
        f.sales += r.weight
        f.revenue[r.currency] = f.revenue.get(r.currency, 0) + r.revenue_minor
        if r.sale_location_id != r.outreach_location_id:
            f.cross_store_revenue[r.currency] = f.cross_store_revenue.get(r.currency, 0) + r.revenue_minor
        clients[k(r, r.outreach_location_id)].add(r.client_id)  # type: ignore[arg-type]
        if any(s.client_id == r.client_id and s.status == "completed" and s.total_minor > 0
               and s.occurred_at < r.sale_at for s in c.sales.values()):
            repeat[k(r, r.outreach_location_id)].add(r.client_id)  # type: ignore[arg-type]
    for g, ids in clients.items():
        out[g].clients, out[g].repeat_clients = len(ids), len(repeat[g])
    return dict(out)


def same(actual: Figures, expected: Figures) -> None:
    assert (actual.sent, actual.delivered, actual.replies, actual.tasks_done) == (
        expected.sent, expected.delivered, expected.replies, expected.tasks_done)
    assert actual.sales == pytest.approx(expected.sales)
    assert actual.revenue == {k: v for k, v in expected.revenue.items() if v}
    assert actual.cross_store_revenue == {k: v for k, v in expected.cross_store_revenue.items() if v}
    assert (actual.clients, actual.repeat_clients) == (expected.clients, expected.repeat_clients)


OWNER = Principal(user_id=1, role="owner", location_ids=frozenset())


def manager_of(c: Chain, *stores: str) -> Principal:
    return Principal(user_id=2, role="manager", location_ids=frozenset(c.loc[s] for s in stores))


def associate(c: Chain, who: str | None, store: str = "downtown") -> Principal:
    return Principal(user_id=3, role="associate", location_ids=frozenset({c.loc[store]}),
                     associate_id=c.assoc[who] if who else None)


@pytest.fixture
async def chain(db: Database) -> Chain:
    return await build_chain(db)


@pytest.fixture
async def period(db: Database, chain: Chain) -> Period:
    async with db.session() as s:
        return await period_for(s, FIRST, LAST)  # the zone comes from the saved settings


# ------------------------------------------------------------------------------------------- tests


async def test_period_reads_dates_in_the_report_zone(period: Period) -> None:
    assert period.zone == ZONE
    assert period.start == utc(2026, 3, 1, 5) and period.end == utc(2026, 3, 15, 4)  # DST began 03-08
    assert period.daily and len(period.buckets()) == 14
    weeks = Period(date(2026, 2, 1), date(2026, 3, 31), ZONE).buckets()
    # 2026-02-01 is a Sunday: a one-day first week, then Monday-to-Sunday weeks, clipped at the end.
    assert (weeks[0].first, weeks[0].last) == (date(2026, 2, 1), date(2026, 2, 1))
    assert all(b.first.weekday() == 0 for b in weeks[1:])
    assert (weeks[-1].first, weeks[-1].last) == (date(2026, 3, 30), date(2026, 3, 31))
    assert all(a.end == b.start for a, b in itertools.pairwise(weeks))


async def test_owner_per_associate(db: Database, chain: Chain, period: Period) -> None:
    async with db.session() as s:
        rows = await by_associate(s, OWNER, period, LAST_TOUCH)
    got = {r.associate_id: r for r in rows}
    want = expect(chain, key="associate")
    assert set(got) == {*chain.assoc.values(), None}  # Hal is listed with zeros; automations get a row
    for aid, row in got.items():
        same(row.figures, want.get(aid, Figures()))
    ann = got[chain.assoc["ann"]].figures
    # Spelled out: texts and email sent (the call is not a message), one delivered, one reply, one task;
    # s1 (net 80.00 after its refund, sold at Harbor), s2 and s3; c1 bought before s2, c2 never bought.
    assert (ann.sent, ann.delivered, ann.replies, ann.tasks_done) == (2, 1, 1, 1)
    assert ann.sales == 3 and ann.revenue == {"USD": 8000 + 5000 + 15000}
    assert ann.cross_store_revenue == {"USD": 8000}
    assert (ann.clients, ann.repeat_clients, ann.repeat_rate) == (2, 1, 0.5)
    bob = got[chain.assoc["bob"]].figures
    assert (bob.sent, bob.delivered, bob.tasks_done, bob.revenue) == (1, 0, 0, {"USD": 700})
    cat = got[chain.assoc["cat"]].figures
    assert (cat.sent, cat.delivered, cat.replies) == (0, 1, 0)  # delivered inside, sent before; reply the day before
    assert (cat.clients, cat.repeat_clients) == (2, 1)  # c3 bought in January; c4's earlier sale was voided
    assert got[None].figures.revenue == {"CAD": 12000} and got[None].name.startswith("No associate")
    assert got[chain.assoc["hal"]].figures.empty


async def test_weighted_model_gives_fractional_sales(db: Database, chain: Chain, period: Period) -> None:
    async with db.session() as s:
        rows = {r.associate_id: r.figures for r in await by_associate(s, OWNER, period, WEIGHTED)}
        board = await leaderboard(s, OWNER, period, WEIGHTED)
    want = expect(chain, WEIGHTED, key="associate")
    for aid, figures in rows.items():
        same(figures, want.get(aid, Figures()))
    assert rows[chain.assoc["ann"]].sales == pytest.approx(0.5)
    assert rows[chain.assoc["bob"]].revenue == {"USD": 7500}
    # A shared sale still earns each associate their point for that client's day.
    assert {r.associate_id: r.points for r in board} == {chain.assoc["ann"]: 1, chain.assoc["bob"]: 1,
                                                         chain.assoc["cat"]: 1}


async def test_owner_per_location_and_cross_store(db: Database, chain: Chain, period: Period) -> None:
    async with db.session() as s:
        rows = {r.location_id: r for r in await by_location(s, OWNER, period, LAST_TOUCH)}
        matrix = await cross_store_matrix(s, OWNER, period, LAST_TOUCH)
    want = expect(chain, key="location")
    assert set(rows) == set(chain.loc.values())
    for loc, row in rows.items():
        same(row.figures, want.get(loc, Figures()))
    # The sale side, from the credit rows by the store of the sale.
    in_range = [r for r in chain.credits if r.model == LAST_TOUCH and _in(r.sale_at, FIRST, LAST)]
    for loc, row in rows.items():
        here = [r for r in in_range if r.sale_location_id == loc]
        assert row.sold_here_sales == pytest.approx(sum(r.weight for r in here))
        assert row.sold_here_revenue == _money(here)
        assert row.sold_here_from_elsewhere == _money([r for r in here if r.outreach_location_id != loc])
    down, up, harbor, mtl = (rows[chain.loc[k]] for k in ("downtown", "uptown", "harbor", "montreal"))
    assert down.figures.revenue == {"USD": 8000 + 5000 + 15000 + 700}
    assert down.figures.cross_store_revenue == {"USD": 8000}
    assert down.sold_here_revenue == {"USD": 5000 + 15000 + 3000 + 700}
    assert down.sold_here_from_elsewhere == {"USD": 3000}
    assert up.figures.cross_store_revenue == {"USD": 3000} and up.sold_here_from_elsewhere == {}
    assert harbor.figures.revenue == {"CAD": 12000} and harbor.sold_here_from_elsewhere == {"USD": 8000}
    assert mtl.figures.empty and mtl.sold_here_from_elsewhere == {"CAD": 12000}
    # The matrix holds every credited sale once, by (outreach store, sale store).
    expected_cells: dict[tuple[int | None, int | None], dict[str, int]] = defaultdict(dict)
    for r in in_range:
        cell = expected_cells[(r.outreach_location_id, r.sale_location_id)]
        cell[r.currency] = cell.get(r.currency, 0) + r.revenue_minor
    assert matrix.revenue == dict(expected_cells)
    assert matrix.revenue[(chain.loc["downtown"], chain.loc["harbor"])] == {"USD": 8000}
    assert matrix.cross_store() == {"USD": 8000 + 3000, "CAD": 12000}


def _money(rows: list[Attribution]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.currency] = out.get(r.currency, 0) + r.revenue_minor
    return out


async def test_leaderboard_one_point_per_client_per_day(db: Database, chain: Chain, period: Period) -> None:
    async with db.session() as s:
        board = await leaderboard(s, OWNER, period, LAST_TOUCH)
    in_range = [r for r in chain.credits if r.model == LAST_TOUCH and _in(r.sale_at, FIRST, LAST) and r.associate_id]
    pairs: dict[int, set[tuple[int, date]]] = defaultdict(set)
    for r in in_range:
        pairs[r.associate_id].add((r.client_id, r.sale_day))  # type: ignore[index, arg-type]
    assert {r.associate_id: r.points for r in board} == {a: len(p) for a, p in pairs.items()}
    # Ann: c1 twice on 03-05 (one point) and c2 on 03-08; Cat: two clients; both 2, Ann ahead on revenue.
    assert [(r.rank, r.associate_id, r.points) for r in board] == [
        (1, chain.assoc["ann"], 2), (2, chain.assoc["cat"], 2), (3, chain.assoc["bob"], 1)]
    assert board[0].revenue == {"USD": 28000} and board[1].revenue == {"USD": 23000}


async def test_trend_per_day_and_per_week(db: Database, chain: Chain, period: Period) -> None:
    async with db.session() as s:
        daily = await trend(s, OWNER, period, LAST_TOUCH)
        weeks_period = Period(date(2026, 2, 1), date(2026, 3, 31), ZONE)
        weekly = await trend(s, OWNER, weeks_period, LAST_TOUCH)
    for points, per in ((daily, period), (weekly, weeks_period)):
        assert [p.bucket for p in points] == per.buckets()
        for p in points:
            def here(moment: datetime | None, p: Any = p) -> bool:
                return _in(moment, p.bucket.first, p.bucket.last)

            delivered = [o for o in chain.outreach if o.direction == "outbound" and o.channel != "call"
                         and here(o.delivered_at)]
            credited = [r for r in chain.credits if r.model == LAST_TOUCH and here(r.sale_at)]
            assert p.delivered == len(delivered), p.bucket
            assert p.sales == pytest.approx(sum(r.weight for r in credited)), p.bucket
            assert {k: v for k, v in p.revenue.items() if v} == _money(credited), p.bucket
    assert sum(p.sales for p in daily) == 7  # early and late fall outside the period
    assert sum(p.sales for p in weekly) == 9


async def test_manager_sees_their_stores(db: Database, chain: Chain, period: Period) -> None:
    boss = manager_of(chain, "downtown")
    down = chain.loc["downtown"]
    async with db.session() as s:
        people = {r.associate_id: r for r in await by_associate(s, boss, period, LAST_TOUCH)}
        stores = {r.location_id: r for r in await by_location(s, boss, period, LAST_TOUCH)}
        matrix = await cross_store_matrix(s, boss, period, LAST_TOUCH)
        board = await leaderboard(s, boss, period, LAST_TOUCH)
        total = await totals(s, boss, period, LAST_TOUCH)

    def staff(row: Any) -> bool:
        aid = row.associate_id
        loc = row.outreach_location_id if isinstance(row, Attribution) else row.location_id
        return chain.assoc_loc.get(aid) == down if aid is not None else loc == down

    def touches_store(r: Attribution) -> bool:
        return down in (r.sale_location_id, r.outreach_location_id)

    assert set(people) == {chain.assoc["ann"], chain.assoc["bob"]}
    want = expect(chain, key="associate", keep_row=staff, keep_credit=lambda r: staff(r) and touches_store(r))
    for aid, row in people.items():
        same(row.figures, want.get(aid, Figures()))
    same(total, expect(chain, key="all", keep_row=staff, keep_credit=lambda r: staff(r) and touches_store(r))[None])
    assert set(stores) == {down}
    same(stores[down].figures, expect(chain, key="location")[down])
    assert stores[down].sold_here_from_elsewhere == {"USD": 3000}  # Cat's text, still visible as credit here
    assert set(matrix.revenue) == {
        (down, chain.loc["harbor"]), (down, down), (chain.loc["uptown"], down)}  # Uptown→Uptown is not theirs
    assert [r.associate_id for r in board] == [chain.assoc["ann"], chain.assoc["bob"]]
    assert await _empty_for(db, period, Principal(user_id=9, role="manager", location_ids=frozenset()))


async def test_associate_sees_only_their_own(db: Database, chain: Chain, period: Period) -> None:
    ann = associate(chain, "ann")
    aid = chain.assoc["ann"]
    async with db.session() as s:
        report = await build_report(s, ann, period, LAST_TOUCH)

    def own(row: Any) -> bool:
        return row.associate_id == aid

    assert [r.associate_id for r in report.associates] == [aid]
    same(report.associates[0].figures, expect(chain, key="associate")[aid])
    same(report.totals, report.associates[0].figures)
    # Her store, and Harbor where a client of hers bought; each with her numbers only.
    stores = {r.location_id: r for r in report.locations}
    assert set(stores) == {chain.loc["downtown"], chain.loc["harbor"]}
    mine = expect(chain, key="location", keep_row=own, keep_credit=own)
    same(stores[chain.loc["downtown"]].figures, mine[chain.loc["downtown"]])
    assert stores[chain.loc["harbor"]].sold_here_revenue == {"USD": 8000}
    assert stores[chain.loc["downtown"]].sold_here_revenue == {"USD": 20000}
    assert [r.associate_id for r in report.leaderboard] == [aid]
    assert set(report.matrix.revenue) == {(chain.loc["downtown"], chain.loc["harbor"]),
                                          (chain.loc["downtown"], chain.loc["downtown"])}
    assert sum(p.delivered for p in report.trend) == 1 and report.currencies == ["USD"]
    assert not report.unlinked
    assert await _empty_for(db, period, associate(chain, None))


async def _empty_for(db: Database, period: Period, who: Principal) -> bool:
    async with db.session() as s:
        report = await build_report(s, who, period, LAST_TOUCH)
    assert report.unlinked == (who.role == "associate")
    return (
        not report.associates and not report.leaderboard and not report.matrix.revenue
        and report.totals.empty and all(p.delivered == 0 and not p.revenue for p in report.trend)
        and all(r.figures.empty and not r.sold_here_revenue for r in report.locations)
    )


async def test_owner_report_totals(db: Database, chain: Chain, period: Period) -> None:
    async with db.session() as s:
        report = await build_report(s, OWNER, period, LAST_TOUCH)
        other = await build_report(s, OWNER, period, "no_such_model")
    same(report.totals, expect(chain, key="all")[None])
    assert report.currencies == ["USD", "CAD"]  # by revenue: 51,700 USD minor vs 12,000 CAD minor
    assert other.totals.sales == 0 and not other.leaderboard and other.totals.delivered == report.totals.delivered
