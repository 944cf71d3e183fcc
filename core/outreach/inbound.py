"""Messages people send us: every one joins its client's conversation; keywords change consent.

Keywords follow the carriers' and Twilio's defaults: the whole message must be the keyword
(case-insensitive; surrounding spaces and a trailing "." or "!" are ignored, so "Stop." counts —
honouring one opt-out too many is the safe side). Opt-out and opt-in confirmations are sent by the
provider's own keyword handling, so Clasp only answers HELP.

A message from a number no client has is kept with ``client_id`` NULL: the unmatched inbox (see
``core.outreach.conversations``). No client is invented for it — the POS stays the source of
clients, and identity resolution would otherwise have to undo a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.attribution.touches import touch_changed
from core.models import Client, Location, Outreach, utcnow
from core.outreach import consent
from core.plugin import InboundMessage

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})
Keyword = Literal["opt_out", "opt_in", "help"]


def keyword(body: str) -> Keyword | None:
    word = (body or "").strip().rstrip(".!").strip().upper()
    if word in OPT_OUT:
        return "opt_out"
    if word in OPT_IN:
        return "opt_in"
    if word in HELP:
        return "help"
    return None


def help_text(location: Location | None) -> str:
    who = location.name if location is not None else "Messages from your jeweler"
    call = f" For help call {location.phone}." if location is not None and location.phone else ""
    return f"{who}: reply STOP to opt out, START to opt back in.{call} Msg & data rates may apply."


@dataclass
class Received:
    row: Outreach
    keyword: Keyword | None
    reply: str | None
    duplicate: bool = False


async def receive(session: AsyncSession, *, connector_id: int, message: InboundMessage) -> Received:
    """Store an inbound message (once per provider id) and apply its keyword, in one transaction."""
    kw = keyword(message.body)
    existing = (
        await session.exec(
            select(Outreach).where(
                col(Outreach.provider_id) == message.provider_id,
                col(Outreach.direction) == "inbound",
                col(Outreach.connector_id) == connector_id,
            )
        )
    ).first()
    if existing is not None:
        # The provider retried a webhook we already stored: answer the same, change nothing.
        location = await session.get(Location, existing.location_id) if existing.location_id else None
        return Received(existing, kw, help_text(location) if kw == "help" else None, duplicate=True)
    client_ids = await consent.clients_with_phone(session, message.from_address)
    client = await session.get(Client, client_ids[0]) if client_ids else None
    now = utcnow()
    row = Outreach(
        client_id=client.id if client else None,
        associate_id=await _conversation_associate(session, client) if client else None,
        location_id=client.home_location_id if client else None,
        connector_id=connector_id,
        channel="mms" if message.media_urls else "sms",
        direction="inbound",
        kind="transactional",
        from_address=message.from_address,
        to_address=message.to_address,
        body=message.body or "",
        media_urls=list(message.media_urls),
        state="received",
        provider_id=message.provider_id,
        provider_status="received",
        due_at=message.received_at or now,
        sent_at=message.received_at or now,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    # A reply can change which outreach earns the client's next sale (engagement-weighted models).
    await touch_changed(session, entity="outreach", entity_id=row.id, client_id=row.client_id, at=row.sent_at,
                        state=row.state, origin=f"connector:{connector_id}")
    if kw in ("opt_out", "opt_in"):
        word = (message.body or "").strip().upper()
        await consent.record_for_number(
            session,
            message.from_address,
            "opted_out" if kw == "opt_out" else "opted_in",
            source=f"sms:{word}"[:100],
            note=f"texted {word!r} to {message.to_address} (message {message.provider_id})",
            source_kind="keyword",
            recorded_by=f"connector:{connector_id}",
            wording=(message.body or "").strip()[:500] or word,
            connector_id=connector_id,
        )
    reply = None
    if kw == "help":
        location = await session.get(Location, row.location_id) if row.location_id else None
        reply = help_text(location)
    return Received(row, kw, reply)


async def _conversation_associate(session: AsyncSession, client: Client) -> int | None:
    """Who should see a reply: whoever last texted the client, else the client's own associate."""
    stmt = (
        select(Outreach.associate_id)
        .where(
            col(Outreach.client_id) == client.id,
            col(Outreach.direction) == "outbound",
            col(Outreach.associate_id).is_not(None),
        )
        .order_by(col(Outreach.created_at).desc(), col(Outreach.id).desc())
        .limit(1)
    )
    last = (await session.exec(stmt)).first()
    return last if last is not None else client.owner_associate_id
