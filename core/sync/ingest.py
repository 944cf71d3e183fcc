"""One page of raw payloads → decoded records → unified rows, in the caller's transaction.

Both the sync engine and the error queue's replay come through here, so a replayed record takes
exactly the path it would have taken the first time. Nothing a single record does can abort the
page: decoding errors, validation problems and unresolved references become error-queue rows, and a
database error the checks did not foresee is isolated by retrying the page record by record inside
savepoints.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import utcnow
from core.plugin import AssociateRecord, ClientRecord, LocationRecord, ProductRecord, SaleRecord, Stream
from core.sync.context import CREATED, FAILED, OK, UNCHANGED, UPDATED, Item, MustWait, Outcome, UpsertContext
from core.sync.queue import Failure, close_resolved, record_failures
from core.sync.refs import RefCache, record_hash
from core.sync.upsert_clients import upsert_clients
from core.sync.upsert_org import upsert_associates, upsert_locations
from core.sync.upsert_products import upsert_products
from core.sync.upsert_sales import upsert_sales

Upserter = Callable[[UpsertContext, list[Item]], Awaitable[dict[int, Outcome]]]

UPSERTERS: dict[str, Upserter] = {
    "location": upsert_locations,
    "associate": upsert_associates,
    "client": upsert_clients,
    "product": upsert_products,
    "sale": upsert_sales,
}
RECORD_TYPES: dict[str, type] = {
    "location": LocationRecord,
    "associate": AssociateRecord,
    "client": ClientRecord,
    "product": ProductRecord,
    "sale": SaleRecord,
}
# Not the record's fault: the database or the connection is unwell. These fail the page (and the run).
# MustWait is not a failure: the engine runs the page again on its own (see core.sync.pipeline).
FATAL = (OperationalError, InterfaceError, MustWait)


@dataclass
class PageResult:
    outcomes: list[Outcome]
    error_ids: list[int | None] = field(default_factory=list)  # aligned with the payloads

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def created(self) -> int:
        return self.count(CREATED)

    @property
    def updated(self) -> int:
        return self.count(UPDATED)

    @property
    def unchanged(self) -> int:
        return self.count(UNCHANGED)

    @property
    def errors(self) -> int:
        """Records that landed in the error queue: failed, or stored with a dropped value."""
        return sum(1 for o in self.outcomes if o.status == FAILED or o.warnings)


def describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"]) or "record"
            parts.append(f"{loc}: {err['msg']}")
        return "invalid record: " + "; ".join(parts)
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ValueError):
        return text
    return f"{type(exc).__name__}: {text}"[:2000]


def guess_external_id(stream: Stream, payload: Any) -> str | None:
    """The id of a payload that failed to decode, for the error queue (best effort)."""
    if not isinstance(payload, dict):
        return None
    keys = [stream.primary_key, "external_id", "id"]
    for key in keys:
        if key and payload.get(key) not in (None, ""):
            return str(payload[key])[:255]
    return None


Decoded = tuple[list[Outcome | None], list[Item]]


def decode_page(stream: Stream, payloads: Sequence[Any]) -> Decoded:
    """Decode and hash a page's payloads; no database work, so it can run ahead of the commit."""
    outcomes: list[Outcome | None] = [None] * len(payloads)
    items: list[Item] = []
    _decode_into(stream, payloads, 0, len(payloads), outcomes, items)
    return outcomes, items


async def decode_page_async(stream: Stream, payloads: Sequence[Any], slice_size: int = 50) -> Decoded:
    """``decode_page`` in slices, yielding to the event loop between them: it runs beside the commit
    of the previous page, whose statements would otherwise wait for the whole page to decode before
    the loop could send them."""
    outcomes: list[Outcome | None] = [None] * len(payloads)
    items: list[Item] = []
    for start in range(0, len(payloads), slice_size):
        _decode_into(stream, payloads, start, min(len(payloads), start + slice_size), outcomes, items)
        await asyncio.sleep(0)
    return outcomes, items


def _decode_into(stream: Stream, payloads: Sequence[Any], start: int, end: int,
                 outcomes: list[Outcome | None], items: list[Item]) -> None:
    expected = RECORD_TYPES.get(stream.object_type, object)
    for index in range(start, end):
        payload = payloads[index]
        try:
            record = stream.decode(payload)
            if not isinstance(record, expected):
                raise TypeError(f"decode() returned {type(record).__name__}, expected {expected.__name__}")
        except Exception as exc:  # any decoding failure is the record's, never the run's
            outcomes[index] = Outcome.failed(describe(exc), "decode")
            continue
        items.append(Item(index, payload, record, record_hash(record)))


async def ingest_page(
    session: AsyncSession,
    *,
    connector_id: int,
    connector_type: str,
    stream: Stream,
    payloads: Sequence[Any],
    run_id: int | None,
    close_errors: bool = True,
    decoded: Decoded | None = None,
    gate: Callable[[], Awaitable[Any]] | None = None,
    relock: Callable[[], Awaitable[Any]] | None = None,
    ref_cache: RefCache | None = None,
) -> PageResult:
    """Ingest one page in the caller's transaction. ``decoded`` is ``decode_page``'s result when the
    caller decoded the page ahead (the engine does, while the previous page commits); ``gate`` and
    ``relock`` are for pages that overlap the previous one (see :class:`UpsertContext`); ``ref_cache``
    is the run's (see :class:`RefCache`)."""
    object_type = stream.object_type
    upsert = UPSERTERS.get(object_type)
    if upsert is None:
        raise ValueError(f"stream {stream.name!r} has unknown object type {object_type!r}")
    ux = await UpsertContext.open(session, connector_id, utcnow(), gate, relock, ref_cache)
    outcomes, items = decoded if decoded is not None else decode_page(stream, payloads)
    outcomes = list(outcomes)

    # The same record twice in one page: the later one is the newer version; the earlier is a no-op.
    latest: dict[str, Item] = {}
    for item in items:
        previous = latest.get(item.external_id)
        if previous is not None:
            outcomes[previous.index] = OK[UNCHANGED]
        latest[item.external_id] = item
    for index, outcome in (await _isolated(ux, upsert, list(latest.values()))).items():
        outcomes[index] = outcome
    await ux.before_writes()
    await ux.feed.flush(ux.conn)

    final = [o or Outcome.failed("record was not processed", "ingest") for o in outcomes]
    result = PageResult(final, [None] * len(final))
    by_index = {i.index: i for i in items}
    failed = [i for i, o in enumerate(final) if o.status == FAILED or o.warnings]
    failures = [
        Failure(
            payload=payloads[i],
            external_id=by_index[i].external_id if i in by_index else guess_external_id(stream, payloads[i]),
            reason=final[i].reason if final[i].status == FAILED else "stored without: " + "; ".join(final[i].warnings),
            kind=final[i].kind if final[i].status == FAILED else "partial",
            unresolved=final[i].unresolved,
        )
        for i in failed
    ]
    ids = await record_failures(ux.conn, connector_id=connector_id, stream=stream.name, object_type=object_type,
                                run_id=run_id, failures=failures, connector_type=connector_type)
    for i, error_id in zip(failed, ids, strict=True):
        result.error_ids[i] = error_id
    if close_errors:
        queued = {f.external_id for f in failures}
        done = [by_index[i].external_id for i, o in enumerate(final)
                if o.status != FAILED and not o.warnings and i in by_index and by_index[i].external_id not in queued]
        await close_resolved(ux.conn, connector_id=connector_id, stream=stream.name, external_ids=done)
    return result


async def _isolated(ux: UpsertContext, upsert: Upserter, items: list[Item]) -> dict[int, Outcome]:
    if not items:
        return {}
    try:
        async with ux.session.begin_nested():
            # The session emits SAVEPOINT only when it next hands out its connection: ask for it now,
            # or the statements below (run on that connection directly) would not be inside it.
            await ux.session.connection()
            outcomes = await upsert(ux, items)
            await ux.before_writes()
            await ux.feed.flush(ux.conn)
        return outcomes
    except FATAL:
        raise
    except Exception as exc:  # narrowed down below, record by record
        ux.feed.rows = []
        await ux.after_rollback()
        if len(items) == 1:
            return {items[0].index: Outcome.failed(describe(exc), "ingest")}
    outcomes = {}
    for item in items:
        outcomes.update(await _isolated(ux, upsert, [item]))
    return outcomes
