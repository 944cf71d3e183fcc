"""The outbox sender: claim due rows, apply the send rules, hand each to its provider once.

Exactly-once from at-least-once execution:

1. **Claim.** One transaction moves due rows ``pending → sending`` with a guarded UPDATE (``WHERE
   state = 'pending'``; on PostgreSQL the candidates are picked ``FOR UPDATE SKIP LOCKED``), then
   evaluates the send rules for each: rows to send stay ``sending`` (attempts + 1), rows in quiet
   hours go back to ``pending`` with a later ``due_at``, others become ``skipped`` with the reason.
   Only a committed ``sending`` row is ever handed to a provider, and only by the worker that
   moved it there.
2. **Send.** The plugin's answer is recorded in a second transaction. Retries happen only when the
   provider certainly did not accept the message (:class:`core.plugin.TransientError`: 429, 5xx,
   connection refused): back to ``pending`` with backoff.
3. **Reconcile.** A row still ``sending`` after ``STALE_CLAIM`` lost its worker somewhere between
   the claim and the record, or the provider's answer was lost (timeout after the request). It is
   looked up at the provider (:meth:`core.plugin.Sender.lookup`) and adopted when found; otherwise
   it is parked in ``review`` for a person. It is never re-sent blindly. The per-message status
   callback URL (``?outreach=<id>``) also lets the provider's first status report adopt it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.attribution.touches import text_delivered
from core.models import Client, Connector, Location, Outreach, SyncError, utcnow
from core.outreach import eligibility, rules, status
from core.outreach.providers import NoSender, Senders, choose_connector, status_callback_url
from core.plugin import OutboundMessage, PluginError, SendResult, TransientError
from core.runtime import Runtime

log = logging.getLogger(__name__)

# A claim older than this lost its worker (the provider call itself times out far sooner).
STALE_CLAIM = timedelta(minutes=3)
# Texts the provider keeps refusing for now (429/5xx) fail after this many attempts.
MAX_ATTEMPTS = 8
# How far before the claim a provider's clock may be when looking a message up after a crash.
CLOCK_SKEW = timedelta(minutes=2)
# Fault injection for the crash tests: the process exits at the named point (see CRASH_POINTS).
CRASH_ENV = "CLASP_OUTBOX_CRASH_AT"
CRASH_POINTS = ("claiming", "claimed", "before_send", "after_send", "recorded")
CRASH_EXIT = 86
SENT_STATES = ("sending", "sent", "delivered", "undelivered", "review")


def _crash_point(name: str) -> None:
    # os._exit: no finally blocks, no flushing, no commit — as close to SIGKILL as Python gets.
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT)


@dataclass
class FlushReport:
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    reconciled: list[int] = field(default_factory=list)
    review: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self.__dataclass_fields__}

    def __str__(self) -> str:
        return ", ".join(f"{n} {k}" for k, n in self.summary().items() if n) or "nothing due"


@dataclass
class Claimed:
    outreach_id: int
    connector_id: int
    message: OutboundMessage


# ---------------------------------------------------------------------------------------------- claim


async def _window_for(session: AsyncSession, client: Client | None, row: Outreach) -> rules.SendWindow:
    # The client's home location decides their local time; the message's location stands in for a
    # client without one, and UTC with the default window for neither.
    for location_id in (client.home_location_id if client else None, row.location_id):
        if location_id is not None:
            location = await session.get(Location, location_id)
            if location is not None:
                return rules.SendWindow.parse(location.quiet_hours_start, location.quiet_hours_end, location.timezone)
    return rules.SendWindow.parse(None, None, "UTC")


async def last_marketing_at(session: AsyncSession, client_id: int, *, exclude: Sequence[int] = ()) -> datetime | None:
    """When the client's latest marketing text went out (or began to), for the frequency cap."""
    when = func.coalesce(Outreach.sent_at, Outreach.claimed_at)
    stmt = select(func.max(when)).where(
        col(Outreach.client_id) == client_id,
        col(Outreach.direction) == "outbound",
        col(Outreach.kind) == "marketing",
        col(Outreach.state).in_(SENT_STATES),
    )
    if exclude:
        stmt = stmt.where(col(Outreach.id).notin_(list(exclude)))
    return (await session.exec(stmt)).first()  # type: ignore[call-overload,no-any-return]


async def claim(
    rt: Runtime, *, now: datetime, limit: int = 1, report: FlushReport | None = None
) -> tuple[int, list[Claimed]]:
    """Claim up to ``limit`` due rows and decide each; returns (rows claimed, the ones to send).

    The sender claims one row at a time: a crash then leaves at most the one row it was sending in
    doubt, never a whole batch that was claimed but not yet attempted.
    """
    report = report if report is not None else FlushReport()
    postgres = rt.db.dialect == "postgresql"
    out: list[Claimed] = []
    async with rt.db.transaction() as session:
        candidates = (
            select(Outreach.id)
            .where(
                col(Outreach.state) == "pending",
                col(Outreach.direction) == "outbound",
                col(Outreach.due_at) <= now,
            )
            .order_by(col(Outreach.due_at), col(Outreach.id))
            .limit(limit)
        )
        if postgres:
            # Lock the candidates first, then update exactly those: inside `UPDATE … WHERE id IN
            # (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` PostgreSQL may re-run the subquery per row
            # and, skipping the rows it just locked, claim more than n.
            locked = [int(i) for i in (await session.exec(candidates.with_for_update(skip_locked=True))).all()]
            if not locked:
                return 0, []
            target = col(Outreach.id).in_(locked)
        else:
            # One write statement: SQLite takes its write lock at once, so two senders serialise here.
            target = col(Outreach.id).in_(candidates.scalar_subquery())
        claimed = await session.exec(  # type: ignore[call-overload]
            update(Outreach)
            .where(target, col(Outreach.state) == "pending")
            .values(state="sending", claimed_at=now, updated_at=now)
            .returning(Outreach.id)
        )
        ids = sorted(int(r[0]) for r in claimed.all())
        if not ids:
            return 0, []
        rows = {r.id: r for r in (await session.exec(select(Outreach).where(col(Outreach.id).in_(ids)))).all()}
        client_ids = sorted({r.client_id for r in rows.values() if r.client_id is not None})
        if postgres and client_ids:
            # Serialise rule checks per client across workers: the frequency cap counts what others
            # claimed, and READ COMMITTED shows it once their transaction (holding this lock) commits.
            await session.exec(
                select(Client.id).where(col(Client.id).in_(client_ids)).order_by(col(Client.id)).with_for_update()
            )
        _crash_point("claiming")  # inside the claim transaction: it rolls back, the rows stay pending
        undecided = set(ids)
        batch_marketing: dict[int, datetime] = {}
        senders: dict[int, Connector] = {}
        for oid in ids:
            row = rows[oid]
            undecided.discard(oid)
            client = await session.get(Client, row.client_id) if row.client_id is not None else None
            if client is not None:
                # The same facts and rules as the automations' dry run and reach (core.outreach.eligibility).
                facts = (
                    await eligibility.load_facts(
                        session,
                        [client.id],  # type: ignore[list-item]
                        kind=row.kind,
                        channel=row.channel,
                        addresses={client.id: row.to_address},  # type: ignore[dict-item]
                        fallback_locations={client.id: row.location_id},  # type: ignore[dict-item]
                        exclude_outreach=[oid, *undecided],
                    )
                )[client.id]  # type: ignore[index]
                if row.to_address is None and not isinstance(facts, ValueError):
                    row.to_address = facts.to_address
            else:
                facts = await _facts_without_client(session, row)
            if isinstance(facts, ValueError):
                # Bad data on one row (e.g. a location's quiet hours "9am") must not block the queue.
                _finish(row, "failed", f"cannot apply the send rules: {facts}", now)
                session.add(row)
                session.add(_error_row(row, facts))
                report.failed.append(oid)
                continue
            in_batch = batch_marketing.get(client.id) if client is not None else None  # type: ignore[arg-type]
            last = max(filter(None, (facts.last_marketing_at, in_batch)), default=None)
            decision = eligibility.decide(facts, kind=row.kind, now=now, last_marketing_at=last)
            if decision.action == "send":
                try:
                    connector = await choose_connector(rt, session, row.connector_id)
                except NoSender as exc:
                    _finish(row, "failed", str(exc), now)
                    report.failed.append(oid)
                    session.add(row)
                    continue
                assert connector.id is not None
                senders[oid] = connector
                row.connector_id = connector.id
                row.attempts += 1
                row.state_reason = None
                if client is not None and row.kind == "marketing":
                    batch_marketing[client.id] = now  # type: ignore[index]
                out.append(
                    Claimed(
                        outreach_id=oid,
                        connector_id=connector.id,
                        message=OutboundMessage(
                            outreach_id=oid,
                            to=row.to_address,  # type: ignore[arg-type]
                            body=row.body,
                            media_urls=list(row.media_urls or []),
                            status_callback=status_callback_url(rt, connector, oid),
                            idempotency_key=f"clasp-outreach-{oid}",
                            not_before=now - CLOCK_SKEW,
                        ),
                    )
                )
            elif decision.action == "defer":
                row.state = "pending"
                row.claimed_at = None
                row.due_at = decision.until  # type: ignore[assignment]
                row.state_reason = decision.reason
                row.updated_at = now
                report.deferred.append(oid)
            else:
                _finish(row, "skipped", decision.reason, now)
                report.skipped.append(oid)
            session.add(row)
    return len(ids), out


async def _facts_without_client(session: AsyncSession, row: Outreach) -> eligibility.Facts | ValueError:
    """A row to a number no client holds (a reply to an unknown number): no consent on record."""
    try:
        window = await _window_for(session, None, row)
    except ValueError as exc:
        return exc
    usable = bool(row.to_address) and not await _unusable(session, row.to_address)
    return eligibility.Facts(0, row.to_address, usable, "unknown", window, None)


async def _unusable(session: AsyncSession, phone: str | None) -> bool:
    from core.models import ClientContact

    if not phone:
        return True
    stmt = select(ClientContact.id).where(
        col(ClientContact.kind) == "phone", col(ClientContact.value) == phone, col(ClientContact.unusable).is_(True)
    )
    return (await session.exec(stmt.limit(1))).first() is not None


def _error_row(row: Outreach, exc: Exception) -> SyncError:
    """The error queue entry for a message the outbox could not handle (requeue it after a fix)."""
    return SyncError(
        connector_id=row.connector_id,
        stage="outbox",
        external_id=str(row.id),
        payload={"outreach_id": row.id, "client_id": row.client_id, "kind": row.kind},
        context={"fix": "correct the data, then `clasp outbox requeue` the message"},
        reason=f"{type(exc).__name__}: {exc}",
    )


def _finish(row: Outreach, state: str, reason: str | None, now: datetime) -> None:
    row.state = state
    row.state_reason = reason[:500] if reason else None
    row.updated_at = now


# ----------------------------------------------------------------------------------------------- send


async def send_claimed(rt: Runtime, claimed: Claimed, senders: Senders, *, now: datetime, report: FlushReport) -> None:
    """Hand one claimed row to its provider and record the answer."""
    _crash_point("claimed")
    async with rt.db.session() as session:
        connector = await session.get(Connector, claimed.connector_id)
    try:
        if connector is None:
            raise NoSender(f"connector {claimed.connector_id} was removed")
        sender = senders.get(connector)
    except (NoSender, PluginError, KeyError, ValueError) as exc:
        # Nothing reached a provider: safe to record as failed.
        await _record_failure(rt, claimed.outreach_id, "failed", f"cannot send: {exc}", now=now)
        report.failed.append(claimed.outreach_id)
        return
    _crash_point("before_send")
    try:
        result = await sender.send(claimed.message)
    except TransientError as exc:
        await _record_retry(rt, claimed.outreach_id, exc, now=now, report=report)
        return
    except PluginError as exc:
        await _record_failure(rt, claimed.outreach_id, "failed", str(exc), now=now)
        report.failed.append(claimed.outreach_id)
        return
    except Exception as exc:
        # A plugin bug or an unclassified transport error: the provider may have the message.
        log.exception("sending outreach %s raised; leaving it for reconciliation", claimed.outreach_id)
        result = SendResult(state="unknown", message=f"{type(exc).__name__}: {exc}")
    _crash_point("after_send")
    await record_result(rt, claimed.outreach_id, connector.id, result, now=now, report=report)  # type: ignore[arg-type]
    _crash_point("recorded")


async def record_result(
    rt: Runtime, outreach_id: int, connector_id: int, result: SendResult, *, now: datetime, report: FlushReport
) -> None:
    async with rt.db.transaction() as session:
        row = await session.get(Outreach, outreach_id, with_for_update=True)
        if row is None:
            return
        source = f"connector:{connector_id}"
        if result.state == "unknown":
            row.state_reason = f"outcome unknown, will be checked with the provider: {result.message}"[:500]
            report.unknown.append(outreach_id)
        elif result.state in ("failed", "undelivered"):
            if row.state in ("sending", "review"):
                row.state = result.state
                row.error_code = result.error_code
                row.state_reason = (result.message or f"provider error {result.error_code}")[:500]
            await status.recipient_problem(session, row, result.recipient, source=f"{source}:{result.error_code}")
            report.failed.append(outreach_id)
        else:
            if row.provider_id is None:
                row.provider_id = result.provider_id
            delivery = "delivered" if result.state == "delivered" else "queued"
            if status.advance(row, delivery, provider_status=result.provider_status or result.state, at=now):
                await text_delivered(session, row, origin=source)
            if row.sent_at is None:
                row.sent_at = now
            report.sent.append(outreach_id)
        row.updated_at = utcnow()
        session.add(row)


async def _record_retry(
    rt: Runtime, outreach_id: int, exc: TransientError, *, now: datetime, report: FlushReport
) -> None:
    async with rt.db.transaction() as session:
        row = await session.get(Outreach, outreach_id, with_for_update=True)
        if row is None or row.state != "sending":
            return
        if row.attempts >= MAX_ATTEMPTS:
            _finish(row, "failed", f"gave up after {row.attempts} attempts: {exc}", now)
            report.failed.append(outreach_id)
        else:
            delay = rules.retry_delay(row.attempts, exc.retry_after)
            row.state = "pending"
            row.claimed_at = None
            row.due_at = now + delay
            row.state_reason = (
                f"attempt {row.attempts} refused for now ({exc}); retrying in {int(delay.total_seconds())} s"[:500]
            )
            row.updated_at = now
            report.retrying.append(outreach_id)
        session.add(row)


async def _record_failure(rt: Runtime, outreach_id: int, state: str, reason: str, *, now: datetime) -> None:
    async with rt.db.transaction() as session:
        row = await session.get(Outreach, outreach_id, with_for_update=True)
        if row is not None and row.state == "sending":
            _finish(row, state, reason, now)
            session.add(row)


# ------------------------------------------------------------------------------------------ reconcile


async def reconcile(
    rt: Runtime, *, now: datetime | None = None, stale_after: timedelta = STALE_CLAIM, report: FlushReport | None = None
) -> FlushReport:
    """Settle rows stuck in ``sending``: adopt what the provider has, park the rest in ``review``."""
    now = now or utcnow()
    report = report if report is not None else FlushReport()
    senders = Senders(rt)
    async with rt.db.session() as session:
        stmt = select(Outreach.id, Outreach.claimed_at).where(
            col(Outreach.state) == "sending",
            col(Outreach.direction) == "outbound",
            or_(col(Outreach.claimed_at).is_(None), col(Outreach.claimed_at) <= now - stale_after),
        )
        stuck = [(int(i), c) for i, c in (await session.exec(stmt.order_by(col(Outreach.id)))).all()]  # type: ignore[call-overload]
    for oid, claimed_at in stuck:
        await _reconcile_one(rt, oid, claimed_at, senders, now=now, report=report)
    return report


async def _reconcile_one(
    rt: Runtime, oid: int, claimed_at: datetime | None, senders: Senders, *, now: datetime, report: FlushReport
) -> None:
    async with rt.db.transaction() as session:
        # Re-stamp the claim so a second reconciler running now leaves this row alone.
        taken = await session.exec(  # type: ignore[call-overload]
            update(Outreach)
            .where(
                col(Outreach.id) == oid,
                col(Outreach.state) == "sending",
                col(Outreach.claimed_at).is_(None) if claimed_at is None else col(Outreach.claimed_at) == claimed_at,
            )
            .values(claimed_at=now)
        )
        if not taken.rowcount:
            return
        row = await session.get(Outreach, oid)
        connector = await session.get(Connector, row.connector_id) if row and row.connector_id else None
    assert row is not None
    found: SendResult | None = None
    problem = "the sender stopped before recording the provider's answer"
    if connector is None or not row.to_address:
        problem += "; no connector to ask"
    else:
        message = OutboundMessage(
            outreach_id=oid,
            to=row.to_address,
            body=row.body,
            media_urls=list(row.media_urls or []),
            status_callback=status_callback_url(rt, connector, oid),
            idempotency_key=f"clasp-outreach-{oid}",
            not_before=(claimed_at or row.created_at) - CLOCK_SKEW,
        )
        try:
            found = await senders.get(connector).lookup(message)
        except TransientError as exc:
            log.warning("cannot check outreach %s with the provider yet: %s", oid, exc)
            return  # still "sending"; the next pass asks again
        except Exception as exc:
            problem += f"; looking it up failed: {type(exc).__name__}: {exc}"
            found = None
        if found is None:
            problem += "; the provider has no matching message"
    async with rt.db.transaction() as session:
        row = await session.get(Outreach, oid, with_for_update=True)
        if row is None or row.state != "sending":
            return  # a status report settled it meanwhile
        if found is not None and found.provider_id and await _provider_id_taken(session, found.provider_id, oid):
            found = None
            problem += "; the provider's match belongs to another message"
        if found is not None and found.state != "unknown":
            row.provider_id = row.provider_id or found.provider_id
            if found.state in ("failed", "undelivered"):
                _finish(row, found.state, found.message or f"provider error {found.error_code}", now)
                row.error_code = found.error_code
            else:
                delivery = "delivered" if found.state == "delivered" else "queued"
                if status.advance(row, delivery, provider_status=found.provider_status or found.state, at=now):
                    await text_delivered(session, row, origin="reconcile")
                row.state_reason = "recovered after an interrupted send: the provider had it"
            report.reconciled.append(oid)
        else:
            _finish(row, "review", problem + ". Check the provider's log, then requeue it or leave it.", now)
            report.review.append(oid)
        session.add(row)


async def _provider_id_taken(session: AsyncSession, provider_id: str, outreach_id: int) -> bool:
    stmt = select(Outreach.id).where(col(Outreach.provider_id) == provider_id, col(Outreach.id) != outreach_id)
    return (await session.exec(stmt.limit(1))).first() is not None


# ---------------------------------------------------------------------------------------------- flush


async def flush(
    rt: Runtime,
    *,
    now: datetime | None = None,
    limit: int | None = None,
    stale_after: timedelta = STALE_CLAIM,
) -> FlushReport:
    """Reconcile stuck rows, then send everything due at ``now`` (default: the real clock).

    The worker's job and ``clasp outbox flush`` both call this, so the CLI obeys the same rules.
    ``limit`` caps the rows claimed in this call (None: until nothing is due).
    """
    report = FlushReport()
    clock_given = now is not None
    await reconcile(rt, now=now or utcnow(), stale_after=stale_after, report=report)
    senders = Senders(rt)
    handled = 0
    while limit is None or handled < limit:
        at = now if clock_given else utcnow()
        assert at is not None
        taken, batch = await claim(rt, now=at, limit=1, report=report)
        if not taken:
            break
        for item in batch:
            await send_claimed(rt, item, senders, now=at, report=report)
        handled += taken
    return report


async def due_count(rt: Runtime, *, now: datetime | None = None) -> int:
    async with rt.db.session() as session:
        stmt = (
            select(func.count())
            .select_from(Outreach)
            .where(
                col(Outreach.state) == "pending",
                col(Outreach.direction) == "outbound",
                col(Outreach.due_at) <= (now or utcnow()),
            )
        )
        return int((await session.exec(stmt)).one())  # type: ignore[call-overload]
