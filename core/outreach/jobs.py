"""Worker jobs for the outbox. Redis only schedules: both jobs re-read everything from the database.

- ``send_outbox``: send what is due now (queued by :func:`kick` right after a compose, so a
  person's text leaves within seconds instead of at the next tick).
- ``outbox_tick`` (cron): reconcile rows stuck in ``sending`` and send whatever is due — pending
  rows whose quiet hours ended, retries whose backoff elapsed, anything a lost Redis forgot.
"""

from __future__ import annotations

import logging
from typing import Any

from core.outreach.sender import flush
from core.runtime import Runtime

log = logging.getLogger(__name__)


def send_job_id(rt: Runtime) -> str:
    return f"{rt.settings.queue_name}:outbox"


async def send_outbox(ctx: dict[str, Any]) -> dict[str, int]:
    rt: Runtime = ctx["clasp"]
    report = await flush(rt)
    return report.summary()


async def outbox_tick(ctx: dict[str, Any]) -> dict[str, int]:
    rt: Runtime = ctx["clasp"]
    report = await flush(rt)
    return report.summary()


async def kick(rt: Runtime) -> bool:
    """Ask a worker to send now. Best effort: without Redis the next tick sends it anyway."""
    if rt.redis is None:
        return False
    try:
        job = await rt.redis.enqueue_job("send_outbox", _job_id=send_job_id(rt))
    except Exception as exc:  # the row is safe in the database; only the hurry is lost
        log.warning("could not queue send_outbox: %s", exc)
        return False
    return job is not None
