"""The consent ledger: append-only, one row per event, the latest row per client and channel wins.

Consent belongs to a phone number as much as to a person: a STOP from a number opts out every
(unmerged) client holding that number, since any of them would be texted at it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Client, ClientContact, Consent, utcnow
from core.models.clients import CONSENT_CHANNELS, CONSENT_STATUSES

# Outreach channels and the consent channel that governs them (a picture message is still a text).
CONSENT_CHANNEL = {"sms": "sms", "mms": "sms", "email": "email", "call": "call"}


def consent_channel(channel: str) -> str:
    try:
        return CONSENT_CHANNEL[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}") from None


async def record_consent(
    session: AsyncSession,
    client_id: int,
    channel: str,
    status: str,
    *,
    source: str,
    note: str | None = None,
    at: datetime | None = None,
) -> Consent:
    """Append one consent event (``opted_in``, ``opted_out`` or ``unknown``) in the caller's transaction."""
    channel = consent_channel(channel)
    if channel not in CONSENT_CHANNELS:
        raise ValueError(f"unknown consent channel {channel!r}")
    if status not in CONSENT_STATUSES:
        raise ValueError(f"unknown consent status {status!r} (one of {', '.join(CONSENT_STATUSES)})")
    row = Consent(
        client_id=client_id,
        channel=channel,
        status=status,
        source=source[:100],
        note=note[:500] if note else None,
        recorded_at=at or utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


async def current_consent(session: AsyncSession, client_id: int, channel: str) -> str:
    """The client's status for a channel: the latest ledger row, ``unknown`` when there is none."""
    stmt = (
        select(Consent.status)
        .where(col(Consent.client_id) == client_id, col(Consent.channel) == consent_channel(channel))
        .order_by(col(Consent.recorded_at).desc(), col(Consent.id).desc())
        .limit(1)
    )
    found = (await session.exec(stmt)).first()
    return found or "unknown"


async def history(session: AsyncSession, client_id: int, channel: str | None = None) -> list[Consent]:
    stmt = select(Consent).where(col(Consent.client_id) == client_id)
    if channel is not None:
        stmt = stmt.where(col(Consent.channel) == consent_channel(channel))
    return list((await session.exec(stmt.order_by(col(Consent.recorded_at), col(Consent.id)))).all())


async def clients_with_phone(session: AsyncSession, phone: str) -> list[int]:
    """Unmerged clients holding this E.164 number, most recently updated first."""
    stmt = (
        select(Client.id)
        .join(ClientContact, col(ClientContact.client_id) == col(Client.id))
        .where(
            col(ClientContact.kind) == "phone",
            col(ClientContact.value) == phone,
            col(Client.merged_into_id).is_(None),
        )
        .order_by(col(Client.updated_at).desc(), col(Client.id).desc())
    )
    seen: list[int] = []
    for cid in (await session.exec(stmt)).all():
        if cid not in seen:
            seen.append(int(cid))  # type: ignore[arg-type]
    return seen


async def record_for_number(
    session: AsyncSession, phone: str, status: str, *, source: str, note: str | None = None
) -> list[int]:
    """Record a consent event for every client holding ``phone``; returns their ids."""
    ids = await clients_with_phone(session, phone)
    for cid in ids:
        await record_consent(session, cid, "sms", status, source=source, note=note)
    return ids


async def mark_unusable(session: AsyncSession, phone: str) -> int:
    """Flag a number the provider says cannot receive texts, on every client holding it."""
    result = await session.exec(  # type: ignore[call-overload]
        update(ClientContact)
        .where(col(ClientContact.kind) == "phone", col(ClientContact.value) == phone)
        .values(unusable=True)
    )
    return int(result.rowcount or 0)
