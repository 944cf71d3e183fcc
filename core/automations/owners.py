"""Who owns a client: the associate who last (or first) sold to them, with departures reassigned.

The rule, applied in set-based SQL (never a Python loop over clients):

- the *seller* is the associate of the client's latest (``last_seller``) or earliest
  (``first_seller``) completed sale that has one;
- an active seller owns the client;
- an inactive seller's clients go to the most recent active seller at the inactive associate's
  location (the active associate with that location's latest completed sale), or to nobody;
- a client with no seller keeps the owner they have (set by a merge, or by hand), unless that owner
  left: then the same replacement applies.

Open and snoozed tasks follow: an automation's task always sits with the client's owner, and any
task of an associate who left moves to the client's new owner. Every owner change appends a
change-feed row (origin ``automations:owners``), like any other change to a client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, case, false, or_, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from core.automations.store import conn as _conn
from core.automations.store import load_org_settings
from core.models import Associate, ChangeFeed, Client, Sale, Task, utcnow

client_t = Client.__table__  # type: ignore[attr-defined]
sale_t = Sale.__table__  # type: ignore[attr-defined]
associate_t = Associate.__table__  # type: ignore[attr-defined]
task_t = Task.__table__  # type: ignore[attr-defined]
feed_t = ChangeFeed.__table__  # type: ignore[attr-defined]
ORIGIN = "automations:owners"
CHUNK = 5000


def seller(rule: str) -> Any:
    """The client's seller by ``rule``, as a correlated subquery on ``client``."""
    order = (
        (sale_t.c.occurred_at.asc(), sale_t.c.id.asc())
        if rule == "first_seller"
        else (sale_t.c.occurred_at.desc(), sale_t.c.id.desc())
    )
    return (
        select(sale_t.c.associate_id)
        .where(
            sale_t.c.client_id == client_t.c.id,
            sale_t.c.status == "completed",
            sale_t.c.associate_id.is_not(None),
        )
        .order_by(*order)
        .limit(1)
        .scalar_subquery()
    )


def all_sellers(rule: str) -> Any:
    """Every client's seller in one pass (PostgreSQL ``DISTINCT ON``)."""
    order = (
        (sale_t.c.occurred_at.asc(), sale_t.c.id.asc())
        if rule == "first_seller"
        else (sale_t.c.occurred_at.desc(), sale_t.c.id.desc())
    )
    return (
        select(sale_t.c.client_id.label("cid"), sale_t.c.associate_id.label("seller"))
        .where(sale_t.c.status == "completed", sale_t.c.associate_id.is_not(None), sale_t.c.client_id.is_not(None))
        .distinct(sale_t.c.client_id)
        .order_by(sale_t.c.client_id, *order)
        .subquery("sellers")
    )


async def replacements(session: AsyncSession) -> dict[int, int | None]:
    """Each inactive associate → the most recent active seller at their location (or None)."""
    stmt = select(associate_t.c.id, associate_t.c.location_id).where(associate_t.c.active.is_(False))
    inactive = (await (await _conn(session)).execute(stmt)).all()
    cache: dict[int | None, int | None] = {}
    out: dict[int, int | None] = {}
    for aid, location_id in inactive:
        if location_id not in cache:
            if location_id is None:
                cache[location_id] = None
            else:
                stmt = (
                    select(sale_t.c.associate_id)
                    .select_from(sale_t.join(associate_t, associate_t.c.id == sale_t.c.associate_id))
                    .where(
                        sale_t.c.location_id == location_id,
                        sale_t.c.status == "completed",
                        associate_t.c.active.is_(True),
                    )
                    .order_by(sale_t.c.occurred_at.desc(), sale_t.c.id.desc())
                    .limit(1)
                )
                cache[location_id] = (await (await _conn(session)).execute(stmt)).scalar()
        out[int(aid)] = cache[location_id]
    return out


def _mapped(value: Any, mapping: dict[int, int | None]) -> Any:
    if not mapping:
        return value
    return case({k: v for k, v in mapping.items()}, value=value, else_=value)


async def assign_owners(session: AsyncSession, *, client_ids: Sequence[int] | None = None) -> int:
    """Apply the owner rule to these clients (None: every client); returns how many changed owner."""
    rule = (await load_org_settings(session)).owner_rule
    repl = await replacements(session)
    changed: dict[int, int | None] = {}
    scopes: list[Any] = (
        [None] if client_ids is None else [list(client_ids[i : i + CHUNK]) for i in range(0, len(client_ids), CHUNK)]
    )
    for chunk in scopes:
        if chunk is not None and not chunk:
            continue
        in_scope = client_t.c.id.in_(chunk) if chunk is not None else client_t.c.merged_into_id.is_(None)
        if chunk is None and session.bind is not None and session.bind.dialect.name == "postgresql":
            # Every client at once: one sorted pass over the sales beats a probe per client.
            sub = all_sellers(rule)
        else:
            sub = select(client_t.c.id.label("cid"), seller(rule).label("seller")).where(in_scope).subquery("sellers")
        new_owner = _mapped(sub.c.seller, repl)
        stmt = (
            update(client_t)
            .where(
                client_t.c.id == sub.c.cid,
                sub.c.seller.is_not(None),
                client_t.c.owner_associate_id.is_distinct_from(new_owner),
            )
            .values(owner_associate_id=new_owner)
            .returning(client_t.c.id, client_t.c.owner_associate_id)
        )
        for cid, owner in (await (await _conn(session)).execute(stmt)).all():
            changed[int(cid)] = owner
        if repl:
            # Clients without a seller whose owner left.
            stmt = (
                update(client_t)
                .where(in_scope, client_t.c.owner_associate_id.in_(list(repl)))
                .values(owner_associate_id=_mapped(client_t.c.owner_associate_id, repl))
                .returning(client_t.c.id, client_t.c.owner_associate_id)
            )
            for cid, owner in (await (await _conn(session)).execute(stmt)).all():
                changed[int(cid)] = owner
    await _move_tasks(session, list(repl), client_ids)
    if changed:
        now = utcnow()
        rows = [
            {
                "entity": "client",
                "entity_id": cid,
                "op": "update",
                "changes": {"owner_associate_id": owner},
                "origin": ORIGIN,
                "origin_connector_id": None,
                "created_at": now,
            }
            for cid, owner in sorted(changed.items())
        ]
        for i in range(0, len(rows), CHUNK):
            await (await _conn(session)).execute(feed_t.insert(), rows[i : i + CHUNK])
    return len(changed)


async def _move_tasks(session: AsyncSession, departed: list[int], client_ids: Sequence[int] | None) -> None:
    owner = select(client_t.c.owner_associate_id).where(client_t.c.id == task_t.c.client_id).scalar_subquery()
    follows = task_t.c.automation_id.is_not(None)
    if client_ids is not None:
        follows = and_(follows, task_t.c.client_id.in_(list(client_ids))) if client_ids else false()
    who = or_(follows, task_t.c.associate_id.in_(departed)) if departed else follows
    await (await _conn(session)).execute(
        update(task_t)
        .where(
            task_t.c.state.in_(("open", "snoozed")),
            task_t.c.client_id.is_not(None),
            who,
            task_t.c.associate_id.is_distinct_from(owner),
        )
        .values(associate_id=owner)
    )
