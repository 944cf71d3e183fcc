"""Organisation-wide settings: JSON documents in ``app_setting``, one row per key (``identity``,
``automations``, ``attribution``, ``demo``, ...). Each owner validates its own document with a
pydantic model; this module only reads and writes rows, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import AppSetting, utcnow


async def read(session: AsyncSession, key: str, *, for_update: bool = False) -> dict[str, Any]:
    """The stored document ({} when there is none); ``for_update`` locks the row for a
    read-modify-write (PostgreSQL; SQLite's single writer serialises anyway)."""
    row = await session.get(AppSetting, key, with_for_update=for_update)
    return dict(row.value) if row is not None and isinstance(row.value, dict) else {}


async def write(session: AsyncSession, key: str, value: dict[str, Any]) -> None:
    """Store the document (JSON-ready values), replacing what was there."""
    row = await session.get(AppSetting, key)
    if row is None:
        session.add(AppSetting(key=key, value=value))
    else:
        row.value = value
        row.updated_at = utcnow()
        session.add(row)
    await session.flush()
