"""Automations meeting the rest of Clasp: the outbox's send rules, client owners, the change feed,
the Today page and the command line — on the real database, the real outbox and the Twilio sandbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta

import pytest
from sqlmodel import col, select

from core.access import Principal
from core.automations.evaluate import evaluate
from core.automations.jobs import consume_feed
from core.automations.owners import assign_owners
from core.automations.store import AutomationError, save_org_settings
from core.automations.today import complete_task, manager_completion, snooze_task, today
from core.feed import append
from core.models import Associate, ChangeFeed, Client, Outreach, Task
from core.outreach.sender import flush
from core.runtime import Runtime
from core.settings import Settings
from tests.automations.fixtures import World, add_sale, automation_runtime, build_world, setup, utc
from tests.twilio.fixtures import Sandbox, add_twilio, closed_port_url, serve_sandbox


@pytest.fixture
async def art(settings: Settings, db: object) -> AsyncIterator[Runtime]:
    runtime = automation_runtime(settings)
    yield runtime
    if runtime.redis is not None:
        await runtime.redis.aclose()
    await runtime.close()


@pytest.fixture
async def world(art: Runtime) -> World:
    return await build_world(art)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with serve_sandbox() as server:
        yield server


async def outreach_of(rt: Runtime, client_id: int) -> list[Outreach]:
    async with rt.db.session() as s:
        stmt = select(Outreach).where(Outreach.client_id == client_id).order_by(col(Outreach.id))
        return list((await s.exec(stmt)).all())


async def owner_of(rt: Runtime, client_id: int) -> int | None:
    async with rt.db.session() as s:
        client = await s.get(Client, client_id)
        assert client is not None
        return client.owner_associate_id


# ------------------------------------------------------------------------------- the outbox's rules


async def test_texts_obey_consent_quiet_hours_and_the_cap_through_the_outbox(
    art: Runtime, world: World, sandbox: Sandbox
) -> None:
    art.settings.base_url = closed_port_url()
    await add_twilio(art, sandbox)
    # 07:00 local is before the stores' 09:00–20:00 window.
    await setup(art, "birthday", action="send", settings={"send_time": "07:00"})
    await setup(art, "thank_you", action="send", settings={"delay_hours": 0})
    await evaluate(art, now=utc("2026-07-01T11:00"))  # 07:00 in New York
    ann, dan = world.clients["ann"], world.clients["dan"]
    report = await flush(art, now=utc("2026-07-01T11:00"))
    [ann_text] = await outreach_of(art, ann)
    [dan_text] = await outreach_of(art, dan)
    assert ann_text.state == "pending" and ann_text.due_at == utc("2026-07-01T13:00")  # quiet hours: 09:00 EDT
    assert dan_text.state == "skipped" and "consent" in (dan_text.state_reason or "")
    assert report.sent == [] and sandbox.messages(direction="outbound-api") == []
    await flush(art, now=utc("2026-07-01T13:00"))
    sent = sandbox.messages(direction="outbound-api")
    assert [m["to"] for m in sent] == ["+12125550134"] and sent[0]["body"].startswith("Happy birthday, Ann!")
    # A purchase the same afternoon: the thank-you is queued, and the 24 h marketing cap skips it.
    await add_sale(art, world, client="ann", store="nyc", at="2026-07-01T18:00", associate="maya")
    await evaluate(art, now=utc("2026-07-01T18:05"))
    await flush(art, now=utc("2026-07-01T18:05"))
    thanks = (await outreach_of(art, ann))[-1]
    assert thanks.occasion_key and ":thank_you:sale:" in thanks.occasion_key
    assert thanks.state == "skipped" and "frequency cap" in (thanks.state_reason or "")
    assert len(sandbox.messages(direction="outbound-api", to="+12125550134")) == 1


# ------------------------------------------------------------------------------------------- owners


async def test_owner_is_the_last_or_first_seller_and_departures_are_reassigned(art: Runtime, world: World) -> None:
    ann, ben = world.clients["ann"], world.clients["ben"]
    await add_sale(art, world, client="ann", store="nyc", at="2026-01-01T15:00", associate="sam")
    await add_sale(art, world, client="ann", store="nyc", at="2026-03-01T15:00", associate="maya")
    await add_sale(art, world, client="ben", store="la", at="2026-02-01T15:00", associate="leo")
    await add_sale(art, world, client=None, store="nyc", at="2026-04-01T15:00", associate="sam")  # sam sold last in NYC
    async with art.db.transaction() as s:
        assert await assign_owners(s) == 2
    assert await owner_of(art, ann) == world.associates["maya"] and await owner_of(art, ben) == world.associates["leo"]
    async with art.db.transaction() as s:
        await save_org_settings(s, {"owner_rule": "first_seller"})
        await assign_owners(s)
    assert await owner_of(art, ann) == world.associates["sam"]
    async with art.db.transaction() as s:
        await save_org_settings(s, {"owner_rule": "last_seller"})
        await assign_owners(s)
        assert await assign_owners(s) == 0  # idempotent
    # Ann's open birthday task sits with Maya; Maya leaves: clients and tasks go to Sam, NYC's most
    # recent active seller. Leo leaves and LA has no other seller: Ben is unassigned.
    await setup(art, "birthday", action="task")
    await evaluate(art, now=utc("2026-07-01T15:00"))
    async with art.db.session() as s:
        task = (await s.exec(select(Task).where(Task.client_id == ann))).one()
    assert task.associate_id == world.associates["maya"]
    async with art.db.transaction() as s:
        for key in ("maya", "leo"):
            a = await s.get(Associate, world.associates[key])
            assert a is not None
            a.active = False
            s.add(a)
            await append(s, entity="associate", entity_id=a.id, op="update", changes={"active": False}, origin="test")  # type: ignore[arg-type]
    async with art.db.transaction() as s:
        await assign_owners(s)
    assert await owner_of(art, ann) == world.associates["sam"] and await owner_of(art, ben) is None
    async with art.db.session() as s:
        assert (await s.get(Task, task.id)).associate_id == world.associates["sam"]  # type: ignore[union-attr]
        changes = (await s.exec(select(ChangeFeed).where(ChangeFeed.origin == "automations:owners"))).all()
    assert {c.entity_id for c in changes} == {ann, ben}


async def test_the_change_feed_keeps_owners_current_and_fires_for_the_clients_it_touched(
    art: Runtime, world: World
) -> None:
    from datetime import UTC, datetime

    await setup(art, "thank_you", action="task", settings={"delay_hours": 0, "catch_up_hours": 24 * 30})
    assert (await consume_feed(art))["clients"] == 0  # nothing in the feed yet
    now = datetime.now(UTC)
    sale = await add_sale(art, world, client="cleo", store="tokyo", at=(now - timedelta(minutes=5)).isoformat()[:16],
                          associate="kenji")
    async with art.db.transaction() as s:
        await append(s, entity="sale", entity_id=sale, op="insert", changes={}, origin="connector:1")
        # The feed only hands out rows older than its settle window.
        row = (await s.exec(select(ChangeFeed).order_by(col(ChangeFeed.id).desc()))).first()
        assert row is not None
        row.created_at = now - timedelta(minutes=1)
        s.add(row)
    result = await consume_feed(art)
    assert result["clients"] == 1 and result["owners_changed"] == 1
    assert await owner_of(art, world.clients["cleo"]) == world.associates["kenji"]
    async with art.db.session() as s:
        [task] = (await s.exec(select(Task))).all()
    assert task.client_id == world.clients["cleo"] and task.associate_id == world.associates["kenji"]
    assert (await consume_feed(art))["clients"] == 0


# ---------------------------------------------------------------------------------------- Today page


async def test_today_groups_completes_snoozes_and_counts_for_managers(art: Runtime, world: World) -> None:
    maya = Principal(user_id=None, role="associate", location_ids=frozenset({world.locations["nyc"]}),
                     associate_id=world.associates["maya"], email="maya@example.com")
    sam = Principal(user_id=None, role="associate", location_ids=frozenset({world.locations["nyc"]}),
                    associate_id=world.associates["sam"], email="sam@example.com")
    leo = Principal(user_id=None, role="associate", location_ids=frozenset({world.locations["la"]}),
                    associate_id=world.associates["leo"])
    manager = Principal(user_id=None, role="manager", location_ids=frozenset({world.locations["nyc"]}))
    for client in ("ann", "dan", "lea"):
        await add_sale(art, world, client=client, store="nyc", at="2026-02-01T15:00", associate="maya")
    await add_sale(art, world, client="ben", store="la", at="2026-02-01T15:00", associate="leo")
    async with art.db.transaction() as s:
        await assign_owners(s)
    await setup(art, "birthday", action="task")
    await evaluate(art, now=utc("2026-06-30T20:00"))  # nobody
    await evaluate(art, now=utc("2026-07-01T15:00"))  # ann and dan (NYC), ben (LA 08:00: not yet)
    await evaluate(art, now=utc("2026-07-01T18:00"))  # ben
    noon = utc("2026-07-01T16:00")
    page = await today(art.db.sessionmaker(), maya, noon) if False else None
    async with art.db.session() as s:
        page = await today(s, maya, noon)
        assert [v.client["first_name"] for v in page.today] == ["Ann", "Dan"]  # type: ignore[index]
        view = page.today[0]
        assert view.last_purchase is not None and view.last_purchase["location"] == "Fifth Avenue"
        assert view.client["birthday"] == date(1985, 7, 1) and view.client["phone"] == "+12125550134"  # type: ignore[index]
        assert (await today(s, sam, noon)).counts() == {"today": 0, "overdue": 0, "upcoming": 0, "done": 0}
        # Los Angeles keeps a communal store book: Leo sees the store's tasks.
        assert [v.client["first_name"] for v in (await today(s, leo, noon)).today] == ["Ben"]  # type: ignore[index]
    ann_task, dan_task = page.today[0].id, page.today[1].id
    async with art.db.transaction() as s:
        await complete_task(s, maya, ann_task, now=noon)
        await snooze_task(s, maya, dan_task, utc("2026-07-03T14:00"), now=noon)
        with pytest.raises(AutomationError):
            await complete_task(s, sam, dan_task, now=noon)  # not Sam's, and NYC is "own" mode
        with pytest.raises(AutomationError):
            await complete_task(s, maya, ann_task, now=noon)  # already done
    async with art.db.session() as s:
        page = await today(s, maya, noon)
        assert page.counts() == {"today": 0, "overdue": 0, "upcoming": 1, "done": 1}
        # Two days later the snooze is over and the task is due again; nothing is overdue yet.
        later = await today(s, maya, utc("2026-07-03T15:00"))
        assert [v.id for v in later.today] == [dan_task] and later.done == []
        stats = await manager_completion(s, manager, date(2026, 7, 1))
    assert [(r.associate, r.due, r.done, r.open) for r in stats] == [("Maya Staff", 2, 1, 1)]
    assert stats[0].rate == 0.5


# ---------------------------------------------------------------------------------------------- CLI


# Until the lead registers the group in core.cli and the plugin's entry point in pyproject, the real
# `clasp` main runs with both added the way those two lines will add them.
MAIN = (
    "import sys; from core.cli import cli, main; from core.cli.automations import automations; "
    "cli.commands.setdefault('automations', automations); main(sys.argv[1:])"
)


@pytest.fixture
def clasp_automations(monkeypatch: pytest.MonkeyPatch, settings: Settings):  # type: ignore[no-untyped-def]
    import importlib.metadata
    import os
    import subprocess
    import sys
    from pathlib import Path

    if "plugins.automations.plugin" not in {ep.value for ep in importlib.metadata.entry_points(group="clasp")}:
        names = sorted(ep.name for ep in importlib.metadata.entry_points(group="clasp"))
        monkeypatch.setenv("CLASP_PLUGINS", ",".join([*names, "plugins.automations.plugin"]))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ}, cwd=Path(__file__).resolve().parent.parent)

    return run


async def test_cli_lists_configures_previews_enables_and_runs(
    art: Runtime, world: World, clasp_automations  # type: ignore[no-untyped-def]
) -> None:
    clasp_cli = clasp_automations
    await add_sale(art, world, client="ann", store="nyc", at="2026-07-01T12:00", associate="maya")
    listed = clasp_cli("automations", "list")
    assert listed.returncode == 0, listed.stderr
    assert "birthday" in listed.stdout and "disabled" in listed.stdout and "thank_you" in listed.stdout
    bad = clasp_cli("automations", "configure", "thank_you", "--set", "delay_hours=soon")
    assert bad.returncode == 1 and "delay_hours" in bad.stderr
    ok = clasp_cli("automations", "configure", "thank_you", "--set", "delay_hours=1", "--action", "send")
    assert ok.returncode == 0, ok.stderr
    shown = clasp_cli("automations", "preview", "thank_you", "--at", "2026-07-01T14:00")
    assert shown.returncode == 0, shown.stderr
    assert "would create 1 text(s)" in shown.stdout and "Fifth Avenue" in shown.stdout
    one = clasp_cli("automations", "preview", "birthday", "--client", str(world.clients["ann"]))
    assert one.returncode == 0 and "Happy birthday, Ann!" in one.stdout
    assert clasp_cli("automations", "enable", "thank_you").returncode == 0
    ran = clasp_cli("automations", "run", "--at", "2026-07-01T14:00")
    assert ran.returncode == 0, ran.stderr
    assert "thank_you: created 1 text(s)" in ran.stdout
    again = clasp_cli("automations", "run", "--at", "2026-07-01T14:30")
    assert "thank_you: created 0 text(s)" in again.stdout
    hist = clasp_cli("automations", "history", "thank_you")
    assert "1 pending" in hist.stdout
    rows = [json.loads(line) for line in clasp_cli("automations", "list", "--json").stdout.splitlines()]
    assert {r["name"]: r["enabled"] for r in rows}["thank_you"] is True
    assert clasp_cli("automations", "enable", "nope").returncode == 1
