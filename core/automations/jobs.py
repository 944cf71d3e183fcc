"""Worker entry points. Redis only schedules: both jobs re-derive everything from the database and
are safe to run twice, or on two workers at once (occasion keys are unique).

- ``automations_tick`` (cron, every few minutes): catch up owners, then evaluate every enabled
  automation at the current time.
- ``automations_feed`` (cron, every tick): read the change feed (consumer ``automations``) for new or
  changed sales, clients and associates; re-apply the owner rule to the clients concerned (and to
  the clients of an associate who left), then evaluate the enabled automations for those clients
  only, so a thank-you with no delay or a birthday just entered goes out without waiting for the tick.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from core import feed
from core.automations.evaluate import evaluate
from core.automations.owners import ORIGIN, assign_owners
from core.automations.store import conn as _conn
from core.home_store import ORIGIN as HOME_ORIGIN
from core.models import Sale
from core.runtime import Runtime

log = logging.getLogger(__name__)

CONSUMER = "automations"
BATCH = 5000
# Further behind than this, one full set-based pass is cheaper than reading the feed row by row.
FULL_PASS_LAG = 50_000
ENTITIES = ["sale", "client", "associate"]


async def automations_tick(ctx: dict[str, Any]) -> dict[str, Any]:
    rt: Runtime = ctx["clasp"]
    runs = await evaluate(rt)
    return {r.automation: r.created for r in runs}


async def consume_feed(rt: Runtime) -> dict[str, int]:
    """One pass over the change feed; returns counts of what it did."""
    touched: set[int] = set()
    async with rt.db.transaction() as session:
        consumer = await feed.claim(session, CONSUMER)
        head = await feed.head(session)
        if head - consumer.position > FULL_PASS_LAG:
            changed = await assign_owners(session)
            await feed.advance(session, CONSUMER, head)
            return {"owners_changed": changed, "full_pass": 1, "clients": 0}
        rows = await feed.read(session, consumer.position, limit=BATCH, entities=ENTITIES)
        if not rows:
            return {"owners_changed": 0, "full_pass": 0, "clients": 0}
        sales: set[int] = set()
        associates: set[int] = set()
        for row in rows:
            if row.origin in (ORIGIN, HOME_ORIGIN) and row.entity == "client":
                continue  # our own owner changes; home store changes (core.home_store) move no owner
            if row.entity == "client":
                touched.add(row.entity_id)
            elif row.entity == "sale":
                sales.add(row.entity_id)
            elif row.entity == "associate" and "active" in (row.changes or {}):
                associates.add(row.entity_id)
        if sales:
            stmt = select(Sale.client_id).where(Sale.id.in_(sorted(sales)), Sale.client_id.is_not(None))  # type: ignore[union-attr,attr-defined]
            touched.update(int(c) for c in (await (await _conn(session)).execute(stmt)).scalars().all())
        owners_of = set(touched)
        if associates:
            from core.models import Client

            stmt = select(Client.id).where(Client.owner_associate_id.in_(sorted(associates)))  # type: ignore[union-attr]
            owners_of.update(int(c) for c in (await (await _conn(session)).execute(stmt)).scalars().all())
            stmt = select(Sale.client_id).where(Sale.associate_id.in_(sorted(associates)), Sale.client_id.is_not(None))  # type: ignore[union-attr,attr-defined]
            owners_of.update(int(c) for c in (await (await _conn(session)).execute(stmt)).scalars().all())
        changed = await assign_owners(session, client_ids=sorted(owners_of)) if owners_of else 0
        await feed.advance(session, CONSUMER, rows[-1].id)  # type: ignore[arg-type]
    if touched:
        await evaluate(rt, client_ids=sorted(touched))
    return {"owners_changed": changed, "full_pass": 0, "clients": len(touched)}


async def automations_feed(ctx: dict[str, Any]) -> dict[str, int]:
    rt: Runtime = ctx["clasp"]
    return await consume_feed(rt)
