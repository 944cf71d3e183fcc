"""Counters of a sync run: what the panel and the CLI show while it runs and after."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import SyncRun, utcnow

run_t = SyncRun.__table__  # type: ignore[attr-defined]


@dataclass
class SyncProgress:
    """A snapshot handed to ``on_progress`` after every committed page."""

    run_id: int
    stream: str | None
    records: int
    pages: int
    errors: int
    progress: float | None
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    streams_done: int = 0
    streams_total: int = 0


@dataclass
class StreamStats:
    records: int = 0
    pages: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    retries: int = 0
    seconds: float = 0.0
    status: str = "pending"
    message: str | None = None


@dataclass
class RunTracker:
    """In-memory totals of one run, written to its ``sync_run`` row inside each page transaction."""

    run_id: int
    stream_names: list[str]
    streams: dict[str, StreamStats] = field(default_factory=dict)
    current: str | None = None
    progress: float | None = None
    streams_done: int = 0
    started: float = field(default_factory=time.monotonic)

    def stats(self, stream: str) -> StreamStats:
        return self.streams.setdefault(stream, StreamStats())

    def total(self, attr: str) -> int:
        return sum(getattr(s, attr) for s in self.streams.values())

    def set_page_progress(self, page_progress: float | None) -> None:
        # Whole-run progress: finished streams plus the current stream's own estimate.
        n = max(1, len(self.stream_names))
        if page_progress is None:
            self.progress = None if self.streams_done == 0 else self.streams_done / n
        else:
            self.progress = min(1.0, (self.streams_done + max(0.0, min(1.0, page_progress))) / n)

    def row_values(self) -> dict[str, Any]:
        return {
            "stream": self.current,
            "records": self.total("records"),
            "pages": self.total("pages"),
            "errors": self.total("errors"),
            "progress": self.progress,
            "stats": {name: _rounded(asdict(s)) for name, s in self.streams.items()},
            "heartbeat_at": utcnow(),
        }

    async def write(self, conn: AsyncConnection, **extra: Any) -> None:
        await conn.execute(update(run_t).where(run_t.c.id == self.run_id).values(**self.row_values(), **extra))

    def snapshot(self) -> SyncProgress:
        return SyncProgress(
            run_id=self.run_id,
            stream=self.current,
            records=self.total("records"),
            pages=self.total("pages"),
            errors=self.total("errors"),
            progress=self.progress,
            created=self.total("created"),
            updated=self.total("updated"),
            unchanged=self.total("unchanged"),
            streams_done=self.streams_done,
            streams_total=len(self.stream_names),
        )


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    values["seconds"] = round(values["seconds"], 3)
    return values


ProgressCallback = Callable[[SyncProgress], Awaitable[None] | None]


async def notify(callback: ProgressCallback | None, progress: SyncProgress) -> None:
    if callback is None:
        return
    result = callback(progress)
    if inspect.isawaitable(result):
        await result
