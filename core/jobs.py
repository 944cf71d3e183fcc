"""Background jobs on arq. Redis only schedules: every job carries ids, and the periodic ``tick``
re-derives due work from the database, so a Redis that lost its state loses nothing.

Job ids de-duplicate: a connector has at most one queued sync (``<queue>:sync:<connector id>``), and
results are not kept, so the same id can be queued again as soon as the run has finished.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import timedelta
from typing import Any

from arq import create_pool, cron
from arq.connections import ArqRedis
from arq.worker import Function, Worker
from sqlalchemy import or_
from sqlmodel import col, select

from core.attribution.jobs import attribution_feed
from core.automations.jobs import automations_feed, automations_tick
from core.home_store import home_store_feed
from core.models import Connector, utcnow
from core.outreach.jobs import outbox_tick, send_outbox
from core.plugin import Job
from core.redis import redis_settings
from core.runtime import Runtime
from core.writeback import writeback_job

log = logging.getLogger(__name__)

# Connector kinds whose connectors have something to pull on a schedule.
SCHEDULED_KINDS = ("pos", "catalog", "crm")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def sync_job_id(rt: Runtime, connector_id: int) -> str:
    # arq's job keys are global to the Redis database, so the queue name is part of the id: two
    # deployments (or test runs) sharing one Redis never swallow each other's jobs.
    return f"{rt.settings.queue_name}:sync:{connector_id}"


async def redis_pool(rt: Runtime) -> ArqRedis:
    """The runtime's arq pool, connected on first use."""
    if rt.redis is None:
        rt.redis = await create_pool(redis_settings(rt.settings), default_queue_name=rt.settings.queue_name)
    return rt.redis


async def enqueue_sync(rt: Runtime, connector_id: int, *, full: bool = False, trigger: str = "schedule") -> str | None:
    """Queue a sync of one connector; None when one is already queued or running."""
    pool = await redis_pool(rt)
    job = await pool.enqueue_job(
        "sync_connector", connector_id, full, trigger, _job_id=sync_job_id(rt, connector_id)
    )
    return job.job_id if job is not None else None


async def due_connectors(rt: Runtime) -> list[int]:
    """Enabled connectors whose next sync is due and whose lease is free (or expired)."""
    now = utcnow()
    async with rt.db.session() as session:
        stmt = select(Connector.id).where(
            col(Connector.enabled).is_(True),
            col(Connector.kind).in_(SCHEDULED_KINDS),
            or_(col(Connector.next_sync_at).is_(None), col(Connector.next_sync_at) <= now),
            or_(col(Connector.lease_expires_at).is_(None), col(Connector.lease_expires_at) < now),
        )
        ids = [int(i) for i in (await session.exec(stmt)).all()]
    # Only connectors whose type offers streams (or a push) are scheduled.
    out = []
    async with rt.db.session() as session:
        for cid in ids:
            connector = await session.get(Connector, cid)
            if connector is None or connector.type not in rt.registry.connector_types:
                continue
            caps = rt.registry.connector_types[connector.type].capabilities
            if {"sync", "push", "catalog"} & set(caps):
                out.append(cid)
    return out


async def tick(ctx: dict[str, Any]) -> dict[str, Any]:
    """Re-derive due work from the database and queue it. Safe to run any number of times."""
    rt: Runtime = ctx["clasp"]
    queued = []
    for cid in await due_connectors(rt):
        if await enqueue_sync(rt, cid, trigger="schedule"):
            queued.append(cid)
    return {"queued_syncs": queued}


async def sync_connector(ctx: dict[str, Any], connector_id: int, full: bool = False, trigger: str = "schedule") -> str:
    """Run one connector's sync (for a CRM connector: its push). Failures are recorded on the run,
    not raised into arq: the next tick decides when to try again."""
    from core.sync import SyncBusy, SyncFailed, SyncRefused, run_sync

    rt: Runtime = ctx["clasp"]
    async with rt.db.session() as session:
        row = await session.get(Connector, connector_id)
    if row is not None and row.kind == "crm":
        from core.crm import CrmRefused, run_push

        try:
            report = await run_push(rt, connector_id, full=full, trigger=trigger)
        except CrmRefused as exc:
            return f"refused: {exc}"
        return f"push run {report.run_id}: {report.status}"
    try:
        run = await run_sync(rt, connector_id, full=full, trigger=trigger)
    except SyncBusy:
        return "busy"
    except SyncRefused as exc:  # removed, disabled or misconfigured since it was queued
        return f"refused: {exc}"
    except SyncFailed as exc:
        log.warning("sync of connector %s failed: %s", connector_id, exc)
        return "failed"
    return f"run {run.id}: {run.status}"


def _cron_for(seconds: int) -> dict[str, Any]:
    if seconds < 60:
        return {"second": set(range(0, 60, max(1, seconds)))}
    minutes = max(1, seconds // 60)
    return {"minute": set(range(0, 60, minutes)), "second": {0}}


def worker_settings(rt: Runtime) -> dict[str, Any]:
    """Keyword arguments for :class:`arq.worker.Worker`, built from core jobs and plugin jobs."""
    jobs: list[Job] = [
        Job(name="sync_connector", function=sync_connector, timeout_seconds=6 * 3600),
        Job(name="tick", function=tick, cron=_cron_for(rt.settings.tick_seconds), run_at_startup=True),
        Job(name="send_outbox", function=send_outbox, timeout_seconds=900),
        Job(
            name="automations_tick",
            function=automations_tick,
            cron=_cron_for(300),
            run_at_startup=True,
            timeout_seconds=1800,
        ),
        Job(
            name="automations_feed",
            function=automations_feed,
            cron=_cron_for(rt.settings.tick_seconds),
            timeout_seconds=900,
        ),
        Job(
            name="home_store_feed",
            function=home_store_feed,
            cron=_cron_for(rt.settings.tick_seconds),
            run_at_startup=True,
            timeout_seconds=900,
        ),
        Job(
            name="attribution_feed",
            function=attribution_feed,
            cron=_cron_for(rt.settings.tick_seconds),
            timeout_seconds=1800,
        ),
        Job(name="writeback", function=writeback_job, cron=_cron_for(rt.settings.tick_seconds), timeout_seconds=600),
        Job(
            name="outbox_tick",
            function=outbox_tick,
            cron=_cron_for(rt.settings.tick_seconds),
            run_at_startup=True,
            timeout_seconds=900,
        ),
        *rt.registry.jobs.values(),
    ]
    functions = [
        Function(
            name=j.name,
            coroutine=j.function,
            timeout_s=j.timeout_seconds,
            keep_result_s=0,
            keep_result_forever=False,
            max_tries=3,
        )
        for j in jobs
        if j.cron is None
    ]
    cron_jobs = [
        cron(
            j.function,
            name=j.name,
            run_at_startup=j.run_at_startup,
            timeout=timedelta(seconds=j.timeout_seconds),
            keep_result=0,
            unique=True,
            **j.cron,
        )
        for j in jobs
        if j.cron is not None
    ]

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["clasp"] = rt

    return {
        "functions": functions,
        "cron_jobs": cron_jobs,
        "queue_name": rt.settings.queue_name,
        "redis_settings": redis_settings(rt.settings),
        "on_startup": on_startup,
        "keep_result": 0,
        "max_jobs": 10,
        "job_timeout": 3600,
        "ctx": {"clasp": rt},
    }


async def create_worker(
    rt: Runtime, *, burst: bool = False, handle_signals: bool = False, **overrides: Any
) -> Worker:
    """An arq worker for this runtime, not yet started (``await worker.async_run()``).

    ``overrides`` replace :func:`worker_settings` keys (e.g. ``max_jobs``)."""
    return Worker(**{**worker_settings(rt), **overrides}, burst=burst, handle_signals=handle_signals)


async def run_worker(rt: Runtime) -> None:
    """Run a worker until SIGINT/SIGTERM."""
    worker = await create_worker(rt, handle_signals=True)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        pass
    finally:
        await worker.close()
