"""The sync engine: runs a connector's streams into the unified store.

``run_sync`` is the one entry point (CLI, worker and panel call it); see :mod:`core.sync.engine`.
"""

from core.sync.engine import run_sync
from core.sync.exceptions import SyncBusy, SyncException, SyncFailed, SyncRefused
from core.sync.options import SyncOptions
from core.sync.progress import SyncProgress

__all__ = ["SyncBusy", "SyncException", "SyncFailed", "SyncOptions", "SyncProgress", "SyncRefused", "run_sync"]
