"""The audit log: who did what, when. Written in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import AuditLog


async def record(
    session: AsyncSession,
    action: str,
    *,
    actor: str = "system",
    actor_user_id: int | None = None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditLog:
    """Append an audit row. ``action`` is dotted, e.g. ``auth.sign_in``, ``connector.settings``."""
    row = AuditLog(
        action=action,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details or {},
        ip=ip,
    )
    session.add(row)
    await session.flush()
    return row
