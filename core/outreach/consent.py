"""The consent ledger: append-only, one row per event, per client, channel and purpose.

**Purposes.** ``marketing`` (promotions, automations: a text goes out only with an explicit opt-in)
and ``transactional`` (a repair is ready, a reply in a conversation: goes out unless the client
opted out). A STOP keyword opts out of both; START opts in to both.

**Which row wins** (:func:`resolve`): the latest, with two guards —

1. a STOP (source kind ``keyword`` or ``provider`` opt-out) is lifted only by a later ``keyword``
   opt-in (the client texting START): the carrier blocks texts after STOP until then, whatever a
   POS, an import or an associate records;
2. an opt-in read from a POS (``pos_flag``) does not lift an opt-out a person recorded (``in_store``,
   ``web_form``, ``import``) unless the connector's policy allowed it (``overrides_opt_out``); and a
   POS saying "no permission" (status ``unknown``) only withdraws what that same POS record (same
   connector and ``source``) had granted, never what a person or another record recorded.

Consent belongs to a phone number as much as to a person: a STOP from a number opts out every
(unmerged) client holding that number, since any of them would be texted at it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Client, ClientContact, Consent, utcnow
from core.models.clients import CONSENT_CHANNELS, CONSENT_PURPOSES, CONSENT_SOURCE_KINDS, CONSENT_STATUSES

# Outreach channels and the consent channel that governs them (a picture message is still a text).
CONSENT_CHANNEL = {"sms": "sms", "mms": "sms", "email": "email", "call": "call", "mail": "mail"}
STOP_KINDS = ("keyword", "provider")
PERSON_KINDS = ("in_store", "web_form", "import", "legacy")
CHANNEL_LABELS = {"sms": "Texts", "email": "Email", "call": "Phone calls", "mail": "Post"}
PURPOSE_LABELS = {"marketing": "Promotions", "transactional": "Service messages"}
STATUS_LABELS = {"opted_in": "Opted in", "opted_out": "Opted out", "unknown": "No consent on record"}
SOURCE_LABELS = {
    "pos_flag": "Point of sale",
    "in_store": "In store",
    "web_form": "Web form",
    "keyword": "Text keyword",
    "import": "Import",
    "provider": "Messaging provider",
    "legacy": "Recorded earlier",
}


def consent_channel(channel: str) -> str:
    try:
        return CONSENT_CHANNEL[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}") from None


def purpose_of(kind: str) -> str:
    """The consent purpose an outreach kind needs (``marketing`` or anything else: transactional)."""
    return "marketing" if kind == "marketing" else "transactional"


def check(channel: str, purpose: str, status: str, source_kind: str) -> str:
    """Validate one event's values; returns the consent channel."""
    channel = consent_channel(channel)
    if channel not in CONSENT_CHANNELS:
        raise ValueError(f"unknown consent channel {channel!r}")
    if purpose not in CONSENT_PURPOSES:
        raise ValueError(f"unknown consent purpose {purpose!r} (one of {', '.join(CONSENT_PURPOSES)})")
    if status not in CONSENT_STATUSES:
        raise ValueError(f"unknown consent status {status!r} (one of {', '.join(CONSENT_STATUSES)})")
    if source_kind not in CONSENT_SOURCE_KINDS:
        raise ValueError(f"unknown consent source kind {source_kind!r}")
    return channel


async def record_consent(
    session: AsyncSession,
    client_id: int,
    channel: str,
    status: str,
    *,
    source: str,
    purpose: str = "marketing",
    source_kind: str = "legacy",
    recorded_by: str = "system",
    wording: str | None = None,
    connector_id: int | None = None,
    overrides_opt_out: bool = False,
    note: str | None = None,
    at: datetime | None = None,
) -> Consent:
    """Append one consent event (``opted_in``, ``opted_out`` or ``unknown``) in the caller's transaction."""
    channel = check(channel, purpose, status, source_kind)
    row = Consent(
        client_id=client_id,
        channel=channel,
        purpose=purpose,
        status=status,
        source_kind=source_kind,
        source=source[:100],
        recorded_by=recorded_by[:320],
        wording=wording or None,
        connector_id=connector_id,
        overrides_opt_out=overrides_opt_out,
        note=note[:500] if note else None,
        recorded_at=at or utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


def resolve(rows: Iterable[Consent]) -> Consent | None:
    """The row deciding the current status among one client's rows for one channel and purpose
    (any order); None when there is none or nothing counts. See the module docstring for the rules."""
    current: Consent | None = None
    stopped = False
    for row in sorted(rows, key=lambda r: (r.recorded_at, r.id or 0)):
        if row.source_kind in STOP_KINDS:
            if row.status == "opted_out":
                stopped = True
                current = row
            elif row.source_kind == "keyword" and row.status == "opted_in":
                stopped = False
                current = row
            continue
        if stopped:
            continue  # only START lifts a STOP
        if row.source_kind == "pos_flag" and current is not None:
            same_source = (current.source_kind, current.connector_id, current.source) == (
                "pos_flag", row.connector_id, row.source)
            if row.status == "unknown" and not same_source:
                continue  # "no permission" withdraws only what that same POS record had granted
            if (row.status == "opted_in" and current.status == "opted_out" and current.source_kind != "pos_flag"
                    and not row.overrides_opt_out):
                continue
        current = row
    return current


def status_of(row: Consent | None) -> str:
    return row.status if row is not None else "unknown"


async def current_row(
    session: AsyncSession, client_id: int, channel: str, purpose: str = "marketing"
) -> Consent | None:
    stmt = select(Consent).where(
        col(Consent.client_id) == client_id,
        col(Consent.channel) == consent_channel(channel),
        col(Consent.purpose) == purpose,
    )
    return resolve((await session.exec(stmt)).all())


async def current_consent(session: AsyncSession, client_id: int, channel: str, purpose: str = "marketing") -> str:
    """The client's status for a channel and purpose (see :func:`resolve`); ``unknown`` when none."""
    return status_of(await current_row(session, client_id, channel, purpose))


async def current_for_clients(
    session: AsyncSession, client_ids: Sequence[int], channel: str, purpose: str = "marketing"
) -> dict[int, str]:
    """``current_consent`` for many clients at once (clients without a row are left out)."""
    channel = consent_channel(channel)
    grouped: dict[int, list[Consent]] = defaultdict(list)
    ids = sorted(set(client_ids))
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        stmt = select(Consent).where(
            col(Consent.client_id).in_(chunk), col(Consent.channel) == channel, col(Consent.purpose) == purpose
        )
        for row in (await session.exec(stmt)).all():
            grouped[row.client_id].append(row)
    return {cid: status_of(resolve(rows)) for cid, rows in grouped.items()}


async def history(
    session: AsyncSession, client_id: int, channel: str | None = None, purpose: str | None = None
) -> list[Consent]:
    """The client's ledger, oldest first."""
    stmt = select(Consent).where(col(Consent.client_id) == client_id)
    if channel is not None:
        stmt = stmt.where(col(Consent.channel) == consent_channel(channel))
    if purpose is not None:
        stmt = stmt.where(col(Consent.purpose) == purpose)
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
    session: AsyncSession,
    phone: str,
    status: str,
    *,
    source: str,
    note: str | None = None,
    source_kind: str = "provider",
    recorded_by: str = "system",
    wording: str | None = None,
    connector_id: int | None = None,
) -> list[int]:
    """Record a text consent event, for both purposes, for every client holding ``phone``; returns
    their ids. The default source kind is ``provider`` (the messaging provider said the number opted
    out); STOP/START keywords pass ``keyword``."""
    if recorded_by == "system" and source.startswith("connector:"):
        recorded_by = ":".join(source.split(":")[:2])
    ids = await clients_with_phone(session, phone)
    for cid in ids:
        for purpose in CONSENT_PURPOSES:
            await record_consent(
                session, cid, "sms", status, source=source, note=note, purpose=purpose, source_kind=source_kind,
                recorded_by=recorded_by, wording=wording, connector_id=connector_id,
            )
    return ids


async def mark_unusable(session: AsyncSession, phone: str) -> int:
    """Flag a number the provider says cannot receive texts, on every client holding it."""
    result = await session.exec(  # type: ignore[call-overload]
        update(ClientContact)
        .where(col(ClientContact.kind) == "phone", col(ClientContact.value) == phone)
        .values(unusable=True)
    )
    return int(result.rowcount or 0)


# ------------------------------------------------------------------------------ standard wordings

# The app setting holding the owner's standard in-store wordings, one per channel (the associate can
# still change the text on the form: the ledger keeps exactly what was shown).
WORDING_KEY = "consent_wording"
DEFAULT_WORDINGS = {
    "sms": "Yes, I'd like to receive texts from {store} about new pieces, events and offers. "
    "Up to 4 messages a month; message and data rates may apply. Reply STOP to opt out, HELP for help.",
    "email": "Yes, I'd like to receive emails from {store} about new pieces, events and offers. "
    "I can unsubscribe at any time.",
    "call": "Yes, {store} may call me about new pieces, events and offers.",
    "mail": "Yes, I'd like to receive catalogs and invitations from {store} by post.",
}


async def default_wordings(session: AsyncSession) -> dict[str, str]:
    """The standard wording per channel: the owner's (app setting ``consent_wording``) over ours."""
    from core import app_settings

    stored = await app_settings.read(session, WORDING_KEY)
    return {c: str(stored.get(c) or DEFAULT_WORDINGS[c]) for c in CONSENT_CHANNELS}


async def save_wordings(session: AsyncSession, values: dict[str, str]) -> None:
    from core import app_settings

    kept = {c: str(values[c]).strip() for c in CONSENT_CHANNELS if values.get(c)}
    await app_settings.write(session, WORDING_KEY, kept)


# --------------------------------------------------------------------------------------- the card


@dataclass
class ConsentLine:
    """One (channel, purpose) of the consent card."""

    channel: str
    purpose: str
    status: str
    row: Consent | None

    @property
    def label(self) -> str:
        return f"{CHANNEL_LABELS[self.channel]} · {PURPOSE_LABELS[self.purpose]}"

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.row.source_kind, self.row.source_kind) if self.row else ""


async def consent_summary(session: AsyncSession, client_id: int) -> dict[str, Any]:
    """Everything ``clients/_consent.html`` needs: the current status per channel and purpose (with
    the deciding row: source, time, who, wording), the ledger newest first, and the in-store form's
    defaults. The caller has already checked the client is visible to the principal."""
    rows = await history(session, client_id)
    by_key: dict[tuple[str, str], list[Consent]] = defaultdict(list)
    for row in rows:
        by_key[(row.channel, row.purpose)].append(row)
    lines = []
    for channel in CONSENT_CHANNELS:
        for purpose in CONSENT_PURPOSES:
            decided = resolve(by_key.get((channel, purpose), []))
            lines.append(ConsentLine(channel, purpose, status_of(decided), decided))
    from core.models import Location

    client = await session.get(Client, client_id)
    home = await session.get(Location, client.home_location_id) if client and client.home_location_id else None
    store = home.name if home else "our store"
    wordings = {c: w.replace("{store}", store) for c, w in (await default_wordings(session)).items()}
    return {
        "client_id": client_id,
        "lines": lines,
        "current": {(ln.channel, ln.purpose): ln for ln in lines},
        "history": list(reversed(rows)),
        "channels": [(c, CHANNEL_LABELS[c]) for c in CONSENT_CHANNELS],
        "purposes": [(p, PURPOSE_LABELS[p]) for p in CONSENT_PURPOSES],
        "source_labels": SOURCE_LABELS,
        "status_labels": STATUS_LABELS,
        "wordings": wordings,
        "form": {"channel": "sms", "purpose": "marketing", "status": "opted_in", "wording": wordings.get("sms", "")},
        "errors": {},
        "saved": None,
    }
