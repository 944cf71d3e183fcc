"""The outreach outbox: rows written in the same transaction as whatever caused them.

``enqueue`` only writes a ``pending`` row; the sender (``core.outreach.sender``) claims due rows
with a state transition, applies the send rules and hands them to a messaging plugin. Nothing here
talks to a provider, so an automation, the panel's composer and the API can all call it inside
their own transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Client, Outreach, utcnow
from core.models.outreach import OUTREACH_KINDS, OUTREACH_STATES
from core.outreach.textable import numbers_for

MAX_BODY = 1600  # Twilio's limit; longer texts are refused by carriers' concatenation anyway
MAX_MEDIA = 10
# States a person may send back to the queue (after checking the provider for a "review" row).
REQUEUEABLE = ("review", "failed", "skipped", "undelivered")


class OutboxError(ValueError):
    """The message cannot be queued as given (empty body, bad media URL, unknown client)."""


def _check_media(urls: Sequence[str]) -> list[str]:
    out = []
    for url in urls:
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OutboxError(f"media URL must be an absolute http(s) URL: {url!r}")
        out.append(url)
    if len(out) > MAX_MEDIA:
        raise OutboxError(f"at most {MAX_MEDIA} media URLs per message")
    return out


async def survivor(session: AsyncSession, client_id: int) -> Client:
    """The client, following merges to the surviving record."""
    client = await session.get(Client, client_id)
    hops = 0
    while client is not None and client.merged_into_id is not None and hops < 20:
        client = await session.get(Client, client.merged_into_id)
        hops += 1
    if client is None:
        raise OutboxError(f"no client with id {client_id}")
    return client


async def text_address(session: AsyncSession, client_id: int) -> str | None:
    """The number to text a client at, by the rule the composer and the Today page show
    (:attr:`core.outreach.textable.Numbers.text_to`): the number they last texted from while it can
    take texts, else the first mobile, else the first number that may be one; never a landline."""
    return (await numbers_for(session, [client_id]))[client_id].text_to


async def enqueue(
    session: AsyncSession,
    *,
    client_id: int,
    body: str,
    kind: str = "marketing",
    media_urls: Sequence[str] = (),
    associate_id: int | None = None,
    location_id: int | None = None,
    to_address: str | None = None,
    occasion_key: str | None = None,
    automation_id: int | None = None,
    connector_id: int | None = None,
    due_at: datetime | None = None,
) -> Outreach:
    """Queue one outbound text in the caller's transaction and return its row.

    ``kind`` is ``marketing`` (needs opt-in; quiet hours; frequency cap) or ``transactional``.
    ``occasion_key`` makes an occasion fire at most once: queueing the same key again returns the
    existing row instead of a second text (and leaves the caller's transaction usable).
    The recipient's number defaults to :func:`text_address`; a client with none still
    gets a row, which the sender skips with its reason (so the attempt stays visible).
    """
    if kind not in OUTREACH_KINDS:
        raise OutboxError(f"kind must be one of {', '.join(OUTREACH_KINDS)}")
    body = (body or "").strip()
    media = _check_media(media_urls)
    if not body and not media:
        raise OutboxError("a message needs a body or a media URL")
    if len(body) > MAX_BODY:
        raise OutboxError(f"the body has {len(body)} characters; at most {MAX_BODY}")
    if due_at is not None and due_at.tzinfo is None:
        raise OutboxError("due_at must be timezone-aware")
    client = await survivor(session, client_id)
    assert client.id is not None
    if occasion_key is not None:
        existing = await by_occasion(session, occasion_key)
        if existing is not None:
            return existing
    now = utcnow()
    row = Outreach(
        client_id=client.id,
        associate_id=associate_id if associate_id is not None else client.owner_associate_id,
        location_id=location_id if location_id is not None else client.home_location_id,
        connector_id=connector_id,
        automation_id=automation_id,
        channel="mms" if media else "sms",
        direction="outbound",
        kind=kind,
        to_address=to_address or await text_address(session, client.id),
        body=body,
        media_urls=media,
        occasion_key=occasion_key,
        state="pending",
        due_at=due_at or now,
        created_at=now,
        updated_at=now,
    )
    if occasion_key is None:
        session.add(row)
        await session.flush()
        return row
    try:
        # A savepoint: a concurrent writer of the same occasion must not abort the caller's transaction.
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        existing = await by_occasion(session, occasion_key)
        if existing is None:
            raise
        return existing
    return row


async def by_occasion(session: AsyncSession, occasion_key: str) -> Outreach | None:
    return (await session.exec(select(Outreach).where(col(Outreach.occasion_key) == occasion_key))).first()


async def list_outreach(
    session: AsyncSession,
    *,
    state: str | None = None,
    client_id: int | None = None,
    direction: str | None = None,
    limit: int = 100,
) -> list[Outreach]:
    """Outbox and conversation rows, newest first."""
    if state is not None and state not in OUTREACH_STATES:
        raise OutboxError(f"unknown state {state!r} (one of {', '.join(OUTREACH_STATES)})")
    stmt = select(Outreach)
    if state is not None:
        stmt = stmt.where(col(Outreach.state) == state)
    if client_id is not None:
        stmt = stmt.where(col(Outreach.client_id) == client_id)
    if direction is not None:
        stmt = stmt.where(col(Outreach.direction) == direction)
    stmt = stmt.order_by(col(Outreach.id).desc()).limit(limit)
    return list((await session.exec(stmt)).all())


async def requeue(session: AsyncSession, outreach_id: int, *, now: datetime | None = None) -> Outreach:
    """Send a parked row again (a person checked the provider and found it was not sent)."""
    row = await session.get(Outreach, outreach_id, with_for_update=True)
    if row is None or row.direction != "outbound":
        raise OutboxError(f"no outbound message with id {outreach_id}")
    if row.state not in REQUEUEABLE:
        raise OutboxError(
            f"message {outreach_id} is {row.state}; only {', '.join(REQUEUEABLE)} messages can be requeued"
        )
    now = now or utcnow()
    row.state_reason = f"requeued from {row.state} at {now:%Y-%m-%d %H:%M} UTC"
    row.state = "pending"
    row.provider_id = None
    row.provider_status = None
    row.error_code = None
    row.claimed_at = None
    row.due_at = now
    row.updated_at = now
    session.add(row)
    await session.flush()
    return row
