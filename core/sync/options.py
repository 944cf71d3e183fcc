"""Engine tuning knobs. Defaults suit production; tests shorten the waits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SyncOptions:
    # How long a lease lasts without renewal: a crashed worker blocks its connector this long at most.
    lease_seconds: float = 90.0
    # The lease is renewed by every page commit and by a background task at this interval.
    renew_seconds: float = 30.0
    # Transient plugin errors (TransientError) are retried this many times per stream, with backoff.
    transient_attempts: int = 5
    retry_base_delay: float = 2.0
    retry_max_delay: float = 120.0
    # Records whose reference could not be resolved are retried at the end of every run, up to this many.
    unresolved_retry_limit: int = 5000
    # PostgreSQL: a stream's next page reads and plans while the previous one writes and commits
    # (see core.sync.pipeline). Off, every page waits for the previous commit.
    overlap_pages: bool = True
