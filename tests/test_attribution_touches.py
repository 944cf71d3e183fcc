"""Touches made the real way feed attribution: a text sent through the outbox to the Twilio sandbox,
delivered by the sandbox's signed status callback to Clasp's web app, a reply through the inbound
webhook, and a call ticked off on the Today page — then a sale, and credit from the feed consumer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import col, select

from core.access import Principal
from core.attribution.jobs import consume_feed
from core.automations.today import complete_task
from core.feed import append
from core.models import Attribution, ChangeFeed, Outreach, Sale, SaleLine, Task, utcnow
from core.outreach.outbox import enqueue
from core.outreach.sender import flush
from core.runtime import Runtime
from tests.twilio.fixtures import Sandbox, ThreadServer, World, add_twilio, build_world, serve_clasp, serve_sandbox
from tests.twilio.fixtures import wait_for as wait_until


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with serve_sandbox() as server:
        yield server


@pytest.fixture
def clasp(rt: Runtime) -> Iterator[ThreadServer]:
    with serve_clasp(rt) as server:
        yield server


@pytest.fixture
async def world(rt: Runtime, sandbox: Sandbox, clasp: ThreadServer) -> World:
    w = await build_world(rt)
    w.connector = await add_twilio(rt, sandbox)  # type: ignore[attr-defined]
    return w


async def ring_up(rt: Runtime, world: World, client: str, store: str, amount: int) -> int:
    """A sale as the sync engine leaves it: the rows and the sale's feed row, in one transaction."""
    async with rt.db.transaction() as s:
        sale = Sale(location_id=world.locations[store], client_id=world.clients[client], status="completed",
                    currency="USD", subtotal_minor=amount, total_minor=amount, occurred_at=utcnow())
        s.add(sale)
        await s.flush()
        s.add(SaleLine(sale_id=sale.id, name="Pearl studs", quantity=1, unit_price_minor=amount,  # type: ignore[arg-type]
                       total_minor=amount))
        await append(s, entity="sale", entity_id=sale.id, op="insert", changes={}, origin="connector:1")  # type: ignore[arg-type]
        return sale.id  # type: ignore[return-value]


async def catch_up(rt: Runtime) -> None:
    for _ in range(10):
        if not (await consume_feed(rt, settle=timedelta(0)))["rows"]:
            return
    raise AssertionError("the attribution consumer never caught up")


async def credit_rows(rt: Runtime, sale_id: int, model: str) -> list[Attribution]:
    async with rt.db.session() as s:
        stmt = select(Attribution).where(Attribution.sale_id == sale_id, Attribution.model == model)
        return list((await s.exec(stmt.order_by(col(Attribution.touch)))).all())


async def test_a_delivered_text_and_its_reply_earn_a_sale_at_another_store(
    rt: Runtime, world: World, sandbox: Sandbox, clasp: ThreadServer
) -> None:
    ann = world.clients["ann"]  # home store New York, owned by Maya
    async with rt.db.transaction() as s:
        row = await enqueue(s, client_id=ann, body="The pearls you liked are back", kind="transactional",
                            associate_id=world.associates["maya"], location_id=world.locations["nyc"])
    assert (await flush(rt)).sent == [row.id]

    async def delivered() -> Outreach | None:
        async with rt.db.session() as s:
            found = await s.get(Outreach, row.id)
        return found if found is not None and found.state == "delivered" else None

    text = await wait_until(delivered)
    # The status callback's path appended the touch to the change feed.
    async with rt.db.session() as s:
        feed_rows = (await s.exec(select(ChangeFeed).where(ChangeFeed.entity == "outreach"))).all()
    assert [(f.entity_id, f.changes["state"]) for f in feed_rows] == [(row.id, "delivered")]

    answer = sandbox.text_in(world.phones["ann"], "I'll come by Saturday",
                             f"{clasp.url}/webhooks/twilio/{world.connector}/inbound")  # type: ignore[attr-defined]
    assert answer["status_code"] == 200

    sale = await ring_up(rt, world, "ann", "la", 250000)
    await catch_up(rt)
    [credit] = await credit_rows(rt, sale, "last_touch")
    assert credit.outreach_id == text.id and credit.associate_id == world.associates["maya"]
    assert credit.outreach_location_id == world.locations["nyc"] and credit.sale_location_id == world.locations["la"]
    assert credit.touch_at == text.delivered_at and credit.revenue_minor == 250000

    # A call Leo made from the LA store after the reply: last touch moves to it, while the
    # engagement-weighted model still ranks the replied-to text above the call.
    async with rt.db.transaction() as s:
        task = Task(client_id=ann, associate_id=world.associates["leo"], location_id=world.locations["la"],
                    kind="call", title="Call Ann about the pearls", due_at=utcnow())
        s.add(task)
    async with rt.db.session() as s:
        [inbound] = (await s.exec(select(Outreach).where(Outreach.direction == "inbound"))).all()
    assert inbound.sent_at is not None and text.delivered_at < inbound.sent_at < credit.sale_at  # type: ignore[operator]
    async with rt.db.transaction() as s:
        # Ticked off late, as done between her reply and the sale.
        leo = Principal(user_id=world.users["leo"], role="associate", location_ids=frozenset({world.locations["la"]}),
                        associate_id=world.associates["leo"])
        await complete_task(s, leo, task.id, now=inbound.sent_at + (credit.sale_at - inbound.sent_at) / 2)  # type: ignore[arg-type]
    await catch_up(rt)
    [credit] = await credit_rows(rt, sale, "last_touch")
    assert credit.task_id == task.id and credit.associate_id == world.associates["leo"]
    weighted = {(r.outreach_id, r.task_id): r.weight for r in await credit_rows(rt, sale, "engagement_weighted")}
    assert weighted == {(text.id, None): pytest.approx(0.6), (None, task.id): pytest.approx(0.4)}


async def test_a_task_done_by_sending_its_text_is_one_touch_not_two(
    rt: Runtime, world: World, sandbox: Sandbox, clasp: ThreadServer
) -> None:
    from core.outreach.conversations import compose

    ann = world.clients["ann"]
    async with rt.db.transaction() as s:
        task = Task(client_id=ann, associate_id=world.associates["maya"], location_id=world.locations["nyc"],
                    kind="text", title="Text Ann: the pearls are back", due_at=utcnow())
        s.add(task)
    maya = Principal(user_id=world.users["maya"], role="associate", location_ids=frozenset({world.locations["nyc"]}),
                     associate_id=world.associates["maya"])
    async with rt.db.transaction() as s:
        row = await compose(s, maya, ann, body="The pearls you liked are back", actor="maya", task_id=task.id)
    assert (await flush(rt)).sent == [row.id]

    async def delivered() -> Outreach | None:
        async with rt.db.session() as s:
            found = await s.get(Outreach, row.id)
        return found if found is not None and found.state == "delivered" else None

    text = await wait_until(delivered)
    async with rt.db.session() as s:
        assert (await s.get(Task, task.id)).state == "done"  # type: ignore[union-attr]
    sale = await ring_up(rt, world, "ann", "nyc", 90000)
    await catch_up(rt)
    for model in ("last_touch", "engagement_weighted"):
        credits = await credit_rows(rt, sale, model)
        assert [(c.outreach_id, c.task_id) for c in credits] == [(text.id, None)], model
