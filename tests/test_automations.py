"""Automations end to end on the real database, with a frozen clock across timezones: each occasion
fires once, at the right local moment, for the right clients; dry runs match real runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, select

from core.automations.evaluate import evaluate
from core.automations.review import dry_run, history, preview_for_client
from core.automations.store import AutomationError, configure, ensure_automations
from core.automations.templates import TemplateProblem
from core.models import Automation, Outreach, SyncError, Task
from core.runtime import Runtime
from core.settings import Settings
from tests.automations.fixtures import World, add_sale, automation_runtime, build_world, first_line, setup, utc

BUILTINS = {"birthday", "anniversary", "thank_you", "clean_check", "dormant"}


@pytest.fixture
async def art(settings: Settings, db: object) -> AsyncIterator[Runtime]:
    runtime = automation_runtime(settings)
    yield runtime
    await runtime.close()


@pytest.fixture
async def world(art: Runtime) -> World:
    return await build_world(art)


async def texts(rt: Runtime) -> list[Outreach]:
    async with rt.db.session() as s:
        return list((await s.exec(select(Outreach).order_by(col(Outreach.id)))).all())


async def tasks(rt: Runtime) -> list[Task]:
    async with rt.db.session() as s:
        return list((await s.exec(select(Task).order_by(col(Task.id)))).all())


def who(rows: list[Outreach] | list[Task], w: World) -> set[str]:
    names = {v: k for k, v in w.clients.items()}
    return {names[r.client_id] for r in rows}  # type: ignore[index]


# ------------------------------------------------------------------------------------ registration


async def test_every_builtin_type_gets_one_disabled_automation(art: Runtime) -> None:
    assert BUILTINS <= set(art.registry.automation_types)
    async with art.db.transaction() as s:
        rows = await ensure_automations(s, art.registry)
        again = await ensure_automations(s, art.registry)
    assert {r.name for r in rows} >= BUILTINS and len(rows) == len(again)
    assert not any(r.enabled for r in rows)
    # Nothing enabled: an evaluation does nothing.
    assert await evaluate(art, now=utc("2026-07-01T15:00")) == []


async def test_settings_and_templates_are_validated_before_storing(art: Runtime, world: World) -> None:
    async with art.db.transaction() as s:
        await ensure_automations(s, art.registry)
        with pytest.raises(AutomationError, match="delay_hours"):
            await configure(s, art.registry, "thank_you", settings={"delay_hours": -1})
        with pytest.raises(AutomationError, match="template"):
            await configure(s, art.registry, "birthday", template="Hi {{ client.first_name ")
        with pytest.raises(AutomationError, match="unknown location"):
            await configure(s, art.registry, "birthday", location_ids=[999])
        row = await configure(s, art.registry, "clean_check", settings={"every_months.Earrings": 9})
    assert row.settings["every_months"]["earrings"] == 9 and row.settings["every_months"]["rings"] == 6


# --------------------------------------------------------------------------------------- birthdays


async def test_birthday_fires_once_at_the_clients_local_time(art: Runtime, world: World) -> None:
    await setup(art, "birthday", action="send", settings={"send_time": "10:00"})
    # 00:30 UTC on July 1 is 09:30 in Tokyo and still June 30 in the Americas: nobody yet.
    assert (await evaluate(art, now=utc("2026-07-01T00:30")))[0].created == 0
    # 01:00 UTC = 10:00 in Tokyo.
    run = (await evaluate(art, now=utc("2026-07-01T01:00")))[0]
    assert run.created == 1 and who(await texts(art), world) == {"cleo"}
    # 14:00 UTC = 10:00 in New York (EDT): ann, dan (no consent: the outbox will skip it), not lea.
    await evaluate(art, now=utc("2026-07-01T14:00"))
    assert who(await texts(art), world) == {"cleo", "ann", "dan"}
    # 17:00 UTC = 10:00 in Los Angeles.
    await evaluate(art, now=utc("2026-07-01T17:00"))
    rows = await texts(art)
    assert who(rows, world) == {"cleo", "ann", "dan", "ben"}
    # Re-runs, the next day, anything: nothing fires twice.
    for at in ("2026-07-01T17:05", "2026-07-01T23:00", "2026-07-02T12:00"):
        assert sum(r.created for r in await evaluate(art, now=utc(at))) == 0
    assert len(await texts(art)) == 4
    ann = next(r for r in rows if r.client_id == world.clients["ann"])
    assert ann.kind == "marketing" and ann.state == "pending" and ann.automation_id is not None
    assert ann.occasion_key is not None and ann.occasion_key.endswith(f"c{world.clients['ann']}:birthday:2026")
    assert ann.due_at == utc("2026-07-01T14:00") and ann.location_id == world.locations["nyc"]
    assert ann.body.startswith("Happy birthday, Ann!") and "Fifth Avenue" in ann.body
    # Next year it is a new occasion.
    await evaluate(art, now=utc("2027-07-01T14:00"))
    assert {r.occasion_key.rsplit(":", 1)[1] for r in await texts(art) if r.client_id == world.clients["ann"]} == {  # type: ignore[union-attr]
        "2026",
        "2027",
    }


async def test_a_leap_day_birthday_falls_on_feb_28_in_other_years(art: Runtime, world: World) -> None:
    await setup(art, "birthday", action="task")
    await evaluate(art, now=utc("2027-02-28T16:00"))  # 11:00 EST
    assert who(await tasks(art), world) == {"lea"}
    await evaluate(art, now=utc("2027-03-01T16:00"))
    assert len(await tasks(art)) == 1
    # 2028 is a leap year: not on the 28th, on the 29th.
    await evaluate(art, now=utc("2028-02-28T16:00"))
    assert len(await tasks(art)) == 1
    await evaluate(art, now=utc("2028-02-29T16:00"))
    rows = await tasks(art)
    assert len(rows) == 2 and rows[1].occasion_key.endswith("birthday:2028")  # type: ignore[union-attr]
    assert rows[1].title == "Birthday: Lea Client" and rows[1].state == "open"


async def test_anniversary_uses_its_own_date_and_counts_the_years(art: Runtime, world: World) -> None:
    await setup(art, "anniversary", action="send")
    await evaluate(art, now=utc("2026-07-01T18:00"))
    rows = await texts(art)
    assert who(rows, world) == {"ben"} and "11 years" in rows[0].body


async def test_scope_limits_occasions_to_some_locations(art: Runtime, world: World) -> None:
    await setup(art, "birthday", action="send", location_ids=[world.locations["tokyo"], world.locations["la"]])
    await evaluate(art, now=utc("2026-07-01T02:00"))  # 11:00 in Tokyo
    await evaluate(art, now=utc("2026-07-01T20:00"))  # 13:00 in LA, 16:00 in New York
    assert who(await texts(art), world) == {"cleo", "ben"}


# ---------------------------------------------------------------------------------------- thank-you


async def test_thank_you_after_n_hours_never_for_walk_ins_or_refunds(art: Runtime, world: World) -> None:
    await setup(art, "thank_you", action="task", settings={"delay_hours": 2})
    sold = await add_sale(art, world, client="ann", store="nyc", at="2026-05-10T15:00", associate="maya")
    await add_sale(art, world, client=None, store="nyc", at="2026-05-10T15:10", associate="maya")  # walk-in
    await add_sale(art, world, client="ben", store="la", at="2026-05-10T15:20", total=-50000,
                   lines=[("ring", -1)], refund_of=await first_line(art, sold))  # a refund
    await add_sale(art, world, client="cleo", store="tokyo", at="2026-05-10T15:30", status="voided")
    await add_sale(art, world, client="dan", store="nyc", at="2026-05-10T15:40", total=20000,
                   lines=[("necklace", 1), ("ring", -1)])  # an exchange with a returned piece
    assert (await evaluate(art, now=utc("2026-05-10T16:59")))[0].created == 0  # not 2 hours yet
    run = (await evaluate(art, now=utc("2026-05-10T18:00")))[0]
    rows = await tasks(art)
    assert run.created == 1 and who(rows, world) == {"ann"}
    assert rows[0].title == "Thank Ann Client for their purchase" and "Fifth Avenue" in (rows[0].body or "")
    assert rows[0].due_at == utc("2026-05-10T17:00")
    assert (await evaluate(art, now=utc("2026-05-10T19:00")))[0].created == 0


# ---------------------------------------------------------------------------------------- dormant


async def test_dormant_counts_purchases_at_every_store(art: Runtime, world: World) -> None:
    await setup(art, "dormant", action="task", settings={"days": 180, "catch_up_days": 30})
    # Ann bought in New York long ago, but recently in Los Angeles: not dormant.
    await add_sale(art, world, client="ann", store="nyc", at="2025-12-01T15:00", associate="maya")
    await add_sale(art, world, client="ann", store="la", at="2026-05-01T15:00", associate="leo")
    # Ben's last purchase anywhere is 185 days old; Cleo's 400 days (long past the catch-up window).
    await add_sale(art, world, client="ben", store="nyc", at="2025-11-26T15:00", associate="sam")
    await add_sale(art, world, client="cleo", store="tokyo", at="2025-04-25T03:00", associate="kenji")
    now = utc("2026-05-30T15:00")
    preview = await dry_run(art, "dormant", now=now)
    run = (await evaluate(art, now=now))[0]
    rows = await tasks(art)
    assert who(rows, world) == {"ben"} and run.created == preview.created == 1
    # The occasion belongs to Ben's home store, though he last bought elsewhere.
    assert rows[0].location_id == world.locations["la"] and "November 26, 2025" in rows[0].title
    # A new purchase restarts the clock: dormant again later is a new occasion.
    await add_sale(art, world, client="ben", store="la", at="2026-06-01T15:00", associate="leo")
    assert (await evaluate(art, now=utc("2026-07-01T15:00")))[0].created == 0
    assert (await evaluate(art, now=utc("2026-12-01T15:00")))[0].created == 1


# ---------------------------------------------------------------------------------- clean and check


async def test_clean_and_check_every_n_months_per_piece_by_category(art: Runtime, world: World) -> None:
    await setup(art, "clean_check", action="task", settings={"every_months": {"Rings": 6}, "catch_up_days": 14})
    sale = await add_sale(art, world, client="ann", store="nyc", at="2026-01-10T15:00", associate="maya",
                          lines=[("ring", 1), ("necklace", 1), ("watch", 1)])
    assert (await evaluate(art, now=utc("2026-07-09T15:00")))[0].created == 0  # not six months yet
    await evaluate(art, now=utc("2026-07-12T15:00"))
    rows = await tasks(art)
    assert len(rows) == 1 and rows[0].title.endswith("Gold ring") and rows[0].kind == "call"
    assert (await evaluate(art, now=utc("2026-07-20T15:00")))[0].created == 0
    # Six months later: the second period.
    await evaluate(art, now=utc("2027-01-11T15:00"))
    assert [t.occasion_key.rsplit(":", 1)[1] for t in await tasks(art)] == ["1", "2"]  # type: ignore[union-attr]
    # A returned ring gets no more reminders.
    await add_sale(art, world, client="ann", store="nyc", at="2027-02-01T15:00", total=-125000,
                   lines=[("ring", -1)], refund_of=await first_line(art, sale))
    assert (await evaluate(art, now=utc("2027-07-11T15:00")))[0].created == 0


# ----------------------------------------------------------------------------- once, and dry runs


async def test_two_concurrent_evaluations_fire_each_occasion_once(
    art: Runtime, world: World, settings: Settings
) -> None:
    await setup(art, "birthday", action="send")
    await setup(art, "thank_you", action="task", settings={"delay_hours": 0})
    for i, client in enumerate(("ann", "ben", "cleo", "dan")):
        await add_sale(art, world, client=client, store="nyc", at=f"2026-07-01T1{i}:00", associate="maya")
    other = automation_runtime(settings)
    try:
        now = utc("2026-07-01T20:00")
        first, second = await asyncio.gather(evaluate(art, now=now), evaluate(other, now=now))
    finally:
        await other.close()
    created = sum(r.created for r in first + second)
    # Birthdays: New York and Los Angeles (in Tokyo July 1 is over); thank-yous: all four sales.
    assert who(await texts(art), world) == {"ann", "ben", "dan"} and len(await tasks(art)) == 4 and created == 7
    keys = [r.occasion_key for r in await texts(art)] + [t.occasion_key for t in await tasks(art)]
    assert len(set(keys)) == len(keys) == 7


async def test_dry_run_counts_per_location_equal_what_the_real_run_creates(art: Runtime, world: World) -> None:
    await setup(art, "thank_you", action="send", settings={"delay_hours": 1})
    async with art.db.transaction() as s:
        await configure(s, art.registry, "birthday", action="task")  # disabled: a dry run still works
    for i, (client, store) in enumerate((("ann", "nyc"), ("ben", "la"), ("cleo", "tokyo"), ("dan", "nyc"))):
        await add_sale(art, world, client=client, store=store, at=f"2026-07-01T0{i}:00")
    now = utc("2026-07-01T19:00")
    before = await dry_run(art, "thank_you", now=now)
    birthdays = await dry_run(art, "birthday", now=now)
    assert await texts(art) == [] and await tasks(art) == []
    assert before.per_location == {world.locations["nyc"]: 2, world.locations["la"]: 1, world.locations["tokyo"]: 1}
    assert birthdays.created == 3 and len(birthdays.samples) == 3  # Tokyo is already on July 2
    run = (await evaluate(art, now=now))[0]
    created = Counter(r.location_id for r in await texts(art))
    assert run.per_location == before.per_location == dict(created)
    assert (await dry_run(art, "thank_you", now=now)).created == 0


# ---------------------------------------------------------------------------------- template errors


async def test_a_template_error_sends_nothing_and_lands_in_the_error_queue(art: Runtime, world: World) -> None:
    await setup(art, "birthday", action="send", template="Happy birthday {{ client.nickname }}!")
    now = utc("2026-07-01T15:00")
    run = (await evaluate(art, now=now))[0]
    assert run.created == 0 and run.errors == 2 and await texts(art) == []
    await evaluate(art, now=now)  # again: still one error row, with a second attempt
    async with art.db.session() as s:
        errors = list((await s.exec(select(SyncError))).all())
    assert len(errors) == 1 and errors[0].stage == "automation" and errors[0].state == "open"
    assert "nickname" in errors[0].reason and errors[0].attempts == 2
    assert errors[0].payload["count"] == 2 and errors[0].context["template"].startswith("Happy birthday")
    # Fixed: the same occasions fire, and the error is closed.
    async with art.db.transaction() as s:
        await configure(s, art.registry, "birthday", template="Happy birthday {{ client.first_name }}!")
    assert (await evaluate(art, now=utc("2026-07-01T15:10")))[0].created == 2
    async with art.db.session() as s:
        assert (await s.exec(select(SyncError))).one().state == "replayed"


async def test_the_sandbox_refuses_unsafe_templates(art: Runtime, world: World) -> None:
    await setup(art, "birthday", action="send", template="{{ client.__class__.__mro__ }}")
    run = (await evaluate(art, now=utc("2026-07-01T15:00")))[0]
    assert run.created == 0 and run.errors == 2


async def test_preview_with_a_real_client_and_history(art: Runtime, world: World) -> None:
    await add_sale(art, world, client="ann", store="nyc", at="2026-06-01T15:00", associate="maya")
    shown = await preview_for_client(art, "thank_you", world.clients["ann"], now=utc("2026-06-02T15:00"))
    assert shown.body.startswith("Hi Ann, thank you for visiting Fifth Avenue and choosing the Gold ring")
    assert shown.title == "Thank Ann Client for their purchase"
    with pytest.raises(TemplateProblem):
        await preview_for_client(art, "birthday", world.clients["ann"], template="{{ nope }}")
    await setup(art, "birthday", action="send")
    await evaluate(art, now=utc("2026-07-01T15:00"))
    async with art.db.session() as s:
        h = await history(s, "birthday")
    assert h.counts == {"pending": 2}
    assert {r["client_id"] for r in h.recent} == {world.clients["ann"], world.clients["dan"]}
    async with art.db.session() as s:
        assert (await s.exec(select(Automation).where(Automation.name == "birthday"))).one().enabled


async def test_a_late_synced_sale_is_still_thanked_through_its_clients_evaluation(art: Runtime, world: World) -> None:
    await setup(art, "thank_you", action="task", settings={"delay_hours": 2, "catch_up_hours": 72})
    assert (await evaluate(art, now=utc("2026-05-10T12:00")))[0].created == 0
    assert (await evaluate(art, now=utc("2026-05-11T12:00")))[0].created == 0
    # The POS sends yesterday's sale only now: the periodic run already looked past its due time, so
    # it does not scan back for it; the change feed's evaluation of that client does.
    await add_sale(art, world, client="ann", store="nyc", at="2026-05-10T15:00", associate="maya")
    assert (await evaluate(art, now=utc("2026-05-11T12:05")))[0].created == 0
    run = (await evaluate(art, now=utc("2026-05-11T12:05"), client_ids=[world.clients["ann"]]))[0]
    assert run.created == 1 and who(await tasks(art), world) == {"ann"}


async def test_an_automation_error_can_be_replayed_after_the_fix(art: Runtime, world: World) -> None:
    from core.automations.review import replay_error

    await setup(art, "birthday", action="task", template="{{ client.first_name }}, {{ associate.first_name }}")
    await evaluate(art, now=utc("2026-07-01T15:00"))  # nobody owns Ann and Dan: no associate to name
    async with art.db.session() as s:
        error = (await s.exec(select(SyncError))).one()
    assert "has no attribute 'first_name'" in error.reason and await tasks(art) == []
    assert (await replay_error(art, error.id, now=utc("2026-07-01T15:30")))[0] is False  # type: ignore[arg-type]
    async with art.db.transaction() as s:
        await configure(s, art.registry, "birthday",
                        template="{{ client.first_name }}{% if associate %}, {{ associate.first_name }}{% endif %}")
    ok, message = await replay_error(art, error.id, now=utc("2026-07-01T15:40"))  # type: ignore[arg-type]
    assert ok and message == "2 occasion(s) fired" and who(await tasks(art), world) == {"ann", "dan"}
    async with art.db.session() as s:
        assert (await s.get(SyncError, error.id)).state == "replayed"  # type: ignore[union-attr]
