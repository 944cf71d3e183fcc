"""Feed rows for touches: the moments outreach becomes something a sale can be credited to.

Texts, replies and tasks change outside the sync engine (a provider's status callback, an inbound
webhook, an associate ticking a task), so those paths call :func:`touch_changed` in the same
transaction as the change; the attribution consumer then recomputes the sales the touch could count
for. Kept apart from the jobs so the outreach modules can import it without the runtime.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from core import feed
from core.models import Outreach


async def touch_changed(
    session: AsyncSession,
    *,
    entity: str,
    entity_id: int | None,
    client_id: int | None,
    at: datetime | None,
    state: str,
    origin: str,
) -> None:
    """Record that a touch (``entity`` ``outreach`` or ``task``) changed; ``at`` is the moment it
    counts from (delivered, received, done). Nothing to record without a client."""
    if client_id is None or at is None or entity_id is None:
        return
    await feed.append(session, entity=entity, entity_id=entity_id, op="update",
                      changes={"state": state, "client_id": client_id, "at": at.isoformat()}, origin=origin)


async def text_delivered(session: AsyncSession, row: Outreach, *, origin: str) -> None:
    """After a provider's report moved ``row`` forward: record the touch if it is now delivered."""
    if row.state == "delivered":
        await touch_changed(session, entity="outreach", entity_id=row.id, client_id=row.client_id,
                            at=row.delivered_at, state=row.state, origin=origin)
