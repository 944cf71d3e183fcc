"""Conversations for the panel and the API: a client's thread, unread counts, mark read, compose.

Every function takes the acting :class:`core.access.Principal` and applies its scope: a client the
principal may not see answers like a missing one (``None`` / :class:`ConversationError`).
The unmatched inbox — messages from numbers no client holds — is for owners and managers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import Principal, can_see_client, client_filter
from core.models import Associate, Client, ClientContact, Outreach, utcnow
from core.outreach import textable
from core.outreach.outbox import OutboxError, enqueue


class ConversationError(LookupError):
    """The client does not exist or is outside the principal's scope."""


async def _client_phones(session: AsyncSession, client_id: int) -> list[str]:
    stmt = select(ClientContact.value).where(
        col(ClientContact.client_id) == client_id, col(ClientContact.kind) == "phone"
    )
    return list((await session.exec(stmt)).all())


def _thread_filter(client_id: int, phones: Sequence[str]):  # type: ignore[no-untyped-def]
    # A reply that arrived before the client's number was known sits in the unmatched inbox; it
    # shows in the thread as soon as the client has that number.
    own = col(Outreach.client_id) == client_id
    if not phones:
        return own
    orphan = and_(
        col(Outreach.client_id).is_(None),
        col(Outreach.direction) == "inbound",
        col(Outreach.from_address).in_(list(phones)),
    )
    return or_(own, orphan)


async def thread(
    session: AsyncSession, principal: Principal, client_id: int, *, limit: int = 100, before_id: int | None = None
) -> list[Outreach] | None:
    """The client's messages (both directions), oldest first; the newest ``limit`` before ``before_id``."""
    if not await can_see_client(session, principal, client_id):
        return None
    stmt = select(Outreach).where(_thread_filter(client_id, await _client_phones(session, client_id)))
    if before_id is not None:
        stmt = stmt.where(col(Outreach.id) < before_id)
    rows = list((await session.exec(stmt.order_by(col(Outreach.id).desc()).limit(limit))).all())
    rows.reverse()
    return rows


async def unread_counts(session: AsyncSession, principal: Principal) -> dict[int | None, int]:
    """Unread inbound messages per associate id (None: the client has no associate), in scope."""
    stmt = (
        select(Outreach.associate_id, func.count())
        .join(Client, col(Client.id) == col(Outreach.client_id))
        .where(col(Outreach.direction) == "inbound", col(Outreach.read_at).is_(None), client_filter(principal))
        .group_by(col(Outreach.associate_id))
    )
    return {aid: int(n) for aid, n in (await session.exec(stmt)).all()}  # type: ignore[call-overload]


async def unread_count(session: AsyncSession, principal: Principal, associate_id: int | None = None) -> int:
    """Unread inbound messages for one associate (default: the principal's own associate)."""
    aid = associate_id if associate_id is not None else principal.associate_id
    return (await unread_counts(session, principal)).get(aid, 0)


async def unread_by_client(
    session: AsyncSession, principal: Principal, *, limit: int = 50
) -> list[tuple[int, int, datetime]]:
    """(client id, unread count, latest message time) for clients with unread replies, newest first."""
    stmt = (
        select(Outreach.client_id, func.count(), func.max(Outreach.created_at))
        .join(Client, col(Client.id) == col(Outreach.client_id))
        .where(col(Outreach.direction) == "inbound", col(Outreach.read_at).is_(None), client_filter(principal))
        .group_by(col(Outreach.client_id))
        .order_by(func.max(Outreach.created_at).desc())
        .limit(limit)
    )
    return [(int(c), int(n), at) for c, n, at in (await session.exec(stmt)).all()]  # type: ignore[call-overload]


async def mark_read(
    session: AsyncSession,
    principal: Principal,
    client_id: int,
    *,
    up_to_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Mark the client's inbound messages read (up to ``up_to_id``); returns how many changed."""
    if not await can_see_client(session, principal, client_id):
        raise ConversationError(f"no client with id {client_id}")
    phones = await _client_phones(session, client_id)
    stmt = (
        update(Outreach)
        .where(_thread_filter(client_id, phones), col(Outreach.direction) == "inbound", col(Outreach.read_at).is_(None))
        .values(read_at=now or utcnow())
    )
    if up_to_id is not None:
        stmt = stmt.where(col(Outreach.id) <= up_to_id)
    result = await session.exec(stmt)  # type: ignore[call-overload]
    return int(result.rowcount or 0)


async def compose(
    session: AsyncSession,
    principal: Principal,
    client_id: int,
    *,
    body: str,
    media_urls: Sequence[str] = (),
    associate_id: int | None = None,
    kind: str = "transactional",
    actor: str,
    actor_user_id: int | None = None,
    task_id: int | None = None,
    now: datetime | None = None,
) -> Outreach:
    """Queue a text typed by a person (the panel's composer and the API use this one path).

    It goes to the number the client last texted from while that number is still theirs and can take
    texts (a reply must reach the phone that wrote, not a new primary number someone else may share),
    else to their best textable number (:mod:`core.outreach.textable`).

    ``task_id``: the Today task this text carries out (its "Text" action). The task is completed in
    the same transaction and linked to the row; sending for a task that already has its text returns
    that text instead of a second one, and a task done some other way is refused.

    A one-to-one message from an associate defaults to ``transactional``: it is a reply in a
    relationship, not a campaign, so it skips the quiet-hours wait and the marketing cap — but an
    opted-out client is still never texted. Pass ``kind="marketing"`` for promotional content.
    An associate-role principal always sends as their own associate.
    """
    client = await session.get(Client, client_id)
    if client is None or not await can_see_client(session, principal, client_id):
        raise ConversationError(f"no client with id {client_id}")
    if principal.role == "associate":
        if associate_id is not None and associate_id != principal.associate_id:
            raise OutboxError("associates send as themselves")
        associate_id = principal.associate_id
    elif associate_id is not None:
        associate = await session.get(Associate, associate_id)
        if associate is None or not principal.can_see_location(associate.location_id):
            raise OutboxError(f"no associate with id {associate_id}")
    if associate_id is None:
        associate_id = principal.associate_id
    task = None
    if task_id is not None:
        # Imported here: core.automations imports the outreach package.
        from core.automations.store import AutomationError
        from core.automations.today import complete_task, visible_task

        try:
            task = await visible_task(session, principal, task_id)
        except AutomationError:
            raise OutboxError(f"no follow-up {task_id} on your Today page") from None
        if task.client_id != client_id:
            raise OutboxError(f"follow-up {task_id} is for another client")
        existing = (await session.exec(select(Outreach).where(col(Outreach.task_id) == task_id))).first()
        if existing is not None:
            return existing
        if task.state not in ("open", "snoozed"):
            raise OutboxError(f"that follow-up is already {task.state}")
    numbers = (await textable.numbers_for(session, [client_id])).get(client_id)
    to_address = numbers.text_to if numbers is not None else None
    if numbers is not None and numbers.phones and to_address is None:
        raise OutboxError("none of this client's numbers can take texts (a landline or refused number): call instead")
    row = await enqueue(
        session,
        client_id=client_id,
        body=body,
        kind=kind,
        media_urls=media_urls,
        associate_id=associate_id,
        to_address=to_address,
    )
    if task is not None:
        row.task_id = task.id
        session.add(row)
        await session.flush()
        await complete_task(session, principal, task.id, now=now, note=f"texted (message {row.id})")  # type: ignore[arg-type]
    # Replying means the conversation was read.
    await mark_read(session, principal, client_id)
    await audit.record(
        session,
        "outreach.compose",
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="client",
        target_id=client_id,
        details={"outreach_id": row.id, "kind": kind, "media": len(row.media_urls or [])},
    )
    return row


async def unmatched_inbox(session: AsyncSession, principal: Principal, *, limit: int = 100) -> list[Outreach]:
    """Inbound messages from numbers no client holds (owners and managers), newest first."""
    if principal.role not in ("owner", "manager"):
        return []
    stmt = (
        select(Outreach)
        .where(col(Outreach.direction) == "inbound", col(Outreach.client_id).is_(None))
        .order_by(col(Outreach.id).desc())
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def attach_unmatched(session: AsyncSession, client_id: int) -> int:
    """File unmatched messages from the client's numbers under the client (e.g. after a sync)."""
    phones = await _client_phones(session, client_id)
    if not phones:
        return 0
    result = await session.exec(  # type: ignore[call-overload]
        update(Outreach)
        .where(
            col(Outreach.client_id).is_(None),
            col(Outreach.direction) == "inbound",
            col(Outreach.from_address).in_(phones),
        )
        .values(client_id=client_id)
    )
    return int(result.rowcount or 0)
