"""Full and incremental reads of every Lightspeed R-Series stream against the sandbox's own truth."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.lightspeed_r.fixtures import (
    SMALL,
    add_lightspeed_connector,
    authorize,
    memory_connector,
    read_stream,
    serve_sandbox,
    stream_named,
)


@pytest.fixture(scope="module")
def sandbox():
    with serve_sandbox() as server:
        yield server


async def test_full_read_of_every_stream_matches_the_generators_truth(rt, sandbox) -> None:
    ctx = await add_lightspeed_connector(rt, sandbox, history_years=SMALL["years"])
    await authorize(ctx)
    streams = {s.name: s for s in rt.registry.connector_type("lightspeed_r").streams(ctx)}
    assert list(streams) == ["shops", "employees", "customers", "items", "sales"]
    truth = sandbox.truth

    decoded = {}
    for name, stream in streams.items():
        payloads, state, pages = await read_stream(stream)
        assert state.get("next") is None and pages >= 1
        decoded[name] = [stream.decode(p) for p in payloads]

    assert len(decoded["shops"]) == truth["shops"]
    assert {s.timezone for s in decoded["shops"]} == {"America/New_York", "America/Chicago"}
    assert len(decoded["employees"]) == truth["employees"]
    clients = decoded["customers"]
    assert len({c.external_id for c in clients}) == truth["customer_records"] == len(clients)
    assert sum(c.archived for c in clients) == truth["archived_customers"]
    assert sum(c.birthday is not None for c in clients) == truth["customers_with_birthday"]
    assert sum(c.anniversary is not None for c in clients) == truth["customers_with_anniversary"]
    products = decoded["items"]
    assert len(products) == truth["items"]
    assert sum(p.image_missing for p in products) == truth["items_image_missing"]
    # The sandbox serves the pictures its Image rows point at (it cannot reach Cloudinary).
    url = next(u for p in products for u in p.image_urls)
    assert url.startswith(sandbox.url + "/_sandbox/images/")
    async with httpx.AsyncClient(timeout=10) as http:
        picture = await http.get(url)
    assert picture.status_code == 200 and picture.headers["content-type"].startswith("image/svg+xml")
    assert picture.content.startswith(b"<svg")

    sales = decoded["sales"]
    assert len(sales) == truth["sales"]  # the older ones are outside history_years
    assert len({s.external_id for s in sales}) == len(sales)
    status = Counter(s.status for s in sales)
    assert status["completed"] == truth["completed"]
    assert status["voided"] == truth["voided"] + truth["abandoned"]
    assert status["layaway"] == truth["layaway"]
    assert status["quote"] == truth["quote"]
    completed = [s for s in sales if s.status == "completed"]
    assert sum(s.total_minor for s in completed) == truth["completed_total_minor"]
    assert sum(s.tax_minor for s in completed) == truth["completed_tax_minor"]
    refunds = [s for s in sales if any(line.quantity < 0 for line in s.lines)]
    assert len(refunds) == truth["refund_sales"]
    assert sum(s.total_minor for s in refunds) == truth["refund_total_minor"]
    assert sum(1 for s in sales if s.client_external_id is None) == truth["walk_ins"]
    assert sum(1 for s in sales if s.channel == "ecom") == truth["ecom"]
    assert sum(len(s.lines) for s in sales) == truth["sale_lines"]
    line_ids = {line.external_id for s in sales for line in s.lines}
    parents = [line.parent_line_external_id for s in refunds for line in s.lines]
    assert parents and all(p in line_ids for p in parents)


async def test_backfill_through_the_engine_lands_every_sale_once_and_unifies_people(rt) -> None:
    """The issue's Done-when, on a small chain: totals, refunds and walk-ins match the generator's
    truth, and each person registered at two shops ends up as one client."""
    from sqlalchemy import func
    from sqlmodel import select

    from core.models import Client, ExternalRef, Sale, SaleLine
    from core.sync import run_sync

    with serve_sandbox(shops=3, clients=60, years=2, sales_per_day=0.4, seed=5) as server:
        ctx = await add_lightspeed_connector(rt, server, name="ls-demo", history_years=2)
        await authorize(ctx)
        truth = server.truth
        run = await run_sync(rt, "ls-demo", full=True)
        assert run.status == "succeeded", run.message
        again = await run_sync(rt, "ls-demo")  # an incremental run right after changes nothing
        assert again.status == "succeeded"

        async with rt.db.session() as session:
            sales = (await session.exec(select(Sale))).all()
            assert len(sales) == truth["sales"]
            completed = [s for s in sales if s.status == "completed"]
            assert len(completed) == truth["completed"]
            assert sum(s.total_minor for s in completed) == truth["completed_total_minor"]
            assert sum(1 for s in sales if s.client_id is None) == truth["walk_ins"]
            assert sum(1 for s in sales if s.channel == "ecom") == truth["ecom"]
            assert sum(1 for s in sales if s.status == "layaway") == truth["layaway"]
            lines = (await session.exec(select(SaleLine))).all()
            assert len(lines) == truth["sale_lines"]
            refund_lines = [line for line in lines if line.quantity < 0]
            assert len(refund_lines) == truth["refund_lines"]
            assert all(line.parent_line_id is not None for line in refund_lines)
            refund_sale_ids = {line.sale_id for line in refund_lines}
            assert sum(s.total_minor for s in sales if s.id in refund_sale_ids) == truth["refund_total_minor"]

            live = (await session.exec(select(func.count()).select_from(Client).where(
                Client.merged_into_id.is_(None)))).one()
            assert live == truth["distinct_persons"]
            refs = (await session.exec(select(ExternalRef).where(ExternalRef.object_type == "client"))).all()
            merged = {c.id: c.merged_into_id for c in (await session.exec(select(Client))).all()}

        def survivor(client_id: int) -> int:
            while merged.get(client_id):
                client_id = merged[client_id]
            return client_id

        client_of = {r.external_id: survivor(r.unified_id) for r in refs}
        people: dict[int, set[int]] = {}
        for customer_id, person in truth["person_of_customer"].items():
            people.setdefault(person, set()).add(client_of[customer_id])
        assert all(len(clients) == 1 for clients in people.values())
        assert len({next(iter(c)) for c in people.values()}) == truth["distinct_persons"]


async def test_a_killed_backfill_resumes_from_its_checkpoint(sandbox) -> None:
    ctx = await memory_connector(sandbox, history_years=SMALL["years"])
    sales = stream_named(ctx, "sales")
    all_ids = {p["saleID"] for p in (await read_stream(sales))[0]}
    full_pages = -(-len(all_ids) // 100)
    assert full_pages >= 3

    first, state, pages = await read_stream(sales, max_pages=2)  # the run dies after two pages
    assert pages == 2 and state["next"] and state["pass"] == "backfill"
    sandbox.admin("POST", "/_sandbox/stats/reset")
    rest, final, more = await read_stream(sales, state)  # the next run, from the saved checkpoint
    assert more == full_pages - 2  # nothing read twice
    assert sandbox.stats()["requests"] == more
    assert {p["saleID"] for p in first} | {p["saleID"] for p in rest} == all_ids
    assert final["next"] is None and final["cursor"]


async def test_a_stale_cursor_url_restarts_from_the_last_timestamp(sandbox) -> None:
    ctx = await memory_connector(sandbox, history_years=SMALL["years"])
    sales = stream_named(ctx, "sales")
    _, state, _ = await read_stream(sales, max_pages=1)
    broken = {**state, "next": state["next"].split("after=")[0] + "after=not-a-cursor"}
    rest, final, _ = await read_stream(sales, broken)
    assert rest and final["next"] is None


async def test_incremental_runs_see_edits_new_shops_and_nothing_else() -> None:
    with serve_sandbox() as sandbox:  # its own: this test changes the data
        await _incremental(sandbox)


async def _incremental(sandbox) -> None:
    ctx = await memory_connector(sandbox, history_years=SMALL["years"])
    customers = stream_named(ctx, "customers")
    shops = stream_named(ctx, "shops")
    everyone, state, _ = await read_stream(customers)
    shop_rows, shop_state, _ = await read_stream(shops)

    quiet, state, _ = await read_stream(customers, state)
    assert len(quiet) < 5  # only the rows at the cursor boundary come back (the engine skips them)

    target = everyone[3]["customerID"]
    sandbox.admin("PATCH", f"/_sandbox/customers/{target}", {"email": "New.Address@Example.com",
                                                              "phone": "(212) 555-0188"})
    new_shop = sandbox.admin("POST", "/_sandbox/shops", {"name": "Maison Clasp Union Square",
                                                         "timeZone": "America/Los_Angeles"})
    changed, state, _ = await read_stream(customers, state)
    assert target in {p["customerID"] for p in changed} and len(changed) < 5
    edited = customers.decode(next(p for p in changed if p["customerID"] == target))
    assert [c.value for c in edited.contacts if c.kind == "email"] == ["New.Address@Example.com"]

    shop_rows, _, _ = await read_stream(shops, shop_state)
    decoded = {s.external_id: s for s in map(shops.decode, shop_rows)}
    assert decoded[str(new_shop["shopID"])].timezone == "America/Los_Angeles"

    future = {**state, "cursor": "2999-01-01T00:00:00+00:00", "swept_at": state["swept_at"]}
    assert (await read_stream(customers, future))[0] == []


async def test_customers_are_reswept_when_due(sandbox) -> None:
    ctx = await memory_connector(sandbox, history_years=SMALL["years"])
    customers = stream_named(ctx, "customers")
    everyone, state, _ = await read_stream(customers)
    stale = {**state, "swept_at": "2000-01-01T00:00:00+00:00"}
    again, state2, _ = await read_stream(customers, stale)
    assert len(again) == len(everyone)  # a Contact-only edit that left timeStamp alone is caught here
    assert state2["swept_at"] > stale["swept_at"]
