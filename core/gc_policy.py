"""The Python garbage collector's schedule for a Clasp process.

CPython's default collects the youngest generation every 700 net allocations of container objects.
A sync page holds tens of thousands of them (records, plans, row dicts) until it commits, so the
collector kept walking live objects it could not free and promoting them: about a tenth of the sync's
CPU (``bench/ingest.py``: 75 -> 64 µs of Python per sale at 100k sales, GC time 1.47 s -> 0.14 s).
Almost everything Clasp allocates is freed by reference counting; the collector is only for cycles,
and 50,000 objects of cyclic garbage at most before a collection is a few megabytes.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def apply() -> None:
    """Collect the young generation every ``YOUNG_THRESHOLD`` allocations; the older generations keep
    CPython's own ratios. Idempotent; every runtime applies it (web, worker, CLI, benchmarks)."""
    young, older, oldest = gc.get_threshold()
    if young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
