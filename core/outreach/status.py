"""Outbound message states move forward only, whatever order the provider's reports arrive in.

Two orders are kept: Clasp's own states (``sending < sent < delivered | undelivered | failed``; a
"review" row may still be resolved by a report) and the provider's finer status words
(``accepted/scheduled < queued < sending < sent < delivered | undelivered | failed < read``).
A report that is not newer than what we have is ignored, so a late "sent" never undoes "delivered".
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Outreach, utcnow
from core.outreach import consent

STATE_RANK = {"pending": 0, "sending": 1, "review": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}
DELIVERY_RANK = {
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "read": 5,
}
# The provider's delivery state → the outreach state it implies.
OUTREACH_STATE_FOR = {
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}
TRACKED = frozenset(STATE_RANK) - {"pending"}


def advance(
    row: Outreach,
    delivery: str,
    *,
    provider_status: str | None = None,
    error_code: str | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Move ``row`` forward to the provider's ``delivery`` state; False when the report is stale."""
    if row.state not in TRACKED or delivery not in DELIVERY_RANK:
        return False
    now = at or utcnow()
    current = DELIVERY_RANK.get(_delivery_of(row), 0)
    new = DELIVERY_RANK[delivery]
    target = OUTREACH_STATE_FOR[delivery]
    if new <= current and STATE_RANK[target] <= STATE_RANK[row.state]:
        return False
    changed = False
    if new > current:
        row.provider_status = provider_status or delivery
        changed = True
    if STATE_RANK[target] > STATE_RANK[row.state] or (row.state == "review" and STATE_RANK[target] >= 2):
        row.state = target
        row.state_reason = reason
        changed = True
    if row.sent_at is None and STATE_RANK[row.state] >= 2:
        row.sent_at = now
    if target == "delivered" and row.delivered_at is None and row.state == "delivered":
        row.delivered_at = now
    if error_code and target in ("undelivered", "failed") and row.state == target:
        row.error_code = error_code
    if changed:
        row.updated_at = utcnow()
    return changed


def _delivery_of(row: Outreach) -> str | None:
    status = (row.provider_status or "").lower()
    if status in DELIVERY_RANK:
        return status
    if status in ("accepted", "scheduled"):
        return None  # before "queued"
    # A provider word we do not rank: fall back on what our own state implies.
    return {"sent": "queued", "delivered": "delivered", "undelivered": "undelivered", "failed": "failed"}.get(row.state)


async def recipient_problem(session: AsyncSession, row: Outreach, problem: str | None, *, source: str) -> None:
    """Record what the provider said about the recipient: an opt-out, or a number that cannot text."""
    if not problem or not row.to_address:
        return
    if problem == "opted_out":
        await consent.record_for_number(
            session, row.to_address, "opted_out", source=source, note=f"provider refused outreach {row.id}"
        )
    elif problem == "unusable":
        await consent.mark_unusable(session, row.to_address)
