"""Writeback: client edits made in Clasp, written to the customers they came from in each POS.

Generic over connector types: a connector takes part when it is enabled, its type's
``ConnectorType.writer(ctx)`` returns a :class:`core.plugin.Writer` and its settings have ``writeback``
true. Each such connector has a change-feed consumer ``writeback:<connector id>`` with its own
checkpoint.

What is written
    Client feed rows (op ``update``/``insert``) with no ``origin_connector_id``: edits a person made
    in Clasp (panel, API). Rows a connector's sync wrote are never written to any POS: those from
    this connector would echo its own data back (a loop), and another POS's data is not "an edit made
    in Clasp". Merges, unmerges and fields outside ``core.clients.EDITABLE_FIELDS`` are skipped. A
    client with no external ref at the connector is skipped (Clasp does not create POS customers); a
    client with several refs there (one person registered at two shops) is written to each.

Where a consumer starts
    At the connector's creation: Clasp edits made before the connector existed are not its to write.
    Turning writeback off pauses the consumer; turned on again, it writes the edits made meanwhile,
    each still checked against the golden record as below.

Checkpoint and failures
    The position only moves past rows that were written or deliberately skipped, in the same
    transaction as the conflict audit rows and error-queue rows they produced. A transient error
    (``TransientError``, network) stops the consumer's batch before the failed row: it is retried on
    the next run. A permanent error (``PermanentError``, ``WriteResult(ok=False)``, any other exception
    from the writer) sends that write to the error queue (``sync_error``, stage ``writeback``, payload
    = the ClientWrite as JSON) and moves on; :func:`replay_writeback` retries it after a fix.

One worker per consumer
    Writes are HTTP calls, so no database transaction is held open across them (on SQLite that would
    block every other writer, and a writer refreshing its OAuth token saves settings in a transaction
    of its own). A run instead holds a per-consumer lock for its duration: a PostgreSQL session
    advisory lock, or on SQLite an ``flock`` on a file beside the database (SQLite is single-host, so
    that is exactly the set of processes sharing it). Both are released by the OS or the server if
    the process dies. A second run finding the lock taken skips the consumer (``busy``). A crash
    between a write and the commit of its checkpoint repeats that one write on the next run (writes
    set values, so repeating one is harmless).

No loops
    What is written is what the golden record holds (but for a conflict Clasp wins, below); the
    connector's next sync reads the customer back with the values Clasp already holds, identity
    finds nothing changed and appends no feed row. Rows a sync does append carry
    ``origin_connector_id`` and are never written back.

Conflicts: field-level last writer wins by timestamp
    For each field of a Clasp edit made at ``t`` (the feed row's ``created_at``, the edit's own
    transaction):

    - the golden record still holds the edit's value → written;
    - it no longer does, and a later feed row *from this connector* changed that field (its sync
      ingested the POS record after the edit) → a conflict, decided per field:

      - if the golden value differs from the edit only by what the edit itself replaced (the
        ``from`` values in the edit's ``client.edit`` audit row), the POS record changed after the
        edit but not this field — it re-sent the value it held before: Clasp is this field's last
        writer and its value is written. POSes with one timestamp per record (R-Series' customer
        ``timeStamp``) need this, or a till edit of one field would undo every pending Clasp edit;
      - otherwise the POS's time is the field's provenance ``at`` when it came from this connector
        (the POS record's ``updated_at``), else the newest ``remote_updated_at`` of the client's refs
        at this connector, else when that row was written. POS time >= ``t``: the POS wins, the
        field is not written (Clasp already shows the POS value). POS time < ``t``: Clasp wins, its
        value is written.

      Either way an audit row ``writeback.conflict`` records field, clasp value, remote value,
      winner, reason and both times. When Clasp wins, the next sync reads its value back and the
      golden record returns to it;
    - it no longer does for any other reason (a later Clasp edit, another source) → superseded: not
      written; the later change is what counts.

    Clock skew between Clasp and the POS shifts the comparison by the skew; POS timestamps in whole
    seconds make a POS change in the same second as the edit count as later (ties go to the POS, as
    in identity's survivorship). A POS change made after the edit but not yet synced when the write
    happens cannot be seen here (the Writer API has no read): the write overwrites it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import zlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, feed
from core.connectors import context_for
from core.models import (
    AuditLog,
    ChangeFeed,
    Client,
    ClientContact,
    Connector,
    ExternalRef,
    FeedConsumer,
    SyncError,
    utcnow,
)
from core.plugin import ClientWrite, PermanentError, TransientError, Writer, WriteResult
from core.runtime import Runtime

if TYPE_CHECKING:
    from core.errors import ReplayResult

log = logging.getLogger(__name__)

STAGE = "writeback"
CONSUMER_PREFIX = "writeback:"
CONTACT_FIELDS = {"emails": "email", "phones": "phone"}
# Feed rows read per query; the run's ``limit`` bounds the rows handled per consumer and run.
CHUNK = 100
REPLAY_WAIT_SECONDS = 15.0
# Namespace of the PostgreSQL advisory locks taken here ("Clas").
_PG_LOCK_NAMESPACE = 0x436C6173
_local_locks: dict[str, asyncio.Lock] = {}


def _writable_fields() -> tuple[str, ...]:
    from core.clients import EDITABLE_FIELDS

    return tuple(EDITABLE_FIELDS)


def consumer_name(connector_id: int) -> str:
    return f"{CONSUMER_PREFIX}{connector_id}"


# ------------------------------------------------------------------------------------------ reports


@dataclass
class ConsumerReport:
    """What one run did for one connector."""

    connector_id: int
    consumer: str
    position: int = 0
    rows: int = 0  # feed rows the checkpoint moved past
    written: int = 0  # successful Writer.write calls (one per external ref)
    skipped: int = 0  # rows with nothing to write (not a Clasp edit, no ref, superseded, ...)
    conflicts: int = 0  # fields decided by the conflict policy (audited)
    errors: int = 0  # writes sent to the error queue
    busy: bool = False  # another worker holds this consumer
    stopped: str | None = None  # why the batch stopped early (transient error), retried next run


@dataclass
class WritebackReport:
    consumers: list[ConsumerReport] = field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(c.written for c in self.consumers)

    @property
    def errors(self) -> int:
        return sum(c.errors for c in self.consumers)

    @property
    def conflicts(self) -> int:
        return sum(c.conflicts for c in self.consumers)

    def summary(self) -> dict[str, Any]:
        return {"consumers": [asdict(c) for c in self.consumers], "written": self.written, "errors": self.errors,
                "conflicts": self.conflicts}


# --------------------------------------------------------------------------------------- the lock


@contextlib.asynccontextmanager
async def consumer_lock(rt: Runtime, name: str) -> AsyncIterator[bool]:
    """Hold the consumer for this run; yields False (without waiting) when another worker has it."""
    if rt.db.dialect == "postgresql":
        async with _pg_lock(rt, name) as held:
            yield held
        return
    async with _file_lock(rt, name) as held:
        yield held


@contextlib.asynccontextmanager
async def _pg_lock(rt: Runtime, name: str) -> AsyncIterator[bool]:
    key = zlib.crc32(name.encode())
    key = key - (1 << 32) if key >= 1 << 31 else key  # int4
    params = {"ns": _PG_LOCK_NAMESPACE, "key": key}
    async with rt.db.engine.connect() as conn:
        held = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:ns, :key)"), params)).scalar())
        await conn.commit()
        try:
            yield held
        finally:
            if held:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), params)
                    await conn.commit()
                except BaseException:
                    # A session lock lives as long as the connection: never hand it back to the pool.
                    await conn.invalidate()
                    raise


@contextlib.asynccontextmanager
async def _file_lock(rt: Runtime, name: str) -> AsyncIterator[bool]:
    path = rt.db.engine.url.database
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: one process per SQLite database then
        fcntl = None  # type: ignore[assignment]
    if not path or path == ":memory:" or fcntl is None:
        lock = _local_locks.setdefault(f"{path}:{name}", asyncio.Lock())
        if lock.locked():
            yield False
            return
        async with lock:
            yield True
        return
    lock_path = f"{path}.{name.replace(':', '-')}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- connectors


@dataclass
class _Target:
    connector: Connector
    writer: Writer


async def writeback_connectors(rt: Runtime, connector_ids: Iterable[int] | None = None) -> list[_Target]:
    """Enabled connectors whose type gives a writer and whose settings turn writeback on."""
    async with rt.db.session() as session:
        stmt = select(Connector).where(col(Connector.enabled).is_(True)).order_by(col(Connector.id))
        if connector_ids is not None:
            stmt = stmt.where(col(Connector.id).in_(list(connector_ids)))
        connectors = list((await session.exec(stmt)).all())
    out: list[_Target] = []
    for connector in connectors:
        if connector.type not in rt.registry.connector_types:
            continue
        try:
            ctx = context_for(rt, connector)
            if not getattr(ctx.settings, "writeback", False):
                continue
            writer = rt.registry.connector_types[connector.type].writer(ctx)
        except Exception as exc:  # invalid stored settings: the panel says so; other connectors go on
            log.warning("writeback: cannot load connector %s: %s", connector.id, exc)
            continue
        if writer is not None:
            out.append(_Target(connector, writer))
    return out


# ------------------------------------------------------------------------------------ planning


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class _Plan:
    client_id: int
    external_ids: list[str]
    changes: dict[str, Any]
    conflicts: list[dict[str, Any]]
    note: str = ""  # why nothing is written, when nothing is


async def _current(session: AsyncSession, client: Client, name: str) -> tuple[Any, set[str]]:
    """A field's golden value as the feed writes it, and (for contacts) the primary values."""
    if name in CONTACT_FIELDS:
        rows = (await session.exec(
            select(ClientContact)
            .where(col(ClientContact.client_id) == client.id, col(ClientContact.kind) == CONTACT_FIELDS[name])
            .order_by(col(ClientContact.is_primary).desc(), col(ClientContact.id))
        )).all()
        return [r.value for r in rows], {r.value for r in rows if r.is_primary}
    return _jsonable(getattr(client, name)), set()


def _same(name: str, wanted: Any, current: Any, primaries: set[str]) -> bool:
    if name in CONTACT_FIELDS:
        wanted = [str(v) for v in wanted or []]
        if set(wanted) != set(current):
            return False
        # The first value is the primary; ties between several flagged primaries are not a change.
        return not wanted or not primaries or wanted[0] in primaries
    if _empty(wanted) and _empty(current):
        return True
    return bool(wanted == current)


async def _edit_base(
    session: AsyncSession, client_id: int, changes: dict[str, Any], changed_at: datetime, feed_id: int | None
) -> dict[str, Any]:
    """The values an edit replaced, from its ``client.edit`` audit row (written in the same
    transaction as its feed row, which holds only the new values); {} when not found."""
    rows = (await session.exec(
        select(AuditLog).where(
            col(AuditLog.action) == "client.edit",
            col(AuditLog.target_type) == "client",
            col(AuditLog.target_id) == str(client_id),
            col(AuditLog.at) >= changed_at - timedelta(seconds=5),
            col(AuditLog.at) <= changed_at + timedelta(seconds=30),
        ).order_by(col(AuditLog.id))
    )).all()
    for row in rows:
        details = row.details or {}
        edited = details.get("changes")
        if not isinstance(edited, dict) or set(edited) != set(changes):
            continue
        if details.get("feed_id") not in (None, feed_id):
            continue
        if all(isinstance(v, dict) and v.get("to") == changes[k] for k, v in edited.items()):
            return {k: v.get("from") for k, v in edited.items()}
    return {}


def _stale(name: str, wanted: Any, current: Any, before: Any) -> bool:
    """Does the golden value only differ from the edit by what the edit itself replaced?"""
    if name in CONTACT_FIELDS:
        mine, now, old = {str(v) for v in wanted or []}, set(current or []), {str(v) for v in before or []}
        return mine <= now <= mine | old
    return _same(name, before, current, set())


async def plan_write(
    session: AsyncSession, connector_id: int, *, client_id: int, changes: dict[str, Any], changed_at: datetime,
    feed_id: int | None,
) -> _Plan:
    """Decide what of one Clasp edit to write to one connector (see the module's conflict policy)."""
    writable = [name for name in _writable_fields() if name in changes]
    plan = _Plan(client_id, [], {}, [])
    if not writable:
        plan.note = "no field the POS can hold"
        return plan
    client = await session.get(Client, client_id)
    if client is None:
        plan.note = "client no longer exists"
        return plan
    if client.merged_into_id is not None:
        plan.note = f"client was merged into {client.merged_into_id}"
        return plan
    refs = list((await session.exec(
        select(ExternalRef).where(
            col(ExternalRef.connector_id) == connector_id,
            col(ExternalRef.object_type) == "client",
            col(ExternalRef.unified_id) == client_id,
        ).order_by(col(ExternalRef.external_id))
    )).all())
    if not refs:
        plan.note = "not linked to a customer of this connector"
        return plan
    plan.external_ids = [r.external_id for r in refs]
    later: list[ChangeFeed] = []
    if feed_id is not None:
        later = list((await session.exec(
            select(ChangeFeed).where(
                col(ChangeFeed.entity) == "client",
                col(ChangeFeed.entity_id) == client_id,
                col(ChangeFeed.id) > feed_id,
                col(ChangeFeed.origin_connector_id) == connector_id,
            ).order_by(col(ChangeFeed.id))
        )).all())
    ref_times = [t for t in (_aware(r.remote_updated_at) for r in refs) if t is not None]
    changed_at = _aware(changed_at) or utcnow()
    base: dict[str, Any] | None = None
    for name in writable:
        wanted = changes[name]
        current, primaries = await _current(session, client, name)
        if _same(name, wanted, current, primaries):
            plan.changes[name] = wanted
            continue
        evidence = next((row for row in later if name in (row.changes or {})), None)
        if evidence is None:
            continue  # superseded by a later Clasp edit or another source: that change is what counts
        prov = (client.provenance or {}).get(name) if name not in CONTACT_FIELDS else None
        remote_at: datetime | None = None
        if prov and prov.get("connector_id") == connector_id and prov.get("at"):
            remote_at = _aware(datetime.fromisoformat(str(prov["at"])))
        if remote_at is None and ref_times:
            remote_at = max(ref_times)
        if remote_at is None:
            remote_at = _aware(evidence.created_at)
        assert remote_at is not None
        if base is None:
            base = await _edit_base(session, client_id, changes, changed_at, feed_id)
        if base is not None and name in base and _stale(name, wanted, current, base[name]):
            # The POS sent the value it held before the edit: its record changed after the edit, but
            # not this field (one timestamp per record), so the edit is the field's last writer.
            winner, reason = "clasp", "the POS record changed after the edit, but not this field"
        elif remote_at >= changed_at:
            winner, reason = "remote", "the POS changed this field after the edit"
        else:
            winner, reason = "clasp", "the POS change is older than the edit"
        if winner == "clasp":
            plan.changes[name] = wanted
        plan.conflicts.append({
            "field": name, "clasp_value": wanted, "remote_value": current, "winner": winner, "reason": reason,
            "clasp_at": changed_at.isoformat(), "remote_at": remote_at.isoformat(),
            "feed_id": feed_id, "remote_feed_id": evidence.id, "connector_id": connector_id,
            "external_ids": plan.external_ids,
        })
    if not plan.changes:
        plan.note = "every field was superseded or lost a conflict" if plan.conflicts else "superseded"
    return plan


# ------------------------------------------------------------------------------------ writing


class _Transient(Exception):
    pass


@dataclass
class _Failure:
    external_id: str
    reason: str
    payload: dict[str, Any]


def write_payload(change: ClientWrite) -> dict[str, Any]:
    """A ClientWrite as the error queue stores it."""
    return {"client_id": change.client_id, "external_id": change.external_id, "changes": change.changes,
            "changed_at": _jsonable(change.changed_at), "feed_id": change.feed_id}


def write_from_payload(payload: dict[str, Any]) -> ClientWrite:
    changed_at = datetime.fromisoformat(str(payload["changed_at"]))
    return ClientWrite(client_id=int(payload["client_id"]), external_id=payload.get("external_id"),
                       changes=dict(payload.get("changes") or {}), changed_at=_aware(changed_at) or changed_at,
                       feed_id=int(payload.get("feed_id") or 0))


async def _write_one(writer: Writer, change: ClientWrite) -> str | None:
    """Write one change; None on success, the reason on a permanent failure; raises _Transient."""
    try:
        result: WriteResult = await writer.write(change)
    except TransientError as exc:
        raise _Transient(str(exc)) from exc
    except (httpx.TransportError, OSError) as exc:  # OSError covers TimeoutError
        raise _Transient(f"{type(exc).__name__}: {exc}") from exc
    except PermanentError as exc:
        return str(exc) or type(exc).__name__
    except Exception as exc:  # a plugin bug must not lose the edit: queue it, replay after the fix
        log.exception("writeback: writer of client %s failed", change.client_id)
        return f"{type(exc).__name__}: {exc}"
    if not result.ok:
        return result.message or "the writer refused the change"
    return None


async def _lock_consumer(session: AsyncSession, name: str, *, create: bool = True) -> FeedConsumer | None:
    # A write first: PostgreSQL locks the row, SQLite takes its write lock now instead of failing a
    # read-to-write upgrade when a sync commits meanwhile.
    await session.exec(  # type: ignore[call-overload]
        update(FeedConsumer).where(col(FeedConsumer.name) == name).values(position=FeedConsumer.position)
    )
    return await feed.claim(session, name) if create else None


async def _start_position(rt: Runtime, name: str, connector: Connector) -> int:
    """The checkpoint; a new consumer starts at the connector's creation: older edits are not its."""
    async with rt.db.transaction() as session:
        await _lock_consumer(session, name, create=False)
        exists = (await session.exec(select(FeedConsumer.id).where(col(FeedConsumer.name) == name))).first()
        consumer = await feed.claim(session, name)
        if exists is None:
            start = (await session.exec(
                select(func.max(ChangeFeed.id)).where(col(ChangeFeed.created_at) < connector.created_at)
            )).first()
            since = (await session.exec(
                select(func.min(ChangeFeed.id)).where(col(ChangeFeed.created_at) >= connector.created_at)
            )).first()
            if start and since:  # stamps and ids are not in the same order: keep every later row
                start = min(int(start), int(since) - 1)
            if start:
                await feed.advance(session, name, int(start))
                return int(start)
        return int(consumer.position)


async def _commit(
    rt: Runtime, name: str, connector: Connector, *, expected: int, position: int,
    conflicts: list[tuple[int, dict[str, Any]]], failures: list[tuple[ChangeFeed, _Failure]],
) -> bool:
    """Move the checkpoint with the audit and error rows it produced; False if it moved meanwhile."""
    async with rt.db.transaction() as session:
        consumer = await _lock_consumer(session, name)
        if consumer is None or consumer.position != expected:
            return False
        for client_id, details in conflicts:
            await audit.record(session, "writeback.conflict", actor=f"connector:{connector.id}",
                               target_type="client", target_id=client_id, details=details)
        for row, failure in failures:
            session.add(SyncError(
                connector_id=connector.id, stage=STAGE, stream=None, external_id=failure.external_id[:255],
                payload=failure.payload, reason=failure.reason,
                context={"consumer": name, "connector_type": connector.type, "feed_id": row.id,
                         "client_id": row.entity_id, "origin": row.origin,
                         "edited_at": _jsonable(row.created_at)},
            ))
        await feed.advance(session, name, position)
    return True


async def _candidates(session: AsyncSession, after: int, *, limit: int, settle: timedelta) -> list[ChangeFeed]:
    """Like ``core.feed.read`` for client rows, but only those that can be Clasp edits: a backfill's
    millions of connector rows are passed over in SQL instead of row by row."""
    stmt = select(ChangeFeed).where(
        col(ChangeFeed.id) > after,
        col(ChangeFeed.entity) == "client",
        col(ChangeFeed.op).in_(("update", "insert")),
        col(ChangeFeed.origin_connector_id).is_(None),
    )
    if settle:
        cutoff = utcnow() - settle
        stmt = stmt.where(col(ChangeFeed.created_at) <= cutoff)
        # ``created_at`` is stamped before the id is drawn (identity stamps a page's rows with the
        # page's start), so a settled row can follow one still settling: never pass the latter.
        pending = (await session.exec(select(func.min(ChangeFeed.id)).where(
            col(ChangeFeed.id) > after, col(ChangeFeed.created_at) > cutoff))).first()
        if pending:
            stmt = stmt.where(col(ChangeFeed.id) < pending)
    return list((await session.exec(stmt.order_by(col(ChangeFeed.id)).limit(limit))).all())


async def _settled_horizon(session: AsyncSession, after: int, settle: timedelta) -> int:
    """The highest feed id the checkpoint may pass without reading: below every unsettled row."""
    cutoff = utcnow() - settle
    top = (await session.exec(select(func.max(ChangeFeed.id)).where(
        col(ChangeFeed.id) > after, col(ChangeFeed.created_at) <= cutoff))).first()
    if not top:
        return after
    if settle:
        # Ids and created_at are not in the same order across transactions: stop below the oldest
        # row still settling, whatever its entity.
        pending = (await session.exec(select(func.min(ChangeFeed.id)).where(
            col(ChangeFeed.id) > after, col(ChangeFeed.created_at) > cutoff))).first()
        if pending:
            return min(int(top), int(pending) - 1)
    return int(top)


def _is_clasp_edit(row: ChangeFeed) -> bool:
    return (row.entity == "client" and row.op in ("update", "insert") and row.origin_connector_id is None
            and not row.origin.startswith("connector:"))


async def _run_consumer(rt: Runtime, target: _Target, *, limit: int, settle: timedelta) -> ConsumerReport:
    connector, writer = target.connector, target.writer
    assert connector.id is not None
    name = consumer_name(connector.id)
    report = ConsumerReport(connector.id, name)
    async with consumer_lock(rt, name) as held:
        if not held:
            report.busy = True
            return report
        position = committed = await _start_position(rt, name, connector)
        report.position = position
        conflicts: list[tuple[int, dict[str, Any]]] = []
        failures: list[tuple[ChangeFeed, _Failure]] = []
        remaining = limit
        try:
            while remaining > 0:
                wanted = min(remaining, CHUNK)
                horizon = 0
                async with rt.db.session() as session:
                    rows = await _candidates(session, position, limit=wanted, settle=settle)
                    if len(rows) < wanted:
                        # Every settled client row is in hand: once they are done the checkpoint may
                        # also pass the other entities' rows, so an idle consumer's lag reads 0.
                        horizon = await _settled_horizon(session, position, settle)
                if not rows:
                    position = max(position, horizon)
                    break
                for row in rows:
                    assert row.id is not None
                    remaining -= 1
                    plan = None
                    if _is_clasp_edit(row):
                        async with rt.db.session() as session:
                            plan = await plan_write(session, connector.id, client_id=row.entity_id,
                                                    changes=row.changes or {}, changed_at=row.created_at,
                                                    feed_id=row.id)
                    if plan is None or not plan.changes:
                        report.skipped += 1
                        if plan is not None:
                            conflicts += [(plan.client_id, c) for c in plan.conflicts]
                            report.conflicts += len(plan.conflicts)
                        position = row.id
                        report.rows += 1
                        continue
                    row_failures: list[tuple[ChangeFeed, _Failure]] = []
                    for external_id in plan.external_ids:
                        change = ClientWrite(client_id=plan.client_id, external_id=external_id,
                                             changes=dict(plan.changes), changed_at=row.created_at, feed_id=row.id)
                        reason = await _write_one(writer, change)  # _Transient propagates: row not passed
                        if reason is None:
                            report.written += 1
                        else:
                            row_failures.append((row, _Failure(external_id, reason, write_payload(change))))
                    conflicts += [(plan.client_id, c) for c in plan.conflicts]
                    report.conflicts += len(plan.conflicts)
                    failures += row_failures
                    report.errors += len(row_failures)
                    position = row.id
                    report.rows += 1
                    # Each row that reached the POS is checkpointed before the next one is tried.
                    if not await _commit(rt, name, connector, expected=committed, position=position,
                                         conflicts=conflicts, failures=failures):
                        report.stopped = "the checkpoint moved under this run; stopped"
                        return report
                    committed, conflicts, failures = position, [], []
                position = max(position, horizon)
        except _Transient as exc:
            report.stopped = f"transient error, retried next run: {exc}"
        if position != committed or conflicts or failures:
            if not await _commit(rt, name, connector, expected=committed, position=position,
                                 conflicts=conflicts, failures=failures):
                report.stopped = "the checkpoint moved under this run; stopped"
                return report
        report.position = position
    return report


async def run_writeback(
    rt: Runtime, *, limit: int = 500, connector_ids: Iterable[int] | None = None,
    settle: timedelta = feed.SETTLE,
) -> WritebackReport:
    """Write pending Clasp client edits to every writeback-enabled connector (up to ``limit`` feed
    rows each). Safe to run any number of times, concurrently too. ``settle``: see ``core.feed.read``."""
    report = WritebackReport()
    for target in await writeback_connectors(rt, connector_ids):
        assert target.connector.id is not None
        try:
            report.consumers.append(await _run_consumer(rt, target, limit=limit, settle=settle))
        except Exception as exc:  # one broken connector must not stop the others
            log.exception("writeback of connector %s failed", target.connector.id)
            cid = target.connector.id
            report.consumers.append(ConsumerReport(cid, consumer_name(cid), stopped=f"{type(exc).__name__}: {exc}"))
    return report


async def writeback_job(ctx: dict[str, Any]) -> dict[str, Any]:
    """The arq job: ``ctx["clasp"]`` is the Runtime."""
    report = await run_writeback(ctx["clasp"])
    return report.summary()


# ------------------------------------------------------------------------------------- replay


async def replay_writeback(rt: Runtime, error_id: int) -> ReplayResult:
    """Retry one queued write (stage ``writeback``) with the connector's current settings and code.

    Only the fields whose value the golden record still holds are written: a value changed since
    (in Clasp or by the POS) is not pushed over the newer one. On success the error is marked
    ``replayed``; on failure its reason and attempts are updated and it stays open. Two replays of
    one error at once: the second finds it replayed instead of writing twice.
    """
    from core.errors import ReplayResult

    async with rt.db.session() as session:
        error = await session.get(SyncError, error_id)
    if error is None or error.connector_id is None:
        ok, message = await _replay(rt, error_id)
        return ReplayResult(error_id, ok, message)
    # Under the connector's consumer lock: a replay never interleaves with the consumer's writes or
    # with another replay. Consumer runs are short (``limit`` rows), so wait a little for one.
    deadline = asyncio.get_running_loop().time() + REPLAY_WAIT_SECONDS
    while True:
        async with consumer_lock(rt, consumer_name(error.connector_id)) as held:
            if held:
                ok, message = await _replay(rt, error_id)
                return ReplayResult(error_id, ok, message)
        if asyncio.get_running_loop().time() >= deadline:
            return ReplayResult(error_id, False, "writeback of this connector is busy; try again shortly")
        await asyncio.sleep(0.2)


async def replay_all_writeback(rt: Runtime, *, connector_id: int | None = None) -> list[ReplayResult]:
    """Replay every open writeback error (of one connector), oldest first."""
    async with rt.db.session() as session:
        stmt = select(SyncError.id).where(col(SyncError.stage) == STAGE, col(SyncError.state) == "open")
        if connector_id is not None:
            stmt = stmt.where(col(SyncError.connector_id) == connector_id)
        ids = [int(i) for i in (await session.exec(stmt.order_by(col(SyncError.id)))).all()]
    return [await replay_writeback(rt, error_id) for error_id in ids]


async def _replay(rt: Runtime, error_id: int) -> tuple[bool, str]:
    async with rt.db.session() as session:
        error = await session.get(SyncError, error_id)
    if error is None:
        return False, f"no error {error_id}"
    if error.stage != STAGE:
        return False, f"error {error_id} is not a writeback error (stage {error.stage})"
    if error.state != "open":
        return error.state == "replayed", f"already {error.state}"
    if error.connector_id is None:
        return False, "this error belongs to no connector"
    targets = await writeback_connectors(rt, [error.connector_id])
    if not targets:
        return await _replay_failed(rt, error_id, "the connector is gone, disabled, or has writeback off")
    try:
        change = write_from_payload(dict(error.payload or {}))
    except (KeyError, TypeError, ValueError) as exc:
        return await _replay_failed(rt, error_id, f"unreadable stored write: {exc}")
    async with rt.db.session() as session:
        plan = await plan_write(session, error.connector_id, client_id=change.client_id, changes=change.changes,
                                changed_at=change.changed_at, feed_id=None)
    if change.external_id not in plan.external_ids:
        if not plan.external_ids and plan.note:
            return await _replay_failed(rt, error_id, plan.note)
        return await _replay_failed(rt, error_id, f"the client is no longer linked to {change.external_id}")
    if not plan.changes:
        await _replay_done(rt, error_id)
        return True, "nothing left to write: every field has changed since"
    change.changes = plan.changes
    try:
        reason = await _write_one(targets[0].writer, change)
    except _Transient as exc:
        return await _replay_failed(rt, error_id, f"transient error, try again: {exc}", keep_reason=True)
    if reason is not None:
        return await _replay_failed(rt, error_id, reason)
    await _replay_done(rt, error_id)
    return True, f"written to {change.external_id}"


async def _replay_done(rt: Runtime, error_id: int) -> None:
    async with rt.db.transaction() as session:
        error = await session.get(SyncError, error_id, with_for_update=True)
        if error is not None and error.state == "open":
            error.state = "replayed"
            error.replayed_at = utcnow()
            session.add(error)


async def _replay_failed(rt: Runtime, error_id: int, reason: str, *, keep_reason: bool = False) -> tuple[bool, str]:
    async with rt.db.transaction() as session:
        error = await session.get(SyncError, error_id, with_for_update=True)
        if error is not None and error.state == "open":
            error.attempts += 1
            if not keep_reason:
                error.reason = reason
            session.add(error)
    return False, reason
