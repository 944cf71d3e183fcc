"""core.access scopes on the real database, against the rule written out in Python.

A generated chain (three stores in both outreach modes, clients with and without a home store, walk-in
sales, clients who bought in several stores, merged clients) is scoped for every kind of principal,
and the ids the SQL returns are compared with the rule in the module's docstring applied to the same
rows in Python (walk-in sales, with a NULL client id, are among "the sales of the store"). Then the
edge the SQL form has to get right: the scope keeps its meaning inside a query that itself selects
from ``sale`` and ``location`` (its subqueries must not bind to the outer query's rows).
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from core.access import Principal, can_see_client, client_filter, location_filter
from core.db import Database
from core.models import Associate, Client, Location, Sale, utcnow


async def build_chain(db: Database, seed: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    async with db.transaction() as s:
        locs = [
            Location(name="Own A", timezone="America/New_York", outreach_mode="own"),
            Location(name="Store B", timezone="America/Chicago", outreach_mode="store"),
            Location(name="Own C", timezone="Europe/Paris", outreach_mode="own"),
        ]
        s.add_all(locs)
        await s.flush()
        loc_ids = [loc.id for loc in locs]
        associates = [Associate(location_id=loc_ids[i % 3], first_name=f"A{i}") for i in range(6)]
        s.add_all(associates)
        await s.flush()
        assoc_ids = [a.id for a in associates]
        clients = [
            Client(
                first_name=f"C{i}",
                home_location_id=rng.choice([None, None, *loc_ids]),
                owner_associate_id=rng.choice([None, *assoc_ids]),
            )
            for i in range(120)
        ]
        s.add_all(clients)
        await s.flush()
        for c in clients[:3]:  # merged clients stay rows; the scope itself does not hide them
            c.merged_into_id = clients[-1].id
        sales = []
        for i in range(400):
            client = rng.choice(clients[: len(clients) * 2 // 3])  # a third never bought anything
            sales.append(Sale(
                location_id=rng.choice(loc_ids),
                client_id=None if i % 9 == 0 else client.id,  # walk-ins
                status="completed",
                currency="USD",
                total_minor=1000 + i,
                occurred_at=utcnow() - timedelta(days=i),
            ))
        s.add_all(sales)
    async with db.session() as s:
        rows = (await s.exec(select(Client.id, Client.home_location_id, Client.owner_associate_id))).all()
        bought = (await s.exec(select(Sale.client_id, Sale.location_id))).all()
    return {
        "locations": {loc.name: loc.id for loc in locs},
        "modes": {loc.id: loc.outreach_mode for loc in locs},
        "associates": assoc_ids,
        "clients": {int(i): (home, owner) for i, home, owner in rows},
        "bought": {(int(c), int(loc)) for c, loc in bought if c is not None},
    }


def expected(chain: dict[str, Any], p: Principal) -> set[int]:
    """The rule of core.access, in Python."""
    def at(client: int, locations: set[int]) -> bool:
        home, _ = chain["clients"][client]
        return home in locations or any((client, loc) in chain["bought"] for loc in locations)

    if p.is_owner:
        return set(chain["clients"])
    locs = set(p.location_ids)
    if p.role == "manager":
        return {c for c in chain["clients"] if at(c, locs)}
    store = {loc for loc in locs if chain["modes"][loc] == "store"}
    return {
        c for c, (_, owner) in chain["clients"].items()
        if at(c, store) or (p.associate_id is not None and owner == p.associate_id and at(c, locs))
    }


def principals(chain: dict[str, Any]) -> list[Principal]:
    a, b, c = (chain["locations"][n] for n in ("Own A", "Store B", "Own C"))
    out = [
        Principal(user_id=1, role="owner", location_ids=frozenset()),
        Principal(user_id=2, role="manager", location_ids=frozenset({a})),
        Principal(user_id=3, role="manager", location_ids=frozenset({b, c})),
        Principal(user_id=4, role="manager", location_ids=frozenset()),
        Principal(user_id=5, role="associate", location_ids=frozenset({b})),  # unlinked, store mode
        Principal(user_id=6, role="associate", location_ids=frozenset({a})),  # unlinked, own mode
    ]
    for i, assoc in enumerate(chain["associates"]):
        for locs in ({a}, {b}, {a, b}, {a, c}):
            out.append(Principal(user_id=10 + i, role="associate", location_ids=frozenset(locs), associate_id=assoc))
    return out


async def scoped_ids(db: Database, clause: Any) -> set[int]:
    async with db.session() as s:
        return {int(i) for i in (await s.exec(select(Client.id).where(clause))).all()}


async def test_client_filter_follows_the_rule_for_every_principal(db: Database) -> None:
    chain = await build_chain(db)
    seen_nonempty = 0
    for p in principals(chain):
        want = expected(chain, p)
        assert await scoped_ids(db, client_filter(p)) == want, p
        # The per-client form for a few ids answers the same rows.
        assert await scoped_ids(db, client_filter(p, few=True)) == want, p
        seen_nonempty += bool(want) and want != set(chain["clients"])
    assert seen_nonempty >= 10  # the chain really exercises partial scopes


async def test_scope_inside_a_query_over_sales_and_locations(db: Database) -> None:
    # The scope's own subqueries on sale and location must not bind to the outer query's rows.
    chain = await build_chain(db)
    for p in principals(chain):
        want = expected(chain, p)
        stmt = (
            select(Sale.id, Sale.client_id)
            .join(Location, col(Location.id) == Sale.location_id)
            .join(Client, col(Client.id) == Sale.client_id)
            .where(client_filter(p), location_filter(p, Sale.location_id))
        )
        async with db.session() as s:
            got = {(int(sid), int(cid)) for sid, cid in (await s.exec(stmt)).all()}
            sales = (await s.exec(select(Sale.id, Sale.client_id, Sale.location_id))).all()
        assert got == {
            (int(sid), int(cid)) for sid, cid, loc in sales
            if cid is not None and int(cid) in want and p.can_see_location(loc)
        }, p


@pytest.mark.parametrize("role", ["manager", "associate"])
async def test_can_see_client_agrees_with_the_list(db: Database, role: str) -> None:
    chain = await build_chain(db)
    p = next(x for x in principals(chain)
             if x.role == role and x.location_ids and (role == "manager" or x.associate_id is not None))
    want = expected(chain, p)
    async with db.session() as s:
        for client in chain["clients"]:
            assert await can_see_client(s, p, client) == (client in want)
