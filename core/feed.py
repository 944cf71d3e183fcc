"""The change feed: one small API for appending changes and for consumers reading them.

Every change to a unified record appends a row in the same transaction as the change. Consumers
(writeback, CRM push, automations, attribution) each keep a position in ``feed_consumer`` and read
rows after it in id order.

Ids are assigned at insert, but concurrent transactions may commit out of id order on PostgreSQL;
a consumer that jumped past a not-yet-committed lower id would miss it. ``read`` therefore only
returns rows older than a short settle window unless asked otherwise, and ``claim`` locks the
consumer row so two workers never process the same consumer at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import ChangeFeed, FeedConsumer, utcnow

# Long enough for any ingest transaction that took its id earlier to have committed.
SETTLE = timedelta(seconds=5)


async def append(
    session: AsyncSession,
    *,
    entity: str,
    entity_id: int,
    op: str,
    changes: dict[str, Any] | None = None,
    origin: str,
    origin_connector_id: int | None = None,
) -> ChangeFeed:
    """Append one change. ``origin_connector_id`` marks a change that came *from* that connector,
    so its writeback does not echo it back."""
    row = ChangeFeed(
        entity=entity,
        entity_id=entity_id,
        op=op,
        changes=changes or {},
        origin=origin,
        origin_connector_id=origin_connector_id,
    )
    session.add(row)
    await session.flush()
    return row


async def claim(session: AsyncSession, consumer: str) -> FeedConsumer:
    """Get (creating if needed) and lock a consumer's checkpoint row for this transaction."""
    stmt = select(FeedConsumer).where(FeedConsumer.name == consumer).with_for_update()
    row = (await session.exec(stmt)).first()
    if row is None:
        row = FeedConsumer(name=consumer, position=0)
        session.add(row)
        await session.flush()
    return row


async def read(
    session: AsyncSession,
    after: int,
    *,
    limit: int = 500,
    entities: list[str] | None = None,
    settle: timedelta = SETTLE,
) -> list[ChangeFeed]:
    """Feed rows with id > ``after`` (oldest first), excluding the last ``settle`` of writes."""
    stmt = select(ChangeFeed).where(col(ChangeFeed.id) > after)
    if settle:
        cutoff = utcnow() - settle
        # Stop before the first row still settling: a page's rows may carry the page's start time,
        # so a settled row can sit above an unsettled one, and a consumer moving past the unsettled
        # one would never see it.
        unsettled = (
            select(func.min(ChangeFeed.id))
            .where(col(ChangeFeed.id) > after, col(ChangeFeed.created_at) > cutoff)
            .scalar_subquery()
        )
        stmt = stmt.where(
            col(ChangeFeed.created_at) <= cutoff,
            or_(unsettled.is_(None), col(ChangeFeed.id) < unsettled),
        )
    if entities:
        stmt = stmt.where(col(ChangeFeed.entity).in_(entities))
    stmt = stmt.order_by(col(ChangeFeed.id)).limit(limit)
    return list((await session.exec(stmt)).all())


async def advance(session: AsyncSession, consumer: str, position: int) -> None:
    """Move a consumer's checkpoint forward (never backwards)."""
    await session.exec(  # type: ignore[call-overload]
        update(FeedConsumer)
        .where(col(FeedConsumer.name) == consumer, col(FeedConsumer.position) < position)
        .values(position=position, updated_at=utcnow())
    )


async def head(session: AsyncSession) -> int:
    value = (await session.exec(select(func.max(ChangeFeed.id)))).first()  # type: ignore[call-overload]
    return int(value or 0)


async def lag(session: AsyncSession, consumer: str) -> int:
    """How many feed rows the consumer has yet to read."""
    pos = (await session.exec(select(FeedConsumer.position).where(FeedConsumer.name == consumer))).first()
    stmt = select(func.count()).select_from(ChangeFeed).where(col(ChangeFeed.id) > (pos or 0))
    return int((await session.exec(stmt)).one())  # type: ignore[call-overload]
