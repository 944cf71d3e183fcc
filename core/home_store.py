"""Home store: the POS's when it names one, else derived from where the client buys, else a person's.

The rule (``client.home_location_source`` = "derived"): the location where the client's completed
purchases (status ``completed``, total above zero: a pure return is not a purchase) fall on the most
distinct days (UTC calendar days, so three pieces rung up in one visit count once); a tie goes to the
location of the most recent such purchase, then to the lower location id. Online sales count at the
location they were booked at, like any other.

Which clients it touches: those with no home store and no source, and those whose home is
"derived". A home the POS names ("pos", or one set by a sync before sources were kept: non-null with
a null source) and a home a person chose ("manual", see ``core.clients.edit_client``) are never
recomputed. A derived client whose purchases all went away (unmerge, voids) loses the derived home.

It runs set-based in SQL, never per client in Python, off the sync's hot path: the change-feed
consumer ``home_store`` (the ``home_store_feed`` job, every tick) recomputes the clients whose sales
or merges it reads, and its first run (a new consumer at position 0, or one far behind) does one pass
over every client. A client row from a connector that sets a home store marks it "pos" (identity's survivorship
decides whether the POS value replaces the current one: a person's choice ranks like any edit). Every home
change appends a change-feed row (origin ``home_store``), like any other change to a client, so the
CRM push and automations see it; writeback ignores it (not a field a POS is written).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Date, and_, cast, func, literal, or_, select, update
from sqlalchemy import exists as sa_exists
from sqlmodel.ext.asyncio.session import AsyncSession

from core import feed
from core.models import ChangeFeed, Client, Sale, utcnow
from core.runtime import Runtime

client_t = Client.__table__  # type: ignore[attr-defined]
sale_t = Sale.__table__  # type: ignore[attr-defined]
feed_t = ChangeFeed.__table__  # type: ignore[attr-defined]
ORIGIN = "home_store"
CONSUMER = "home_store"
CHUNK = 5000
BATCH = 5000
# Further behind than this, one full set-based pass is cheaper than reading the feed row by row.
FULL_PASS_LAG = 50_000
ENTITIES = ["sale", "client"]


async def _conn(session: AsyncSession) -> Any:
    return await session.connection()


def _day(session: AsyncSession) -> Any:
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        return func.date(sale_t.c.occurred_at)
    return cast(func.timezone("UTC", sale_t.c.occurred_at), Date)


def _purchase() -> Any:
    return and_(sale_t.c.status == "completed", sale_t.c.client_id.is_not(None), sale_t.c.total_minor > 0)


def _derivable() -> Any:
    return or_(
        client_t.c.home_location_source == "derived",
        and_(client_t.c.home_location_source.is_(None), client_t.c.home_location_id.is_(None)),
    )


def _winners(session: AsyncSession, chunk: list[int] | None) -> Any:
    """(client id, derived location) for clients with purchases, as a subquery."""
    where = [_purchase()]
    if chunk is not None:
        where.append(sale_t.c.client_id.in_(chunk))
    visits = (
        select(
            sale_t.c.client_id.label("cid"),
            sale_t.c.location_id.label("lid"),
            func.count(func.distinct(_day(session))).label("days"),
            func.max(sale_t.c.occurred_at).label("last_at"),
        )
        .where(*where)
        .group_by(sale_t.c.client_id, sale_t.c.location_id)
        .subquery("visits")
    )
    ranked = select(
        visits.c.cid,
        visits.c.lid,
        func.row_number()
        .over(partition_by=visits.c.cid, order_by=(visits.c.days.desc(), visits.c.last_at.desc(), visits.c.lid))
        .label("rn"),
    ).subquery("ranked")
    return select(ranked.c.cid, ranked.c.lid).where(ranked.c.rn == 1).subquery("homes")


async def derive_home_stores(session: AsyncSession, *, client_ids: Sequence[int] | None = None) -> int:
    """Apply the rule to these clients (None: every client), in the caller's transaction; returns
    how many changed home store."""
    changed: dict[int, int | None] = {}
    scopes: list[list[int] | None] = (
        [None] if client_ids is None else [list(client_ids[i : i + CHUNK]) for i in range(0, len(client_ids), CHUNK)]
    )
    conn = await _conn(session)
    for chunk in scopes:
        if chunk is not None and not chunk:
            continue
        homes = _winners(session, chunk)
        in_scope = [client_t.c.merged_into_id.is_(None), _derivable()]
        if chunk is not None:
            in_scope.append(client_t.c.id.in_(chunk))
        stmt = (
            update(client_t)
            .where(
                client_t.c.id == homes.c.cid,
                *in_scope,
                or_(
                    client_t.c.home_location_id.is_distinct_from(homes.c.lid),
                    client_t.c.home_location_source.is_(None),
                ),
            )
            .values(home_location_id=homes.c.lid, home_location_source="derived")
            .returning(client_t.c.id, client_t.c.home_location_id)
        )
        for cid, lid in (await conn.execute(stmt)).all():
            changed[int(cid)] = int(lid)
        # Derived homes with no purchase left behind them.
        no_purchase = ~sa_exists().where(sale_t.c.client_id == client_t.c.id, _purchase())
        stmt = (
            update(client_t)
            .where(client_t.c.home_location_source == "derived", no_purchase,
                   *([client_t.c.id.in_(chunk)] if chunk is not None else []))
            .values(home_location_id=None, home_location_source=None)
            .returning(client_t.c.id)
        )
        for (cid,) in (await conn.execute(stmt)).all():
            changed[int(cid)] = None
    if changed:
        now = utcnow()
        rows = [
            {
                "entity": "client",
                "entity_id": cid,
                "op": "update",
                "changes": {"home_location_id": lid, "home_location_source": "derived" if lid is not None else None},
                "origin": ORIGIN,
                "origin_connector_id": None,
                "created_at": now,
            }
            for cid, lid in sorted(changed.items())
        ]
        for i in range(0, len(rows), CHUNK):
            await conn.execute(feed_t.insert(), rows[i : i + CHUNK])
    return len(changed)


async def mark_pos_homes(session: AsyncSession, client_ids: Sequence[int]) -> None:
    """A connector set these clients' home store: it is the POS's now. Survivorship let it replace
    a person's choice only when the POS record is more recent than that choice."""
    conn = await _conn(session)
    for i in range(0, len(client_ids), CHUNK):
        await conn.execute(
            update(client_t)
            .where(
                client_t.c.id.in_(list(client_ids[i : i + CHUNK])),
                client_t.c.home_location_id.is_not(None),
                client_t.c.home_location_source.is_distinct_from(literal("pos")),
            )
            .values(home_location_source="pos")
        )


async def consume_feed(rt: Runtime, *, settle: timedelta = feed.SETTLE) -> dict[str, int]:
    """One pass of the ``home_store`` consumer; returns counts of what it did."""
    async with rt.db.transaction() as session:
        consumer = await feed.claim(session, CONSUMER)
        top = await feed.head(session)
        if consumer.position == 0 or top - consumer.position > FULL_PASS_LAG:
            # Homes a sync set with no source yet came from the POS (as migration 0007 reads them).
            await (await _conn(session)).execute(
                update(client_t)
                .where(client_t.c.home_location_id.is_not(None), client_t.c.home_location_source.is_(None))
                .values(home_location_source="pos")
            )
            changed = await derive_home_stores(session)
            await feed.advance(session, CONSUMER, top)
            return {"changed": changed, "full_pass": 1, "clients": 0}
        rows = await feed.read(session, consumer.position, limit=BATCH, entities=ENTITIES, settle=settle)
        if not rows:
            return {"changed": 0, "full_pass": 0, "clients": 0}
        clients: set[int] = set()
        sales: set[int] = set()
        pos_homes: set[int] = set()
        for row in rows:
            if row.origin == ORIGIN:
                continue
            changes = row.changes or {}
            if row.entity == "sale":
                sales.add(row.entity_id)
            elif row.op in ("merge", "unmerge"):
                clients.add(row.entity_id)
            elif row.origin_connector_id is not None and changes.get("home_location_id") is not None:
                pos_homes.add(row.entity_id)
        if pos_homes:
            await mark_pos_homes(session, sorted(pos_homes))
        if sales:
            ids = sorted(sales)
            for i in range(0, len(ids), CHUNK):
                stmt = select(sale_t.c.client_id).where(
                    sale_t.c.id.in_(ids[i : i + CHUNK]), sale_t.c.client_id.is_not(None)
                )
                clients.update(int(c) for c in (await (await _conn(session)).execute(stmt)).scalars().all())
        changed = await derive_home_stores(session, client_ids=sorted(clients)) if clients else 0
        await feed.advance(session, CONSUMER, rows[-1].id)  # type: ignore[arg-type]
    return {"changed": changed, "full_pass": 0, "clients": len(clients)}


async def home_store_feed(ctx: dict[str, Any]) -> dict[str, int]:
    """The arq job: ``ctx["clasp"]`` is the Runtime."""
    return await consume_feed(ctx["clasp"])
