"""Connector health for the dashboard and the connector pages: runs, lag, errors and alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import feed
from core.models import Connector, FeedConsumer, SyncError, SyncRun, utcnow
from core.plugin import ConnectorType
from core.runtime import Runtime

# A running sync renews its heartbeat while it works; one this old has most likely lost its worker.
STALE_HEARTBEAT = timedelta(minutes=5)
# Lag worse than this many sync intervals is worth an alert.
LAG_INTERVALS = 3


@dataclass
class Health:
    connector: Connector
    ctype: ConnectorType | None
    running: SyncRun | None = None
    last_run: SyncRun | None = None  # the latest finished run
    open_errors: int = 0
    lag: timedelta | None = None
    alerts: list[str] = field(default_factory=list)
    stalled: bool = False
    # Change-feed consumers serving this connector (writeback, CRM push, ...): name → rows behind.
    feed_lag: dict[str, int] = field(default_factory=dict)

    @property
    def level(self) -> str:
        if not self.connector.enabled:
            return "off"
        if self.alerts:
            return "error"
        if self.running is not None:
            return "running"
        return "ok" if self.connector.last_success_at else "idle"

    @property
    def title(self) -> str:
        return self.ctype.title or self.ctype.name if self.ctype else self.connector.type


async def open_error_counts(session: AsyncSession) -> dict[int, int]:
    stmt = (
        select(SyncError.connector_id, func.count()).where(SyncError.state == "open").group_by(SyncError.connector_id)  # type: ignore[arg-type]
    )
    return {cid: n for cid, n in (await session.exec(stmt)).all() if cid is not None}


async def feed_lags(session: AsyncSession) -> dict[int, dict[str, int]]:
    """Backlog of every change-feed consumer named ``<stage>:<connector id>`` (e.g. writeback:3)."""
    out: dict[int, dict[str, int]] = {}
    for name in (await session.exec(select(FeedConsumer.name))).all():
        stage, _, suffix = name.rpartition(":")
        if stage and suffix.isdigit():
            out.setdefault(int(suffix), {})[stage] = await feed.lag(session, name)
    return out


async def health_for(
    rt: Runtime,
    session: AsyncSession,
    connector: Connector,
    errors: dict[int, int] | None = None,
    lags: dict[int, dict[str, int]] | None = None,
) -> Health:
    assert connector.id is not None
    ctype = rt.registry.connector_types.get(connector.type)
    runs = await session.exec(
        select(SyncRun).where(SyncRun.connector_id == connector.id).order_by(SyncRun.started_at.desc()).limit(5)  # type: ignore[attr-defined]
    )
    health = Health(connector=connector, ctype=ctype)
    for run in runs:
        if run.status == "running" and health.running is None and health.last_run is None:
            health.running = run
        elif run.status != "running" and health.last_run is None:
            health.last_run = run
    if errors is None:
        errors = await open_error_counts(session)
    health.open_errors = errors.get(connector.id, 0)
    if lags is None:
        lags = await feed_lags(session)
    health.feed_lag = lags.get(connector.id, {})
    now = utcnow()
    health.lag = now - connector.last_success_at if connector.last_success_at else None
    if health.running is not None and now - health.running.heartbeat_at > STALE_HEARTBEAT:
        health.stalled = True
    health.alerts = _alerts(health, now)
    return health


def _alerts(h: Health, now: datetime) -> list[str]:
    c = h.connector
    if not c.enabled:
        return []
    alerts: list[str] = []
    if h.ctype is None:
        alerts.append(f"The plugin providing connector type “{c.type}” is not installed.")
    if c.state == "error":
        alerts.append(f"Connector error: {c.state_message or 'no details'}")
    if c.state == "needs_auth":
        alerts.append("Needs authorization: the provider no longer accepts the stored credentials.")
    if h.last_run is not None and h.last_run.status in ("failed", "interrupted") and h.running is None:
        alerts.append(f"Last sync {h.last_run.status}: {h.last_run.message or 'no details'}")
    if h.stalled:
        alerts.append("A sync has not reported progress for over 5 minutes; is the worker running?")
    if h.open_errors:
        alerts.append(f"{h.open_errors} record(s) in the error queue.")
    interval = int(c.settings.get("poll_interval_seconds") or 300) if isinstance(c.settings, dict) else 300
    if h.lag is not None and h.lag > timedelta(seconds=interval * LAG_INTERVALS) and h.running is None:
        alerts.append("No successful sync for a while: data may be out of date.")
    return alerts


async def health_all(rt: Runtime, session: AsyncSession) -> list[Health]:
    connectors = (await session.exec(select(Connector).order_by(Connector.name))).all()
    errors, lags = await open_error_counts(session), await feed_lags(session)
    return [await health_for(rt, session, c, errors, lags) for c in connectors]
