"""Change-feed rows appended in bulk (one INSERT per page), with the semantics of ``core.feed.append``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import ChangeFeed
from core.sync.bulk import JSONText, insert_rows

feed_t = ChangeFeed.__table__  # type: ignore[attr-defined]


def jsonable(value: Any) -> Any:
    kind = type(value)
    if kind is datetime or kind is date:
        return value.isoformat()
    return value


_DATES = (datetime, date)


class FeedBatch:
    """Collects a page's changes; ``flush`` writes them in the page transaction."""

    def __init__(self, origin: str, origin_connector_id: int | None, *, as_json: bool = False) -> None:
        self.origin = origin
        self.origin_connector_id = origin_connector_id
        # PostgreSQL: changes are serialised as they are added, which a page does mostly before it may
        # write (core.sync.pipeline), not when it flushes. SQLite takes the dict through its JSON type.
        self.as_json = as_json
        self.rows: list[dict[str, Any]] = []

    def add(self, entity: str, entity_id: int, op: str, changes: dict[str, Any], now: datetime) -> None:
        plain = {k: v.isoformat() if type(v) in _DATES else v for k, v in changes.items()}
        self.rows.append(
            {
                "entity": entity,
                "entity_id": entity_id,
                "op": op,
                # pydantic-core's encoder is about twice as fast as json.dumps; dates are strings already,
                # so the stored JSON is the same.
                "changes": JSONText(to_json(plain).decode()) if self.as_json else plain,
                "created_at": now,
            }
        )

    async def flush(self, conn: AsyncConnection) -> None:
        if self.rows:
            rows, self.rows = self.rows, []
            await insert_rows(conn, feed_t, rows,
                              constants={"origin": self.origin, "origin_connector_id": self.origin_connector_id})
