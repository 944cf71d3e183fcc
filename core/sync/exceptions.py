"""What a sync run raises to its caller (the CLI, the worker, the panel)."""

from __future__ import annotations

from datetime import datetime

from core.models import SyncRun


class SyncException(Exception):
    """Base class of the sync engine's errors; the message is written for people."""


class SyncBusy(SyncException):
    """Another run holds the connector's lease (it is syncing now, or died less than a lease ago)."""

    def __init__(self, connector: str, owner: str | None, expires_at: datetime | None) -> None:
        until = f" until {expires_at:%Y-%m-%d %H:%M:%S} UTC" if expires_at else ""
        super().__init__(f"connector {connector!r} is already syncing (lease held by {owner or '?'}{until})")
        self.owner = owner
        self.expires_at = expires_at


class SyncRefused(SyncException):
    """The connector cannot be synced as asked (disabled, not a sync connector, bad settings)."""


class SyncFailed(SyncException):
    """The run ended in failure; pages committed before the failure are kept. ``run`` says why."""

    def __init__(self, run: SyncRun) -> None:
        super().__init__(f"sync run {run.id} failed: {run.message or 'see the run record'}")
        self.run = run


class LeaseLost(SyncException):
    """This run's lease expired and another worker took the connector over; stop without committing."""
