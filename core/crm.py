"""The CRM push stage: unified clients, products and receipts pushed to each CRM connector.

Generic over connector types: a connector of kind ``crm`` takes part when its type's
``ConnectorType.pusher(ctx)`` returns a :class:`core.plugin.Pusher`. Each has a change-feed
consumer ``crm:<connector id>`` with its own checkpoint. ``run_push`` is the one entry point (the
worker's scheduled run, ``clasp sync NAME`` in the foreground, the panel).

What is pushed
    - clients: every unified client not merged into another (one CRM record each). A merged-away
      client is not pushed again; the survivor is, with the receipts the merge moved to it.
    - sales: a sale becomes a receipt when it is ``completed`` (refunds are completed sales with
      negative lines). Layaways, quotes and open sales are not receipts yet; they are pushed once
      they complete. A sale the CRM already has is pushed whatever its status, so a receipt whose
      sale is voided later shows ``Voided``. Walk-in sales (no client) are handed to the pusher like
      the rest; the connector type decides (Salesforce: setting ``push_walk_in_sales``).
    - products: the ones receipts' lines reference (not the whole catalog), and later changes to
      products the CRM already has.
    Every item comes with its dependencies (a receipt's client and products not yet in the CRM),
    and items go to the pusher clients first, then products, then sales.

Checkpoint, lease, idempotence
    A run takes the connector's lease (the sync lease: the scheduler's ``due`` query and
    ``clasp sync`` respect it), so one push per connector runs at a time. Feed rows are read in
    chunks; after the pusher answers, ONE transaction (fenced by the lease) records the CRM ids
    (``external_ref`` rows of the CRM connector: "this client is Contact 003..."), the error-queue
    rows and the checkpoint. A crash between the push and that commit repeats the chunk on the next
    run: pushers upsert by Clasp's ids, so a repeat updates what it created and duplicates nothing.

Full push (backfill)
    ``full=True``, or the first run of a connector (no checkpoint yet), enumerates the store
    instead of the feed — clients, then sales with their products — in large pages (a pusher may
    use a bulk API for them), then moves the checkpoint to the feed head read before it started.

Failures
    - a record the CRM refuses: error queue (``sync_error``, stage ``crm_push``, payload = the item,
      context = the CRM's error), one open row per record (a repeat failure updates it). Replayed with
      :func:`replay_push_error` from the current store, so a fix in Clasp (a merge, an edit) or in
      the CRM (a duplicate removed) is what the replay pushes. Errors the pusher marks retryable are
      replayed automatically at the start of every run.
    - :class:`TransientError` (outage, API limit): the run stops before the chunk's checkpoint, the
      connector shows the message, and the next run is scheduled after ``retry_after``.
    - :class:`PermanentError` (credentials, missing CRM metadata): the run fails and the connector
      shows the error; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import feed
from core.connectors import ConnectorError, context_for, get_connector
from core.models import (
    Associate,
    Client,
    ClientContact,
    Connector,
    ExternalRef,
    FeedConsumer,
    Location,
    Product,
    Sale,
    SaleLine,
    SyncError,
    SyncRun,
    utcnow,
)
from core.plugin import PermanentError, Pusher, PushItem, PushOutcome, TransientError
from core.runtime import Runtime
from core.sync import lease
from core.sync.exceptions import LeaseLost

log = logging.getLogger(__name__)

STAGE = "crm_push"
CONSUMER_PREFIX = "crm:"
ENTITIES = ("client", "product", "sale")
RECEIPT_STATUS = "completed"
# Feed rows read per chunk (one pusher call and one commit per chunk). Large enough that a backlog
# (after an outage, a mass edit) reaches a pusher's bulk threshold; a failed chunk is pushed again
# whole, which upserts make harmless.
CHUNK = 10_000
# Entities per page of a full push: large, so a pusher's bulk API gets few, large jobs.
FULL_PAGE = 100_000
IN_CHUNK = 5000
LEASE_SECONDS = 600.0

ProgressCallback = Callable[["PushProgress"], Awaitable[None] | None]


class CrmRefused(Exception):
    """The connector cannot push (unknown, disabled, not a CRM, settings invalid)."""


def consumer_name(connector_id: int) -> str:
    return f"{CONSUMER_PREFIX}{connector_id}"


@dataclass
class PushProgress:
    """Shaped like ``core.sync.SyncProgress`` so the CLI's progress view shows pushes too."""

    run_id: int
    stream: str
    records: int = 0  # items pushed successfully
    pages: int = 0  # pusher calls
    errors: int = 0
    progress: float | None = None


@dataclass
class PushReport:
    connector_id: int
    consumer: str
    run_id: int | None = None
    full: bool = False
    status: str = "succeeded"  # succeeded | failed | deferred | busy
    position: int = 0
    rows: int = 0  # feed rows the checkpoint moved past
    pushed: dict[str, int] = field(default_factory=dict)  # per entity
    skipped: int = 0
    errors: int = 0
    replayed: int = 0  # retryable errors replayed at the start of the run
    message: str | None = None
    retry_after: float | None = None
    usage: dict[str, Any] = field(default_factory=dict)  # the pusher's API usage reading

    @property
    def busy(self) -> bool:
        return self.status == "busy"

    def summary(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------- entry


async def run_push(
    rt: Runtime,
    connector: int | str,
    *,
    full: bool = False,
    on_progress: ProgressCallback | None = None,
    trigger: str = "cli",
    settle: timedelta = feed.SETTLE,
    chunk: int = CHUNK,
) -> PushReport:
    """Push a CRM connector's pending changes (or everything, ``full=True``) to completion.

    Returns the report; ``status`` is ``busy`` when another run holds the connector, ``deferred``
    when the CRM asked to slow down or stop for a while (``retry_after``), ``failed`` on an error
    that needs a person. Raises :class:`CrmRefused` when the connector cannot push at all.
    """
    job = await _Job.load(rt, connector, full=full, on_progress=on_progress, trigger=trigger, settle=settle)
    job.chunk = chunk
    return await job.execute()


class _Job:
    def __init__(self, rt: Runtime, row: Connector, ctx: Any, pusher: Pusher, interval: int, *, full: bool,
                 on_progress: ProgressCallback | None, trigger: str, settle: timedelta) -> None:
        assert row.id is not None
        self.rt = rt
        self.row = row
        self.connector_id: int = row.id
        self.ctx = ctx
        self.pusher = pusher
        self.interval = interval
        self.full = full
        self.on_progress = on_progress
        self.trigger = trigger
        self.settle = settle
        self.chunk = CHUNK
        self.owner = lease.new_owner()
        self.report = PushReport(connector_id=row.id, consumer=consumer_name(row.id), full=full)
        self.progress: PushProgress | None = None
        self.keeper = lease.LeaseKeeper(rt.db, row.id, self.owner, LEASE_SECONDS, LEASE_SECONDS / 3)

    @classmethod
    async def load(cls, rt: Runtime, connector: int | str, **kw: Any) -> _Job:
        async with rt.db.session() as session:
            try:
                row = await get_connector(session, connector)
            except ConnectorError as exc:
                raise CrmRefused(str(exc)) from None
        if row.kind != "crm":
            raise CrmRefused(f"connector {row.name!r} is a {row.kind} connector, not a CRM")
        if not row.enabled:
            raise CrmRefused(f"connector {row.name!r} is disabled; enable it to push")
        try:
            ctype = rt.registry.connector_type(row.type)
            ctx = context_for(rt, row)
            pusher = ctype.pusher(ctx)
            interval = int(ctype.sync_interval_seconds(ctx))
        except KeyError as exc:
            raise CrmRefused(str(exc.args[0])) from None
        except Exception as exc:
            raise CrmRefused(f"connector {row.name!r} cannot be loaded: {exc}") from None
        if pusher is None:
            raise CrmRefused(f"connector {row.name!r} ({row.type}) has no CRM push")
        return cls(rt, row, ctx, pusher, interval, **kw)

    # ------------------------------------------------------------------------------------ run

    async def execute(self) -> PushReport:
        if not await self._start():
            return self.report
        assert self.report.run_id is not None
        self.progress = PushProgress(run_id=self.report.run_id, stream="replay")
        self.keeper.start(self.report.run_id)
        try:
            self.report.replayed = await self._replay_retryable()
            async with self.rt.db.session() as session:
                started = (await session.exec(
                    select(FeedConsumer).where(FeedConsumer.name == self.report.consumer))).first()
            if self.full or started is None:
                self.report.full = True
                await self._full()
            await self._incremental()
            self.report.status = "succeeded"
        except TransientError as exc:
            self.report.status = "deferred"
            self.report.message = str(exc)
            self.report.retry_after = exc.retry_after
        except LeaseLost as exc:
            self.report.status = "failed"
            self.report.message = str(exc)
        except PermanentError as exc:
            self.report.status = "failed"
            self.report.message = str(exc)
        except asyncio.CancelledError:
            self.report.status = "failed"
            self.report.message = "the push was cancelled (worker shutdown or job timeout)"
            await asyncio.shield(self._finish())
            raise
        except Exception as exc:
            log.exception("CRM push of connector %s crashed", self.connector_id)
            self.report.status = "failed"
            self.report.message = f"unexpected error: {type(exc).__name__}: {exc}"
        await asyncio.shield(self._finish())
        return self.report

    async def _start(self) -> bool:
        now = utcnow()
        async with self.rt.db.engine.begin() as conn:
            if not await lease.acquire(conn, self.connector_id, self.owner, LEASE_SECONDS):
                owner, expires = await lease.holder(conn, self.connector_id)
                self.report.status = "busy"
                until = f" until {expires:%Y-%m-%d %H:%M:%S} UTC" if expires else ""
                self.report.message = f"connector {self.row.name!r} is already pushing (lease held by {owner}{until})"
                return False
            await lease.mark_orphaned_runs(conn, self.connector_id)
            result = await conn.execute(
                insert(SyncRun.__table__).returning(SyncRun.__table__.c.id),  # type: ignore[attr-defined]
                [{"connector_id": self.connector_id, "full": self.full, "trigger": self.trigger[:40],
                  "status": "running", "stream": STAGE, "records": 0, "pages": 0, "errors": 0, "stats": {},
                  "started_at": now, "heartbeat_at": now}],
            )
            self.report.run_id = int(result.scalar_one())
        return True

    async def _finish(self) -> None:
        await self.keeper.stop()
        report = self.report
        report.usage = _usage(self.pusher)
        closer = getattr(self.pusher, "close", None)
        if closer is not None:
            try:
                await closer()
            except Exception:  # closing an HTTP client must not lose the run's record
                log.warning("closing the pusher of connector %s failed", self.connector_id, exc_info=True)
        now = utcnow()
        # A pusher that slows down near the CRM's API limit says so in its usage ("throttled"): the run
        # did its share and the connector is healthy; any other deferral (an outage, the limit spent) is not.
        throttled = report.status == "deferred" and bool(report.usage.get("throttled"))
        run_status = "succeeded" if report.status == "succeeded" or throttled else "failed"
        delay = report.retry_after if report.status == "deferred" and report.retry_after else self.interval
        stats = {"pushed": dict(report.pushed), "skipped": report.skipped, "replayed": report.replayed,
                 "rows": report.rows, "position": report.position, "api": report.usage, "status": report.status}
        if report.status == "succeeded":
            state, message = "ok", None
        elif run_status == "succeeded":  # slowed down near the daily limit: working, but say so
            state, message = "ok", report.message
        else:
            state, message = "error", report.message or report.status
        async with self.rt.db.engine.begin() as conn:
            await conn.execute(
                update(SyncRun.__table__)  # type: ignore[attr-defined]
                .where(SyncRun.__table__.c.id == report.run_id)  # type: ignore[attr-defined]
                .values(status=run_status, records=sum(report.pushed.values()), errors=report.errors,
                        pages=self.progress.pages if self.progress else 0, stats=stats,
                        message=report.message, finished_at=now, heartbeat_at=now)
            )
            values: dict[str, Any] = {
                "next_sync_at": now + timedelta(seconds=max(10.0, float(delay))),
                "state": state,
                "state_message": message[:1000] if message else None,
                "updated_at": now,
            }
            if run_status == "succeeded":
                values["last_success_at"] = now
            connector_t = Connector.__table__  # type: ignore[attr-defined]
            await conn.execute(
                update(connector_t)
                .where(connector_t.c.id == self.connector_id, connector_t.c.lease_owner == self.owner)
                .values(**values)
            )
            await lease.release(conn, self.connector_id, self.owner)

    async def _finish_replay(self) -> None:
        """End a replay: record the run, release the lease, leave the schedule and state alone."""
        await self.keeper.stop()
        closer = getattr(self.pusher, "close", None)
        if closer is not None:
            try:
                await closer()
            except Exception:
                pass
        now = utcnow()
        async with self.rt.db.engine.begin() as conn:
            await conn.execute(
                update(SyncRun.__table__)  # type: ignore[attr-defined]
                .where(SyncRun.__table__.c.id == self.report.run_id)  # type: ignore[attr-defined]
                .values(status="succeeded" if self.report.status == "succeeded" else "failed",
                        records=sum(self.report.pushed.values()), errors=self.report.errors,
                        stats={"pushed": dict(self.report.pushed), "api": _usage(self.pusher), "replay": True},
                        message=self.report.message, finished_at=now, heartbeat_at=now)
            )
            await lease.release(conn, self.connector_id, self.owner)

    # ------------------------------------------------------------------------------ incremental

    async def _incremental(self) -> None:
        assert self.progress is not None
        self.progress.stream = "changes"
        consumer = self.report.consumer
        while True:
            async with self.rt.db.transaction() as session:
                position = (await feed.claim(session, consumer)).position
                rows = await feed.read(session, position, limit=self.chunk, entities=list(ENTITIES), settle=self.settle)
            self.report.position = position
            if not rows:
                return
            wanted: dict[str, dict[int, int]] = {e: {} for e in ENTITIES}
            moved_sales: set[int] = set()  # clients merged/unmerged: their receipts point at a new contact
            for r in rows:
                assert r.id is not None
                wanted[r.entity][r.entity_id] = r.id
                if r.entity == "client" and r.op in ("merge", "unmerge"):
                    moved_sales.add(r.entity_id)
                    absorbed = (r.changes or {}).get("absorbed_id")
                    if absorbed:
                        moved_sales.add(int(absorbed))
            async with self.rt.db.session() as session:
                items = await build_items(session, self.connector_id, wanted, incremental=True,
                                          sales_of_clients=moved_sales)
            last = rows[-1].id
            assert last is not None
            await self._push(items, advance_to=last)
            self.report.rows += len(rows)
            self.report.position = last
            if len(rows) < self.chunk:
                return

    # ------------------------------------------------------------------------------------- full

    async def _full(self) -> None:
        assert self.progress is not None
        async with self.rt.db.session() as session:
            head = await feed.head(session)
            n_clients = int((await session.exec(select(func.count()).select_from(Client).where(
                col(Client.merged_into_id).is_(None)))).one())  # type: ignore[call-overload]
            n_sales = int((await session.exec(select(func.count()).select_from(Sale))).one())  # type: ignore[call-overload]
        total = max(1, n_clients + n_sales)
        done = 0
        self.progress.stream = "clients"
        last = 0
        while True:
            async with self.rt.db.session() as session:
                ids = [int(i) for i in (await session.exec(
                    select(Client.id).where(col(Client.id) > last, col(Client.merged_into_id).is_(None))
                    .order_by(col(Client.id)).limit(FULL_PAGE))).all()]
                if not ids:
                    break
                items = await build_items(session, self.connector_id, {"client": dict.fromkeys(ids, 0)},
                                          incremental=False)
            await self._push(items, advance_to=None)
            last = ids[-1]
            done += len(ids)
            self.progress.progress = min(1.0, done / total)
        self.progress.stream = "sales"
        last = 0
        pushed_products: set[int] = set()
        while True:
            async with self.rt.db.session() as session:
                ids = [int(i) for i in (await session.exec(
                    select(Sale.id).where(col(Sale.id) > last).order_by(col(Sale.id)).limit(FULL_PAGE))).all()]
                if not ids:
                    break
                items = await build_items(session, self.connector_id, {"sale": dict.fromkeys(ids, 0)},
                                          incremental=False, skip_products=pushed_products)
            pushed_products.update(i.entity_id for i in items if i.entity == "product")
            await self._push(items, advance_to=None)
            last = ids[-1]
            done += len(ids)
            self.progress.progress = min(1.0, done / total)
        async with self.rt.db.transaction() as session:
            await lease.renew(await session.connection(), self.connector_id, self.owner, LEASE_SECONDS)
            await feed.claim(session, self.report.consumer)
            await feed.advance(session, self.report.consumer, head)
        self.report.position = head
        self.progress.progress = 1.0

    # ------------------------------------------------------------------------------------- push

    async def _push(self, items: list[PushItem], *, advance_to: int | None) -> None:
        assert self.progress is not None
        outcomes = await self.pusher.push(items) if items else []
        if len(outcomes) != len(items):
            raise PermanentError(f"the pusher answered {len(outcomes)} outcomes for {len(items)} items")
        async with self.rt.db.transaction() as session:
            await lease.renew(await session.connection(), self.connector_id, self.owner, LEASE_SECONDS)
            counts = await apply_outcomes(session, self.connector_id, outcomes, run_id=self.report.run_id)
            if advance_to is not None:
                await feed.claim(session, self.report.consumer)
                await feed.advance(session, self.report.consumer, advance_to)
        for entity, n in counts.pushed.items():
            self.report.pushed[entity] = self.report.pushed.get(entity, 0) + n
        self.report.skipped += counts.skipped
        self.report.errors += counts.errors
        self.progress.records = sum(self.report.pushed.values())
        self.progress.errors = self.report.errors
        self.progress.pages += 1
        await self._notify()

    async def _notify(self) -> None:
        if self.on_progress is not None and self.progress is not None:
            result = self.on_progress(self.progress)
            if inspect.isawaitable(result):
                await result

    async def _replay_retryable(self) -> int:
        async with self.rt.db.session() as session:
            errors = list((await session.exec(
                select(SyncError).where(col(SyncError.connector_id) == self.connector_id,
                                        col(SyncError.stage) == STAGE, col(SyncError.state) == "open")
                .order_by(col(SyncError.id)))).all())
        retry = [e for e in errors if (e.context or {}).get("retryable")]
        if not retry:
            return 0
        counts = await self._replay_errors(retry)
        return counts

    async def _replay_errors(self, errors: Sequence[SyncError]) -> int:
        wanted: dict[str, dict[int, int]] = {e: {} for e in ENTITIES}
        for error in errors:
            payload = error.payload if isinstance(error.payload, dict) else {}
            entity, entity_id = payload.get("entity"), payload.get("entity_id")
            if entity in wanted and entity_id is not None:
                wanted[entity][int(entity_id)] = int(payload.get("feed_id") or 0)
        async with self.rt.db.session() as session:
            items = await build_items(session, self.connector_id, wanted, incremental=False, replay=True)
        before = sum(self.report.pushed.values())
        await self._push(items, advance_to=None)
        # Errors whose record is gone (or no longer pushable) are closed: there is nothing left to push.
        present = {(i.entity, i.entity_id) for i in items}
        async with self.rt.db.transaction() as session:
            for error in errors:
                payload = error.payload if isinstance(error.payload, dict) else {}
                if (payload.get("entity"), payload.get("entity_id")) not in present:
                    await _close_errors(session, self.connector_id, payload.get("entity"), payload.get("entity_id"),
                                        state="dismissed")
        return sum(self.report.pushed.values()) - before


def _usage(pusher: Pusher) -> dict[str, Any]:
    getter = getattr(pusher, "usage", None)
    if getter is None:
        return {}
    try:
        value = getter()
        return dict(value) if value else {}
    except Exception:
        return {}


# ------------------------------------------------------------------------------------- the items


async def _refs(session: AsyncSession, connector_id: int, object_type: str, ids: Iterable[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    id_list = sorted(set(ids))
    for start in range(0, len(id_list), IN_CHUNK):
        part = id_list[start : start + IN_CHUNK]
        stmt = select(ExternalRef.unified_id, ExternalRef.external_id).where(
            col(ExternalRef.connector_id) == connector_id, col(ExternalRef.object_type) == object_type,
            col(ExternalRef.unified_id).in_(part)).order_by(col(ExternalRef.id))
        for unified_id, external_id in (await session.exec(stmt)).all():
            out.setdefault(int(unified_id), external_id)
    return out


async def _rows(session: AsyncSession, model: Any, column: Any, ids: Iterable[int]) -> list[Any]:
    id_list = sorted(set(ids))
    out: list[Any] = []
    for start in range(0, len(id_list), IN_CHUNK):
        out += list((await session.exec(select(model).where(column.in_(id_list[start : start + IN_CHUNK])))).all())
    return out


def _iso(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else value


async def build_items(
    session: AsyncSession,
    connector_id: int,
    wanted: dict[str, dict[int, int]],
    *,
    incremental: bool,
    sales_of_clients: Iterable[int] = (),
    skip_products: set[int] | None = None,
    replay: bool = False,
) -> list[PushItem]:
    """The push items for the wanted entity ids (id → feed id), with their dependencies, in push order.

    ``incremental``: products are pushed only when the CRM already has them (a catalog change) or a
    receipt needs them; a full push sends every product its receipts reference.
    """
    client_feed = dict(wanted.get("client", {}))
    product_feed = dict(wanted.get("product", {}))
    sale_feed = dict(wanted.get("sale", {}))
    moved = sorted(set(sales_of_clients))
    if moved:
        for start in range(0, len(moved), IN_CHUNK):
            stmt = select(Sale.id).where(col(Sale.client_id).in_(moved[start : start + IN_CHUNK]))
            for sid in (await session.exec(stmt)).all():
                sale_feed.setdefault(int(sid), 0)

    # Sales: receipts are completed sales, plus any sale the CRM already has (a later void shows).
    sales = await _rows(session, Sale, col(Sale.id), sale_feed)
    sale_refs = await _refs(session, connector_id, "sale", [s.id for s in sales])
    sales = [s for s in sales if s.status == RECEIPT_STATUS or s.id in sale_refs]
    if moved:  # a merge moved receipts: only those already in the CRM need re-pointing
        sales = [s for s in sales if s.id in sale_refs or s.id in wanted.get("sale", {})]
    lines_by_sale: dict[int, list[SaleLine]] = defaultdict(list)
    for line in await _rows(session, SaleLine, col(SaleLine.sale_id), [s.id for s in sales]):
        lines_by_sale[line.sale_id].append(line)

    # Clients: those wanted, plus receipt owners the CRM does not have yet.
    sale_clients = {s.client_id for s in sales if s.client_id is not None}
    client_refs = await _refs(session, connector_id, "client", set(client_feed) | sale_clients)
    for cid in sale_clients:
        if cid not in client_refs:
            client_feed.setdefault(cid, 0)
    clients = [c for c in await _rows(session, Client, col(Client.id), client_feed) if c.merged_into_id is None]
    contacts: dict[int, tuple[list[str], list[str]]] = {}
    rows = await _rows(session, ClientContact, col(ClientContact.client_id), [c.id for c in clients])
    rows.sort(key=lambda r: (r.client_id, not r.is_primary, r.id))
    for contact in rows:
        emails, phones = contacts.setdefault(contact.client_id, ([], []))
        (emails if contact.kind == "email" else phones).append(contact.value)

    # Products: those receipts reference (when the CRM lacks them, or always on a full push) and
    # catalog changes to products the CRM has.
    line_products = {ln.product_id for lines in lines_by_sale.values() for ln in lines if ln.product_id is not None}
    product_refs = await _refs(session, connector_id, "product", set(product_feed) | line_products)
    product_ids = {pid for pid in product_feed if pid in product_refs or not incremental or replay}
    product_ids |= {pid for pid in line_products if pid not in product_refs or not incremental}
    if skip_products:
        product_ids -= skip_products
    products = {p.id: p for p in await _rows(session, Product, col(Product.id), product_ids | line_products)}

    locations = {loc.id: loc for loc in await _rows(session, Location, col(Location.id),
                                                    {s.location_id for s in sales} |
                                                    {c.home_location_id for c in clients if c.home_location_id})}
    associates = {a.id: a for a in await _rows(session, Associate, col(Associate.id),
                                               {s.associate_id for s in sales if s.associate_id})}

    items: list[PushItem] = []
    for client in sorted(clients, key=lambda c: c.id or 0):
        assert client.id is not None
        emails, phones = contacts.get(client.id, ([], []))
        home = locations.get(client.home_location_id) if client.home_location_id else None
        items.append(PushItem("client", client.id, {
            "id": client.id, "first_name": client.first_name, "last_name": client.last_name,
            "emails": emails, "phones": phones, "birthday": _iso(client.birthday),
            "anniversary": _iso(client.anniversary), "address": dict(client.address or {}),
            "home_location": home.name if home else None, "archived": client.archived,
            "ref": client_refs.get(client.id),
        }, client_feed.get(client.id, 0)))
    for pid in sorted(product_ids):
        product = products.get(pid)
        if product is None:
            continue
        items.append(PushItem("product", pid, {
            "id": pid, "sku": product.sku, "name": product.name, "vendor": product.vendor,
            "category": product.category, "description": product.description, "price_minor": product.price_minor,
            "currency": product.currency, "archived": product.archived, "ref": product_refs.get(pid),
        }, product_feed.get(pid, 0)))
    for sale in sorted(sales, key=lambda s: s.id or 0):
        assert sale.id is not None
        location = locations.get(sale.location_id)
        associate = associates.get(sale.associate_id) if sale.associate_id else None
        lines = []
        for ln in sorted(lines_by_sale.get(sale.id, []), key=lambda x: x.id or 0):
            product = products.get(ln.product_id) if ln.product_id else None
            lines.append({
                "id": ln.id, "name": ln.name, "sku": ln.sku, "quantity": ln.quantity,
                "unit_price_minor": ln.unit_price_minor, "total_minor": ln.total_minor,
                "is_return": ln.quantity < 0, "parent_line_id": ln.parent_line_id,
                "product": {"id": product.id, "sku": product.sku} if product else None,
            })
        items.append(PushItem("sale", sale.id, {
            "id": sale.id, "client_id": sale.client_id, "status": sale.status, "channel": sale.channel,
            "occurred_at": _iso(sale.occurred_at), "currency": sale.currency, "subtotal_minor": sale.subtotal_minor,
            "tax_minor": sale.tax_minor, "total_minor": sale.total_minor,
            "location": {"id": sale.location_id, "name": location.name if location else None},
            "associate": None if associate is None else {
                "id": associate.id, "name": f"{associate.first_name} {associate.last_name}".strip()},
            "lines": lines, "ref": sale_refs.get(sale.id),
        }, sale_feed.get(sale.id, 0)))
    return items


# ------------------------------------------------------------------------------------ outcomes


@dataclass
class Counts:
    pushed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    skipped: int = 0
    errors: int = 0


async def apply_outcomes(
    session: AsyncSession, connector_id: int, outcomes: Sequence[PushOutcome], *, run_id: int | None
) -> Counts:
    """Record CRM ids, close errors of records that went through, queue the failures."""
    counts = Counts()
    refs: dict[tuple[str, int], str] = {}
    open_errors = {(stream, ext) for stream, ext in (await session.exec(
        select(SyncError.stream, SyncError.external_id).where(
            col(SyncError.connector_id) == connector_id, col(SyncError.stage) == STAGE,
            col(SyncError.state) == "open"))).all()}
    for outcome in outcomes:
        item = outcome.item
        if outcome.ok:
            if (item.entity, str(item.entity_id)) in open_errors:
                await _close_errors(session, connector_id, item.entity, item.entity_id, state="replayed")
            if outcome.external_id:
                refs[(item.entity, item.entity_id)] = outcome.external_id
                counts.pushed[item.entity] += 1
            else:
                counts.skipped += 1
            continue
        counts.errors += 1
        await _queue_error(session, connector_id, outcome, run_id, (item.entity, str(item.entity_id)) in open_errors)
    await _save_refs(session, connector_id, refs)
    return counts


async def _save_refs(session: AsyncSession, connector_id: int, refs: dict[tuple[str, int], str]) -> None:
    """One reference per record and CRM id: a record re-created or adopted under a new id moves it."""
    if not refs:
        return
    now = utcnow()
    by_type: dict[str, dict[int, str]] = defaultdict(dict)
    for (entity, entity_id), external_id in refs.items():
        by_type[entity][entity_id] = external_id
    table = ExternalRef.__table__  # type: ignore[attr-defined]
    for object_type, mapping in by_type.items():
        current = await _refs(session, connector_id, object_type, mapping)
        changed = {uid: ext for uid, ext in mapping.items() if current.get(uid) != ext}
        if not changed:
            continue
        uids, exts = sorted(changed), sorted(set(changed.values()))
        for start in range(0, max(len(uids), len(exts)), IN_CHUNK):
            await session.exec(delete(table).where(  # type: ignore[call-overload]
                table.c.connector_id == connector_id, table.c.object_type == object_type,
                or_(table.c.unified_id.in_(uids[start : start + IN_CHUNK]),
                    table.c.external_id.in_(exts[start : start + IN_CHUNK]))))
        rows = [{"connector_id": connector_id, "object_type": object_type, "external_id": ext, "unified_id": uid,
                 "synced_at": now} for uid, ext in changed.items()]
        for start in range(0, len(rows), 1000):
            await session.exec(insert(table), params=rows[start : start + 1000])  # type: ignore[call-overload]


async def _close_errors(session: AsyncSession, connector_id: int, entity: Any, entity_id: Any, *, state: str) -> None:
    if entity is None or entity_id is None:
        return
    await session.exec(  # type: ignore[call-overload]
        update(SyncError)
        .where(col(SyncError.connector_id) == connector_id, col(SyncError.stage) == STAGE,
               col(SyncError.stream) == entity, col(SyncError.external_id) == str(entity_id),
               col(SyncError.state) == "open")
        .values(state=state, replayed_at=utcnow())
    )


async def _queue_error(
    session: AsyncSession, connector_id: int, outcome: PushOutcome, run_id: int | None, is_open: bool
) -> None:
    item = outcome.item
    details = dict(getattr(outcome, "details", {}) or {})
    payload = {"entity": item.entity, "entity_id": item.entity_id, "feed_id": item.feed_id, "data": item.data}
    context = {"crm_error": details, "retryable": bool(outcome.retryable), "crm_id": outcome.external_id}
    reason = outcome.error or "the CRM refused this record"
    existing = None if not is_open else (await session.exec(
        select(SyncError).where(col(SyncError.connector_id) == connector_id, col(SyncError.stage) == STAGE,
                                col(SyncError.stream) == item.entity,
                                col(SyncError.external_id) == str(item.entity_id), col(SyncError.state) == "open")
        .with_for_update())).first()
    if existing is not None:
        existing.payload = payload
        existing.context = context
        existing.reason = reason
        existing.attempts += 1
        existing.run_id = run_id
        session.add(existing)
        return
    session.add(SyncError(connector_id=connector_id, stage=STAGE, stream=item.entity, external_id=str(item.entity_id),
                          payload=payload, context=context, reason=reason, run_id=run_id))


# -------------------------------------------------------------------------------------- replays


@dataclass
class PushReplay:
    error_id: int
    ok: bool
    message: str


async def replay_push_error(rt: Runtime, error_id: int) -> PushReplay:
    """Push one queued record again from the current store (stage ``crm_push``).

    The record is rebuilt from what Clasp holds now, so the fix made since (a merge, an edit, a
    duplicate removed in the CRM) is what goes. Upserts by Clasp's id: a replay never duplicates.
    On success the error is marked ``replayed``; on failure it stays open with the new reason.
    """
    async with rt.db.session() as session:
        error = await session.get(SyncError, error_id)
    if error is None:
        return PushReplay(error_id, False, f"no error {error_id}")
    if error.stage != STAGE:
        return PushReplay(error_id, False, f"error {error_id} is a {error.stage} error, not a CRM push error")
    if error.state != "open":
        return PushReplay(error_id, error.state == "replayed", f"already {error.state}")
    if error.connector_id is None:
        return PushReplay(error_id, False, "this error belongs to no connector")
    results = await _replay(rt, error.connector_id, [error])
    return results[0]


async def replay_all_push(rt: Runtime, *, connector_id: int | None = None) -> list[PushReplay]:
    """Replay every open CRM push error (of one connector), oldest first, one push per connector."""
    async with rt.db.session() as session:
        stmt = select(SyncError).where(col(SyncError.stage) == STAGE, col(SyncError.state) == "open")
        if connector_id is not None:
            stmt = stmt.where(col(SyncError.connector_id) == connector_id)
        errors = list((await session.exec(stmt.order_by(col(SyncError.id)))).all())
    by_connector: dict[int, list[SyncError]] = defaultdict(list)
    for e in errors:
        if e.connector_id is not None:
            by_connector[e.connector_id].append(e)
    out: list[PushReplay] = []
    for cid, errs in by_connector.items():
        out += await _replay(rt, cid, errs)
    return out


async def _replay(rt: Runtime, connector_id: int, errors: list[SyncError]) -> list[PushReplay]:
    try:
        job = await _Job.load(rt, connector_id, full=False, on_progress=None, trigger="replay", settle=feed.SETTLE)
    except CrmRefused as exc:
        return [PushReplay(e.id or 0, False, str(exc)) for e in errors]
    if not await job._start():
        return [PushReplay(e.id or 0, False, job.report.message or "busy") for e in errors]
    assert job.report.run_id is not None
    job.progress = PushProgress(run_id=job.report.run_id, stream="replay")
    try:
        await job._replay_errors(errors)
        job.report.status = "succeeded"
    except (TransientError, PermanentError) as exc:
        job.report.status = "failed"
        job.report.message = str(exc)
    except Exception as exc:
        log.exception("CRM replay on connector %s crashed", connector_id)
        job.report.status = "failed"
        job.report.message = f"unexpected error: {type(exc).__name__}: {exc}"
    finally:
        await asyncio.shield(job._finish_replay())
    async with rt.db.session() as session:
        out = []
        for e in errors:
            row = await session.get(SyncError, e.id)
            if row is None:
                out.append(PushReplay(e.id or 0, False, "error row vanished"))
            elif row.state == "replayed":
                out.append(PushReplay(e.id or 0, True, "pushed"))
            elif row.state == "dismissed":
                out.append(PushReplay(e.id or 0, True, "the record no longer exists or is no longer pushed"))
            else:
                out.append(PushReplay(e.id or 0, False, job.report.message or row.reason))
    return out




async def crm_connectors(session: AsyncSession, rt: Runtime) -> list[Connector]:
    """Enabled CRM connectors whose type can push."""
    rows = (await session.exec(select(Connector).where(col(Connector.kind) == "crm",
                                                       col(Connector.enabled).is_(True)))).all()
    return [r for r in rows if r.type in rt.registry.connector_types
            and "push" in rt.registry.connector_types[r.type].capabilities]
