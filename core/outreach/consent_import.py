"""Importing an existing opt-in list (CSV) into the consent ledger (source kind ``import``).

Columns (header row, case-insensitive; extra columns are ignored): ``email`` and/or ``phone`` (at
least one), ``channel`` (sms, text, email, call, phone, mail, post; default ``sms`` with a phone
only, else ``email``), ``purpose`` (marketing, transactional; default marketing), ``status``
(opted_in/opted_out, or yes/no, in/out, true/false, 1/0, subscribed/unsubscribed; default opted_in),
``recorded_at`` (ISO date or date-time, UTC unless it has an offset; default: the import's time),
``wording`` (what the client agreed to), ``source`` (free text, e.g. "newsletter signup").

Clients are matched by normalised email or E.164 phone (``core.normalize``), among unmerged clients.
A row that cannot be used (no match, a bad value) is reported with its line number and skipped; it
never aborts the import. Importing the same file again appends nothing: a row is skipped when the
client already has an imported row with the same channel, purpose, status and wording (and the same
time, when the file gives one).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Client, ClientContact, Consent, utcnow
from core.normalize import NormalisationError, normalise_email, normalise_phone
from core.outreach.consent import record_consent

CHANNELS = {"sms": "sms", "text": "sms", "texts": "sms", "mms": "sms", "email": "email", "e-mail": "email",
            "call": "call", "phone": "call", "calls": "call", "mail": "mail", "post": "mail"}
STATUSES = {
    **dict.fromkeys(("opted_in", "opt_in", "opt-in", "in", "yes", "y", "true", "1", "subscribed"), "opted_in"),
    **dict.fromkeys(("opted_out", "opt_out", "opt-out", "out", "no", "n", "false", "0", "unsubscribed"), "opted_out"),
}
PURPOSES = {"marketing": "marketing", "promotions": "marketing", "promotional": "marketing",
            "transactional": "transactional", "service": "transactional"}


@dataclass
class ImportReport:
    rows: int = 0
    recorded: int = 0  # ledger rows appended (or that would be, in a dry run)
    unchanged: int = 0  # already imported before
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)

    def summary(self, *, dry_run: bool) -> str:
        verb = "would record" if dry_run else "recorded"
        return (f"{self.rows} row(s): {verb} {self.recorded} consent(s), {self.unchanged} already imported, "
                f"{len(self.problems)} problem(s)")


def _when(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _clients_by(session: AsyncSession, kind: str, value: str) -> list[int]:
    stmt = (
        select(ClientContact.client_id)
        .join(Client, col(Client.id) == col(ClientContact.client_id))
        .where(col(ClientContact.kind) == kind, col(ClientContact.value) == value, col(Client.merged_into_id).is_(None))
    )
    return sorted({int(c) for c in (await session.exec(stmt)).all()})


async def import_csv(
    session: AsyncSession,
    text: str,
    *,
    filename: str,
    recorded_by: str = "system",
    region: str = "US",
    dry_run: bool = False,
) -> ImportReport:
    """Import one CSV document in the caller's transaction (a dry run writes nothing)."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None:
        report.problems.append((1, "the file is empty"))
        return report
    reader.fieldnames = [(f or "").strip().lower() for f in reader.fieldnames]
    if not {"email", "phone"} & set(reader.fieldnames):
        report.problems.append((1, "the header needs an email or a phone column"))
        return report
    now = utcnow()
    seen: set[tuple[int, str, str, str, str | None, datetime | None]] = set()
    for raw in reader:
        line = reader.line_num
        report.rows += 1
        row = {k: (v or "").strip() for k, v in raw.items() if k}
        try:
            email = normalise_email(row["email"]) if row.get("email") else None
            phone = normalise_phone(row["phone"], region) if row.get("phone") else None
        except NormalisationError as exc:
            report.problems.append((line, str(exc)))
            continue
        if email is None and phone is None:
            report.problems.append((line, "no email or phone"))
            continue
        channel = CHANNELS.get((row.get("channel") or ("sms" if phone and not email else "email")).lower())
        status = STATUSES.get((row.get("status") or "opted_in").lower())
        purpose = PURPOSES.get((row.get("purpose") or "marketing").lower())
        if channel is None:
            report.problems.append((line, f"unknown channel {row.get('channel')!r}"))
            continue
        if status is None:
            report.problems.append((line, f"unknown status {row.get('status')!r}"))
            continue
        if purpose is None:
            report.problems.append((line, f"unknown purpose {row.get('purpose')!r}"))
            continue
        try:
            at = _when(row["recorded_at"]) if row.get("recorded_at") else None
        except ValueError:
            report.problems.append((line, f"recorded_at is not an ISO date: {row['recorded_at']!r}"))
            continue
        if at is not None and at > now:
            report.problems.append((line, "recorded_at is in the future"))
            continue
        # A phone is the better key for texts, an email for email; either finds the client.
        keys = [("phone", phone), ("email", email)]
        if channel not in ("sms", "call"):
            keys.reverse()
        clients: list[int] = []
        for kind, value in keys:
            if value and not clients:
                clients = await _clients_by(session, kind, value)
        if not clients:
            report.problems.append((line, f"no client with {' or '.join(v for _, v in keys if v)}"))
            continue
        wording = row.get("wording") or None
        for cid in clients:
            key = (cid, channel, purpose, status, wording, at)
            if key in seen or await _already(session, cid, channel, purpose, status, wording, at):
                report.unchanged += 1
                continue
            seen.add(key)
            report.recorded += 1
            if not dry_run:
                await record_consent(
                    session, cid, channel, status, purpose=purpose, source_kind="import",
                    source=f"import:{filename}:{line}"[:100], recorded_by=recorded_by, wording=wording,
                    note=row.get("source") or None, at=at or now,
                )
    return report


async def _already(
    session: AsyncSession, client_id: int, channel: str, purpose: str, status: str, wording: str | None,
    at: datetime | None,
) -> bool:
    stmt = select(Consent.id).where(
        col(Consent.client_id) == client_id,
        col(Consent.channel) == channel,
        col(Consent.purpose) == purpose,
        col(Consent.status) == status,
        col(Consent.source_kind) == "import",
        col(Consent.wording).is_(None) if wording is None else col(Consent.wording) == wording,
    )
    if at is not None:
        stmt = stmt.where(col(Consent.recorded_at) == at)
    return (await session.exec(stmt.limit(1))).first() is not None
