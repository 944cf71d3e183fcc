"""Who a text can reach, and why not: the send rules fed from the database, for many clients at once.

One implementation serves three callers, so they can never disagree: the outbox sender (deciding a
claimed row), the automations dry run (what today's run would send, wait with or skip) and the
automations page's reach (how many clients an automation can text at all, and why the rest cannot).
The rules themselves are the pure :func:`core.outreach.rules.decide`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Client, Location, Outreach
from core.outreach import consent, rules
from core.outreach.textable import numbers_for, unusable_numbers

SENT_STATES = ("sending", "sent", "delivered", "undelivered", "review")
CHUNK = 2000

# Stable codes of the reasons a text does not go out, with the words the panel shows for a count.
REASONS = {
    "no_number": "no mobile number on file",
    "unusable_number": "number cannot receive texts",
    "opted_out": "opted out of texts",
    "no_consent": "no text consent on record",
    "quiet_hours": "in quiet hours now (the text waits)",
    "frequency_cap": "texted in the last 24 h (frequency cap)",
    "bad_rules": "send rules cannot be applied (check the store's quiet hours)",
}


@dataclass(frozen=True)
class Facts:
    """What the send rules need to know about one recipient."""

    client_id: int
    to_address: str | None
    usable: bool
    consent: str
    window: rules.SendWindow
    last_marketing_at: datetime | None

    @property
    def address_problem(self) -> str | None:
        if not self.to_address:
            return "no_number"
        return None if self.usable else "unusable_number"


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


async def windows(session: AsyncSession) -> dict[int, rules.SendWindow | ValueError]:
    """Each location's marketing window (or the error its bad quiet-hours setting raises)."""
    out: dict[int, rules.SendWindow | ValueError] = {}
    for loc in (await session.exec(select(Location))).all():
        try:
            out[loc.id] = rules.SendWindow.parse(loc.quiet_hours_start, loc.quiet_hours_end, loc.timezone)  # type: ignore[index]
        except ValueError as exc:
            out[loc.id] = exc  # type: ignore[index]
    return out


async def load_facts(
    session: AsyncSession,
    client_ids: Sequence[int],
    *,
    kind: str,
    channel: str = "sms",
    addresses: Mapping[int, str | None] | None = None,
    fallback_locations: Mapping[int, int | None] | None = None,
    exclude_outreach: Sequence[int] = (),
) -> dict[int, Facts | ValueError]:
    """The facts for each client, in a few set-based queries.

    ``addresses``: a number already chosen for a client (a queued row's ``to_address``); otherwise the
    number :func:`core.outreach.textable.numbers_for` picks (the one they last texted from, else the
    first mobile, else a number that may be one), as the composer and the Today page do.
    ``fallback_locations``: the location whose window applies to a client without a home location (the
    message's). ``exclude_outreach``: rows not to count for the frequency cap (the ones being decided).
    A client whose window cannot be parsed maps to the ``ValueError``.
    """
    ids = sorted({int(c) for c in client_ids})
    addresses = dict(addresses or {})
    fallback_locations = fallback_locations or {}
    homes: dict[int, int | None] = {}
    for chunk in _chunks(ids):
        found_homes = await session.exec(select(Client.id, Client.home_location_id).where(col(Client.id).in_(chunk)))
        for cid, home in found_homes.all():
            homes[int(cid)] = home  # type: ignore[arg-type]
    unchosen = [cid for cid in ids if addresses.get(cid) is None]
    if unchosen:
        numbers = await numbers_for(session, unchosen)
        for cid in unchosen:
            addresses[cid] = numbers[cid].text_to
    # A number flagged unusable on any client cannot receive texts for anyone.
    unusable = await unusable_numbers(session, (a for a in addresses.values() if a))
    statuses: dict[int, str] = {}
    for chunk in _chunks(ids):
        statuses.update(await consent.current_for_clients(session, chunk, channel, consent.purpose_of(kind)))
    last: dict[int, datetime] = {}
    if kind == "marketing":
        when = func.coalesce(Outreach.sent_at, Outreach.claimed_at)
        for chunk in _chunks(ids):
            stmt = select(Outreach.client_id, func.max(when)).where(
                col(Outreach.client_id).in_(chunk),
                col(Outreach.direction) == "outbound",
                col(Outreach.kind) == "marketing",
                col(Outreach.state).in_(SENT_STATES),
            )
            if exclude_outreach:
                stmt = stmt.where(col(Outreach.id).notin_(list(exclude_outreach)))
            for cid, at in (await session.exec(stmt.group_by(col(Outreach.client_id)))).all():  # type: ignore[call-overload]
                if at is not None:
                    last[int(cid)] = at
    zones = await windows(session)
    default = rules.SendWindow.parse(None, None, "UTC")
    out: dict[int, Facts | ValueError] = {}
    for cid in ids:
        # The client's home location decides their local time; the message's location stands in for
        # a client without one, and UTC with the default window for neither.
        window: rules.SendWindow | ValueError = default
        for lid in (homes.get(cid), fallback_locations.get(cid)):
            if lid is not None and lid in zones:
                window = zones[lid]
                break
        if isinstance(window, ValueError):
            out[cid] = window
            continue
        address = addresses.get(cid)
        out[cid] = Facts(
            client_id=cid,
            to_address=address,
            usable=bool(address) and address not in unusable,
            consent=statuses.get(cid, "unknown"),
            window=window,
            last_marketing_at=last.get(cid),
        )
    return out


def decide(
    facts: Facts | ValueError, *, kind: str, now: datetime, last_marketing_at: datetime | None = None
) -> rules.Decision:
    """The send rules for one recipient at ``now`` (``last_marketing_at`` overrides the stored one:
    the sender adds texts claimed earlier in the same batch)."""
    if isinstance(facts, ValueError):
        return rules.Decision("skip", f"cannot apply the send rules: {facts}", code="bad_rules")
    return rules.decide(
        kind=kind,
        consent=facts.consent,
        now=now,
        window=facts.window,
        last_marketing_at=last_marketing_at if last_marketing_at is not None else facts.last_marketing_at,
        has_address=facts.usable,
        address_problem=facts.address_problem,
    )
