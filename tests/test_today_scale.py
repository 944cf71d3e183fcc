"""Today at scale, on the real database: each store's local day decides due today vs overdue, tasks an
automation creates for occasions that fell due before it was enabled are today's work, groups count
and page, filters narrow within scope, and the actions only appear where they can work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.access import Principal
from core.automations.today import Filters, filter_choices, group_of, today
from core.db import Database
from core.models import Associate, Client, ClientContact, Location, Outreach, Task
from core.outreach.textable import line_kind

OWNER = Principal(user_id=None, role="owner", location_ids=frozenset(), email="owner@example.com")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def two_stores(db: Database) -> dict[str, Any]:
    async with db.transaction() as s:
        tokyo = Location(name="Ginza", timezone="Asia/Tokyo", outreach_mode="own")
        nyc = Location(name="Fifth Avenue", timezone="America/New_York", outreach_mode="own")
        s.add_all([tokyo, nyc])
        await s.flush()
        yui = Associate(location_id=tokyo.id, first_name="Yui", last_name="Sato")
        max_ = Associate(location_id=nyc.id, first_name="Max", last_name="Reed")
        s.add_all([yui, max_])
        await s.flush()
        ann = Client(first_name="Ann", last_name="Lee", home_location_id=nyc.id, owner_associate_id=max_.id)
        s.add(ann)
        await s.flush()
        return {"tokyo": tokyo.id, "nyc": nyc.id, "yui": yui.id, "max": max_.id, "ann": ann.id}


async def add_task(db: Database, **kw: Any) -> int:
    async with db.transaction() as s:
        kw.setdefault("title", "Follow up")
        kw.setdefault("created_at", kw["due_at"])
        row = Task(**kw)
        s.add(row)
        await s.flush()
        return row.id  # type: ignore[return-value]


async def test_due_today_and_overdue_follow_each_stores_local_day(db: Database) -> None:
    ids = await two_stores(db)
    # 2026-12-07 16:00 UTC: Tokyo is already Dec 8 (01:00 JST); New York is Dec 7 (11:00 EST).
    now = at("2026-12-07T16:00")
    # Both due at 2026-12-07 10:00 UTC: Dec 7 19:00 in Tokyo (yesterday there), Dec 7 05:00 in New York (today).
    tokyo_task = await add_task(db, location_id=ids["tokyo"], associate_id=ids["yui"], due_at=at("2026-12-07T10:00"))
    nyc_task = await add_task(db, location_id=ids["nyc"], associate_id=ids["max"], due_at=at("2026-12-07T10:00"))
    # Due at 2026-12-07 23:30 UTC: Dec 8 08:30 in Tokyo (today there), Dec 7 18:30 in New York (today).
    late = await add_task(db, location_id=ids["tokyo"], associate_id=ids["yui"], due_at=at("2026-12-07T23:30"))
    # Due at 2026-12-08 05:30 UTC: Dec 8 14:30 in Tokyo (today), Dec 8 00:30 in New York (tomorrow).
    tomorrow_ny = await add_task(db, location_id=ids["nyc"], associate_id=ids["max"], due_at=at("2026-12-08T05:30"))
    async with db.session() as s:
        page = await today(s, OWNER, now)
    assert [v.id for v in page.overdue] == [tokyo_task]
    assert [v.id for v in page.today] == [nyc_task, late]
    assert [v.id for v in page.upcoming] == [tomorrow_ny]
    assert page.counts() == {"today": 2, "overdue": 1, "upcoming": 1, "done": 0}
    assert page.overdue[0].overdue_days == 1 and page.overdue[0].timezone == "Asia/Tokyo"
    # The SQL grouping and the one-task rule agree.
    async with db.session() as s:
        for tid in (tokyo_task, nyc_task, late, tomorrow_ny):
            row = await s.get(Task, tid)
            tz = "Asia/Tokyo" if row.location_id == ids["tokyo"] else "America/New_York"  # type: ignore[union-attr]
            expected = next(g for g in ("overdue", "today", "upcoming") if tid in [v.id for v in getattr(page, g)])
            assert group_of(row, now, tz) == expected


async def test_tasks_created_for_occasions_that_fell_due_earlier_are_due_the_day_they_appear(db: Database) -> None:
    ids = await two_stores(db)
    now = at("2026-12-07T16:00")
    # Enabled today: a dormant-client occasion that fell due nine days ago is today's work, not overdue.
    caught_up = await add_task(
        db, location_id=ids["nyc"], due_at=now - timedelta(days=9), created_at=now - timedelta(minutes=5)
    )
    # Created two days ago and still open: that one is overdue (by the two days it has waited).
    waited = await add_task(
        db, location_id=ids["nyc"], due_at=now - timedelta(days=9), created_at=now - timedelta(days=2)
    )
    async with db.session() as s:
        page = await today(s, OWNER, now)
    assert [v.id for v in page.today] == [caught_up]
    assert [v.id for v in page.overdue] == [waited] and page.overdue[0].overdue_days == 2


async def test_groups_count_everything_show_a_page_and_filters_narrow(db: Database) -> None:
    ids = await two_stores(db)
    now = at("2026-12-07T16:00")
    old = now - timedelta(days=3)
    async with db.transaction() as s:
        s.add_all(
            Task(location_id=ids["nyc"], associate_id=ids["max"] if i % 2 else None, kind="call" if i % 3 else "text",
                 title=f"Old {i}", due_at=old + timedelta(minutes=i), created_at=old)
            for i in range(37)
        )
    async with db.session() as s:
        page = await today(s, OWNER, now)
        assert page.counts()["overdue"] == 37 and len(page.overdue) == 10 and page.remaining("overdue") == 27
        assert [v.title for v in page.overdue[:2]] == ["Old 0", "Old 1"]  # oldest first
        second = await today(s, OWNER, now, limits={"overdue": 20}, offsets={"overdue": 10}, groups=("overdue",))
        assert [v.title for v in second.overdue] == [f"Old {i}" for i in range(10, 30)]
        assert second.remaining("overdue") == 7
        calls = await today(s, OWNER, now, filters=Filters(kind="call"))
        assert calls.counts()["overdue"] == sum(1 for i in range(37) if i % 3)
        mine = await today(s, OWNER, now, filters=Filters(associate_id=ids["max"]))
        assert mine.counts()["overdue"] == 18
        unassigned = await today(s, OWNER, now, filters=Filters(associate_id=0))
        assert unassigned.counts()["overdue"] == 19
        tokyo = await today(s, OWNER, now, filters=Filters(location_id=ids["tokyo"]))
        assert tokyo.counts() == {"today": 0, "overdue": 0, "upcoming": 0, "done": 0}
        # A manager of Tokyo sees nothing of New York, even when asking for it by filter.
        tokyo_manager = Principal(user_id=None, role="manager", location_ids=frozenset({ids["tokyo"]}))
        peek = await today(s, tokyo_manager, now, filters=Filters(location_id=ids["nyc"]))
        assert sum(peek.counts().values()) == 0
        choices = await filter_choices(s, tokyo_manager)
        assert choices.locations == [] and choices.associates == []
        owner_choices = await filter_choices(s, OWNER)
        assert owner_choices.kinds == ["call", "text"]
        assert owner_choices.locations == [(ids["nyc"], "Fifth Avenue")]
        assert owner_choices.associates == [(ids["max"], "Max Reed"), (0, "Unassigned")]


async def test_text_and_call_only_where_they_can_work(db: Database) -> None:
    ids = await two_stores(db)
    now = at("2026-12-07T16:00")
    async with db.transaction() as s:
        home_only = Client(first_name="Hal", last_name="Home", home_location_id=ids["nyc"])
        refused = Client(first_name="Rae", last_name="Refused", home_location_id=ids["nyc"])
        none = Client(first_name="Nia", last_name="None", home_location_id=ids["nyc"])
        texter = Client(first_name="Tom", last_name="Texter", home_location_id=ids["nyc"])
        s.add_all([home_only, refused, none, texter])
        await s.flush()
        s.add_all([
            ClientContact(client_id=ids["ann"], kind="phone", value="+12125550101", label="Mobile", is_primary=True),
            ClientContact(client_id=home_only.id, kind="phone", value="+12125550102", label="Home", is_primary=True),
            ClientContact(client_id=refused.id, kind="phone", value="+12125550103", label="Mobile", is_primary=True,
                          unusable=True),
            # Labelled Home in the POS, but he texts us from it: a mobile.
            ClientContact(client_id=texter.id, kind="phone", value="+12125550104", label="Home", is_primary=True),
            Outreach(client_id=texter.id, direction="inbound", state="received", from_address="+12125550104",
                     body="hi"),
        ])
        await s.flush()
        clients = {"ann": ids["ann"], "hal": home_only.id, "rae": refused.id, "nia": none.id, "tom": texter.id}
        for name, cid in clients.items():
            s.add(Task(client_id=cid, location_id=ids["nyc"], title=f"Call {name}", due_at=now, created_at=now))
    async with db.session() as s:
        page = await today(s, OWNER, now)
    views = {v.title.split()[1]: v for v in page.today}
    assert views["ann"].text_to == "+12125550101" and views["ann"].call_to == "+12125550101"
    assert views["hal"].text_to is None and views["hal"].call_to == "+12125550102"
    assert "landline" in (views["hal"].no_text_reason or "")
    assert views["rae"].text_to is None and views["rae"].call_to == "+12125550103"
    assert views["rae"].no_text_reason == "the number cannot take texts"
    assert views["nia"].text_to is None and views["nia"].call_to is None
    assert views["nia"].no_text_reason == "no phone on file"
    assert views["tom"].text_to == "+12125550104"


def test_mobile_or_landline_from_the_numbering_plan_then_the_label() -> None:
    assert line_kind("+447911123456", None) == "mobile"  # UK 07… is mobile by the plan
    assert line_kind("+819012345678", "Home") == "mobile"  # so is Japan's 090…
    assert line_kind("+442079460000", "Mobile") == "landline"  # London 020… is a landline whatever the label
    assert line_kind("+12125550100", "Mobile") == "mobile"  # North America: the plan cannot tell
    assert line_kind("+12125550100", "Fax") == "landline"
    assert line_kind("+12125550100", None) == "unknown"
