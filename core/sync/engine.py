"""Sync runs: take the connector's lease, read each stream from its checkpoint, commit page by page.

Each page's records, its error-queue rows, the checkpoint after it, the run's counters and the
lease renewal commit in ONE transaction. A run killed at any point therefore resumes from the last
committed page: pages after it were never committed, pages before it are not read again except at
the ``>=`` cursor boundary, where unchanged records are skipped by their payload hash. On PostgreSQL
a sales page reads and plans while the previous page commits (``core.sync.pipeline``); pages still
commit in order.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, contextmanager, suppress
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.connectors import ConnectorError, context_for, get_connector
from core.models import Checkpoint, Connector, SyncError, SyncRun, utcnow
from core.plugin import ConnectorType, Page, PermanentError, Stream, TransientError
from core.runtime import Runtime
from core.sync import lease, pipeline
from core.sync.context import MustWait
from core.sync.exceptions import LeaseLost, SyncBusy, SyncFailed, SyncRefused
from core.sync.ingest import Decoded, PageResult, decode_page_async, describe, ingest_page
from core.sync.options import SyncOptions
from core.sync.progress import ProgressCallback, RunTracker, notify
from core.sync.refs import RefCache
from core.sync.replay import retry_unresolved

log = logging.getLogger(__name__)
checkpoint_t = Checkpoint.__table__  # type: ignore[attr-defined]
run_t = SyncRun.__table__  # type: ignore[attr-defined]
connector_t = Connector.__table__  # type: ignore[attr-defined]
error_t = SyncError.__table__  # type: ignore[attr-defined]


async def run_sync(
    rt: Runtime,
    connector: int | str,
    *,
    full: bool = False,
    trigger: str = "cli",
    on_progress: ProgressCallback | None = None,
    options: SyncOptions | None = None,
) -> SyncRun:
    """Run every stream of a connector once; return the finished ``sync_run`` row.

    Raises :class:`SyncBusy` if another run holds the lease, :class:`SyncRefused` if the connector
    cannot sync, :class:`SyncFailed` (carrying the run) if a stream failed — its committed pages stay.
    """
    opts = options or SyncOptions()
    async with rt.db.session() as session:
        try:
            row = await get_connector(session, connector)
        except ConnectorError as exc:
            raise SyncRefused(str(exc)) from None
    assert row.id is not None
    try:
        ctype = rt.registry.connector_type(row.type)
    except KeyError as exc:
        raise SyncRefused(str(exc.args[0])) from None
    if not row.enabled:
        raise SyncRefused(f"connector {row.name!r} is disabled; enable it to sync")
    try:
        ctx = context_for(rt, row)
    except Exception as exc:  # stored settings no longer valid for the plugin's model
        raise SyncRefused(f"connector {row.name!r} has invalid settings: {describe(exc)}") from None
    streams = ctype.streams(ctx)
    if not streams:
        raise SyncRefused(f"connector {row.name!r} ({row.type}) has nothing to sync")

    run = _Run(rt, row, ctype, ctx, streams, full=full, trigger=trigger, on_progress=on_progress, opts=opts)
    with _collector_skips_older_objects():
        return await run.execute()


_active_runs = 0


@contextmanager
def _collector_skips_older_objects() -> Iterator[None]:
    """Keep the cyclic garbage collector off the objects that existed before the run.

    A page allocates tens of thousands of short-lived container objects (records, plans, rows), so
    the collector runs full collections every few pages, and each one walks the whole heap (SQLAlchemy,
    pydantic, plugins): 10-20% of a sync's CPU in the benchmark. ``gc.freeze`` parks the existing objects for the
    duration of the run; ``gc.unfreeze`` hands them back, so nothing is kept alive beyond the run.
    Nothing is freed later than it would be by reference counting either: only cycles wait for the end.
    """
    global _active_runs
    if _active_runs == 0:
        gc.freeze()
    _active_runs += 1
    try:
        yield
    finally:
        _active_runs -= 1
        if _active_runs == 0:
            gc.unfreeze()


class _Run:
    def __init__(
        self, rt: Runtime, connector: Connector, ctype: ConnectorType, ctx: Any, streams: list[Stream], *,
        full: bool, trigger: str, on_progress: ProgressCallback | None, opts: SyncOptions,
    ) -> None:
        assert connector.id is not None
        self.rt = rt
        self.connector = connector
        self.connector_id: int = connector.id
        self.ctype = ctype
        self.ctx = ctx
        self.streams = streams
        self.full = full
        self.trigger = trigger
        self.on_progress = on_progress
        self.opts = opts
        self.owner = lease.new_owner()
        self.keeper = lease.LeaseKeeper(rt.db, self.connector_id, self.owner, opts.lease_seconds, opts.renew_seconds)
        self.tracker: RunTracker | None = None
        self.has_open_errors = False
        # Pages of a stream overlap (core.sync.pipeline) on PostgreSQL: one connection per transaction there.
        self.overlap = opts.overlap_pages and rt.db.dialect == "postgresql"
        self.ref_cache = RefCache()

    async def execute(self) -> SyncRun:
        run_id = await self._start()
        self.tracker = RunTracker(run_id, [s.name for s in self.streams])
        self.keeper.start(run_id)
        status, message = "failed", None
        try:
            failures = []
            for stream in self.streams:
                self.tracker.current = stream.name
                error = await self._run_stream(stream)
                if error:
                    failures.append(f"{stream.name}: {error}")
                self.tracker.streams_done += 1
            retried = await retry_unresolved(self.rt, self.connector_id, self.ctype, self.streams,
                                             run_id=run_id, fence=self._fence, limit=self.opts.unresolved_retry_limit)
            if retried:
                log.info("sync %s: %d queued records resolved on retry", self.connector.name, retried)
            status = "failed" if failures else "succeeded"
            message = "; ".join(failures) or None
        except LeaseLost as exc:
            status, message = "interrupted", str(exc)
        except asyncio.CancelledError:
            status, message = "interrupted", "the sync was cancelled (worker shutdown or job timeout)"
            await asyncio.shield(self._finish(status, message))
            raise
        except Exception as exc:  # recorded on the run, re-raised as SyncFailed
            log.exception("sync run %s crashed", run_id)
            status, message = "failed", f"unexpected error: {describe(exc)}"
        finished = await asyncio.shield(self._finish(status, message))
        if status != "succeeded":
            raise SyncFailed(finished)
        return finished

    # ------------------------------------------------------------------------------------ run rows

    async def _start(self) -> int:
        now = utcnow()
        async with self.rt.db.engine.begin() as conn:
            if not await lease.acquire(conn, self.connector_id, self.owner, self.opts.lease_seconds):
                owner, expires = await lease.holder(conn, self.connector_id)
                raise SyncBusy(self.connector.name, owner, expires)
            await lease.mark_orphaned_runs(conn, self.connector_id)
            result = await conn.execute(
                insert(run_t).returning(run_t.c.id),
                [{"connector_id": self.connector_id, "full": self.full, "trigger": self.trigger[:40],
                  "status": "running", "records": 0, "pages": 0, "errors": 0, "stats": {},
                  "started_at": now, "heartbeat_at": now}],
            )
            run_id = result.scalar_one()
            self.has_open_errors = bool((await conn.execute(
                select(func.count()).select_from(error_t).where(error_t.c.connector_id == self.connector_id,
                                                                 error_t.c.state == "open"))).scalar_one())
        return int(run_id)

    async def _finish(self, status: str, message: str | None) -> SyncRun:
        assert self.tracker is not None
        await self.keeper.stop()
        now = utcnow()
        try:
            interval = int(self.ctype.sync_interval_seconds(self.ctx))
        except Exception:  # a plugin bug must not keep the lease held
            interval = 300
        async with self.rt.db.engine.begin() as conn:
            await self.tracker.write(conn, status=status, message=message, finished_at=now)
            values: dict[str, Any] = {
                "next_sync_at": now + timedelta(seconds=max(10, interval)),
                "state": "ok" if status == "succeeded" else "error",
                "state_message": None if status == "succeeded" else (message or status)[:1000],
                "updated_at": now,
            }
            if status == "succeeded":
                values["last_success_at"] = now
            # Only while the lease is still ours: after a takeover the connector belongs to the other run.
            await conn.execute(
                update(connector_t)
                .where(connector_t.c.id == self.connector_id, connector_t.c.lease_owner == self.owner)
                .values(**values)
            )
            await lease.release(conn, self.connector_id, self.owner)
        async with self.rt.db.session() as session:
            run = await session.get(SyncRun, self.tracker.run_id)
            assert run is not None
            return run

    # ------------------------------------------------------------------------------------- streams

    async def _fence(self, conn: AsyncConnection) -> None:
        """First statement of every write transaction of this run: renew the lease or stop."""
        await lease.renew(conn, self.connector_id, self.owner, self.opts.lease_seconds)

    async def _run_stream(self, stream: Stream) -> str | None:
        """Read one stream to its end; return an error message if it failed (committed pages stay)."""
        assert self.tracker is not None
        stats = self.tracker.stats(stream.name)
        stats.status = "running"
        started = time.monotonic()
        committed_any = False
        attempt = 0

        def committed() -> None:
            nonlocal committed_any, attempt
            committed_any = True
            attempt = 0

        try:
            while True:
                state = await self._load_state(stream.name)
                # After a retry, resume from what this run committed rather than restart a full read.
                full = self.full and not committed_any
                try:
                    async with aclosing(prefetch(stream, stream.read(state, full=full))) as pages:
                        await self._commit_pages(stream, pages, committed)
                    break
                except TransientError as exc:
                    attempt += 1
                    stats.retries += 1
                    if attempt >= self.opts.transient_attempts:
                        raise
                    delay = self._backoff(attempt, exc.retry_after)
                    log.warning("sync %s/%s: %s; retrying in %.1fs", self.connector.name, stream.name, exc, delay)
                    await asyncio.sleep(delay)
            stats.status = "ok"
            return None
        except (LeaseLost, asyncio.CancelledError):
            stats.status = "interrupted"
            raise
        except (TransientError, PermanentError) as exc:
            stats.status, stats.message = "failed", str(exc)
        except Exception as exc:  # a broken stream fails itself, not the other streams
            log.exception("sync %s/%s failed", self.connector.name, stream.name)
            stats.status, stats.message = "failed", describe(exc)
        finally:
            stats.seconds += time.monotonic() - started
        return stats.message

    async def _commit_pages(
        self, stream: Stream, pages: AsyncIterator[tuple[Page, Decoded]], committed: Callable[[], None]
    ) -> None:
        if not (self.overlap and stream.object_type in pipeline.PAGE_KEYS):
            async for page, decoded in pages:
                await self._commit_page(stream, page, decoded)
                committed()
            return
        # At most two page transactions are open: the one ahead (writing or committing) and the next.
        ahead: _Ahead | None = None
        flying: list[asyncio.Task[str | None]] = []
        try:
            async for page, decoded in pages:
                keys = pipeline.keys_of(stream, page.records, decoded)
                if ahead is not None and (keys is None or ahead.keys is None or not keys.isdisjoint(ahead.keys)):
                    await ahead.task
                    committed()
                    ahead = None
                this = _Ahead(keys)
                this.task = asyncio.create_task(self._commit_page_after(stream, page, decoded, ahead, this))
                flying = [t for t in flying if not t.done()] + [this.task]
                if ahead is not None:
                    await ahead.task
                    committed()
                ahead = this
            if ahead is not None:
                await ahead.task
                committed()
        except BaseException as exc:
            # Pages already handed over finish (or roll back, on cancellation) before anything else.
            if isinstance(exc, asyncio.CancelledError):
                for task in flying:
                    task.cancel()
            for task in flying:
                with suppress(BaseException):
                    if await task is not None:
                        committed()
            raise

    async def _commit_page_after(
        self, stream: Stream, page: Page, decoded: Decoded, prior: _Ahead | None, this: _Ahead
    ) -> str | None:
        """Commit a page after ``prior`` (the previous page), overlapping it when possible.

        Returns the page's transaction id, or None if it was dropped because ``prior`` did not commit."""
        try:
            return await self._commit_page_in_turn(stream, page, decoded, prior, this)
        finally:
            this.settle(None)  # no-op once it committed

    async def _commit_page_in_turn(
        self, stream: Stream, page: Page, decoded: Decoded, prior: _Ahead | None, this: _Ahead
    ) -> str | None:
        if prior is not None:
            try:
                return await self._commit_overlapped(stream, page, decoded, prior, this)
            except _PriorFailed:
                return None
            except MustWait as exc:
                log.debug("sync %s/%s: page runs again on its own (%s)", self.connector.name, stream.name,
                          type(exc).__name__)
            except (LeaseLost, asyncio.CancelledError):
                raise
            except Exception:  # something the overlap did not foresee: the ordinary way decides
                log.warning("sync %s/%s: an overlapped page failed; running it again on its own",
                            self.connector.name, stream.name, exc_info=True)
            if await prior.committed() is None:
                return None
        return await self._commit_page(stream, page, decoded, this)

    async def _commit_overlapped(self, stream: Stream, page: Page, decoded: Decoded, prior: _Ahead,
                                 this: _Ahead) -> str | None:
        """Read and plan the page while ``prior`` still writes and commits; write once it has committed,
        after taking the connector's lock and checking that nothing else wrote in between."""
        assert self.tracker is not None
        locked = False
        xid: str | None = None
        conn: AsyncConnection

        async def gate() -> None:
            nonlocal locked, xid
            prior_xid = await prior.committed()
            if prior_xid is None:
                raise _PriorFailed()
            await self.keeper.lock.acquire()
            locked = True
            xid = await pipeline.renew(conn, self.connector_id, self.owner, self.opts.lease_seconds, after=prior_xid)

        async def relock() -> None:
            nonlocal xid
            # What follows reads afresh (record by record), so the lock is all it needs.
            xid = await pipeline.renew(conn, self.connector_id, self.owner, self.opts.lease_seconds)

        try:
            async with self.rt.db.sessionmaker() as session:
                await session.begin()
                try:
                    conn = await session.connection()
                    result = await ingest_page(
                        session, connector_id=self.connector_id, connector_type=self.ctype.name, stream=stream,
                        payloads=page.records, run_id=self.tracker.run_id, close_errors=self.has_open_errors,
                        decoded=decoded, gate=gate, relock=relock, ref_cache=self.ref_cache,
                    )
                    assert xid is not None
                    await self._finish_page(conn, stream, page, result)
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        finally:
            if locked:
                self.keeper.lock.release()
        return await self._committed(result, xid, this)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.opts.retry_max_delay, max(0.0, retry_after))
        cap = min(self.opts.retry_max_delay, self.opts.retry_base_delay * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)

    async def _load_state(self, stream: str) -> dict[str, Any]:
        async with self.rt.db.engine.connect() as conn:
            row = (await conn.execute(select(checkpoint_t.c.state).where(
                checkpoint_t.c.connector_id == self.connector_id, checkpoint_t.c.stream == stream))).first()
        return dict(row[0] or {}) if row else {}

    async def _commit_page(self, stream: Stream, page: Page, decoded: Decoded,
                           this: _Ahead | None = None) -> str | None:
        """Commit one page in one transaction that starts by taking the connector's lock; returns the
        transaction's id when pages overlap (PostgreSQL)."""
        assert self.tracker is not None
        xid = None
        async with self.keeper.lock, self.rt.db.transaction() as session:
            conn = await session.connection()
            if self.overlap:
                xid = await pipeline.renew(conn, self.connector_id, self.owner, self.opts.lease_seconds)
            else:
                await self._fence(conn)
            result = await ingest_page(
                session, connector_id=self.connector_id, connector_type=self.ctype.name, stream=stream,
                payloads=page.records, run_id=self.tracker.run_id, close_errors=self.has_open_errors,
                decoded=decoded, ref_cache=self.ref_cache,
            )
            await self._finish_page(conn, stream, page, result)
        return await self._committed(result, xid, this)

    async def _committed(self, result: PageResult, xid: str | None, this: _Ahead | None) -> str | None:
        """After a page committed and let go of the lock: the next page may write, then progress."""
        assert self.tracker is not None
        if this is not None:
            this.settle(xid)
        self.keeper.touch()
        if result.errors:
            self.has_open_errors = True
        await notify(self.on_progress, self.tracker.snapshot())
        return xid

    async def _finish_page(self, conn: AsyncConnection, stream: Stream, page: Page, result: PageResult) -> None:
        """The checkpoint and the run's counters, in the page's transaction."""
        assert self.tracker is not None
        stats = self.tracker.stats(stream.name)
        await _save_checkpoint(conn, self.connector_id, stream.name, page.state)
        stats.pages += 1
        stats.records += len(page.records)
        stats.created += result.created
        stats.updated += result.updated
        stats.unchanged += result.unchanged
        stats.errors += result.errors
        self.tracker.set_page_progress(page.progress)
        await self.tracker.write(conn)


class _Ahead:
    """A page handed over for commit: its task (the transaction id once committed, None if dropped),
    what it touches, and its outcome as soon as it is known.

    The next page waits for the outcome, which is settled the moment the page has committed and let
    go of the connector's lock: before the page reports its progress, and before the loop that hands
    out pages gets its turn, so the next page's writes start as early as they can."""

    def __init__(self, keys: set[str] | None) -> None:
        self.keys = keys
        self.task: asyncio.Task[str | None]
        self._outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    def settle(self, xid: str | None) -> None:
        if not self._outcome.done():
            self._outcome.set_result(xid)

    async def committed(self) -> str | None:
        """The page's transaction id once it committed; None if it did not."""
        # Shielded: a waiter being cancelled must not cancel the outcome the page settles.
        return await asyncio.shield(self._outcome)


class _PriorFailed(MustWait):
    """The previous page did not commit: this one must not either."""


async def prefetch(stream: Stream, pages: AsyncIterator[Page]) -> AsyncIterator[tuple[Page, Decoded]]:
    """Read and decode the next page while the current one commits: a sync takes about max(fetch +
    decode, write) per page, not their sum. One page is read ahead; a crash loses nothing (it was
    never committed)."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
    done = object()

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put((page, await decode_page_async(stream, page.records)))
            await queue.put(done)
        except Exception as exc:
            await queue.put(exc)

    task = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is done:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        close = getattr(pages, "aclose", None)  # read() may return any async iterator
        if close is not None:
            await close()


async def _save_checkpoint(conn: AsyncConnection, connector_id: int, stream: str, state: dict[str, Any]) -> None:
    now = utcnow()
    result = await conn.execute(
        update(checkpoint_t)
        .where(checkpoint_t.c.connector_id == connector_id, checkpoint_t.c.stream == stream)
        .values(state=state, updated_at=now)
    )
    if result.rowcount == 0:
        await conn.execute(insert(checkpoint_t), [{"connector_id": connector_id, "stream": stream, "state": state,
                                                    "updated_at": now}])
