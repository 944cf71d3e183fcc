"""/api/v1/sales: sales with their lines, at the locations the token's user may see."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, ValidationException
from litestar.params import Parameter
from sqlalchemy import and_, or_
from sqlmodel import col, select

from core.access import location_filter
from core.api.auth import CallerDep
from core.api.schemas import SaleList, SaleStatus, sale_out
from core.clients import SaleView, decode_cursor, encode_cursor, lines_for
from core.models import Sale


def _instant(value: str | None, name: str) -> datetime | None:
    """A date (midnight UTC) or a datetime with a timezone."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        message = "use a date (YYYY-MM-DD, midnight UTC) or a datetime with a timezone (2026-01-31T09:00:00Z)"
        raise ValidationException(
            detail=f"invalid {name}: {message}", extra=[{"key": name, "message": message, "source": "query"}]
        )
    return parsed.astimezone(UTC)


class SalesController(Controller):
    path = "/sales"
    tags = ["sales"]

    @get(
        "/",
        summary="List sales",
        raises=[NotAuthorizedException, ValidationException],
        description="Sales at the token's user's locations, most recent first, with their lines. Amounts are "
        "integer minor units of the sale's currency.",
    )
    async def list_sales(
        self,
        state: State,
        caller: CallerDep,
        client_id: Annotated[int | None, Parameter(description="Only this client's sales")] = None,
        location_id: Annotated[int | None, Parameter(description="Only sales at this location")] = None,
        since: Annotated[
            str | None, Parameter(description="occurred_at at or after: a date (midnight UTC) or datetime with zone")
        ] = None,
        until: Annotated[
            str | None, Parameter(description="occurred_at before: a date (midnight UTC) or datetime with zone")
        ] = None,
        status: Annotated[SaleStatus | None, Parameter(description="Only sales with this status")] = None,
        limit: Annotated[int, Parameter(ge=1, le=500, description="Page size")] = 50,
        cursor: Annotated[str | None, Parameter(description="next_cursor of the previous page")] = None,
    ) -> SaleList:
        start, end = _instant(since, "since"), _instant(until, "until")
        stmt = select(Sale).where(location_filter(caller.principal, col(Sale.location_id)))
        if client_id is not None:
            stmt = stmt.where(col(Sale.client_id) == client_id)
        if location_id is not None:
            stmt = stmt.where(col(Sale.location_id) == location_id)
        if start is not None:
            stmt = stmt.where(col(Sale.occurred_at) >= start)
        if end is not None:
            stmt = stmt.where(col(Sale.occurred_at) < end)
        if status is not None:
            stmt = stmt.where(col(Sale.status) == status)
        if cursor:
            try:
                at_text, id_text = decode_cursor(cursor, 2)
                at, last_id = datetime.fromisoformat(at_text), int(id_text)
                if at.tzinfo is None:
                    raise ValueError("naive cursor time")
            except ValueError:
                raise ValidationException(
                    detail="invalid cursor", extra=[{"key": "cursor", "message": "invalid cursor", "source": "query"}]
                ) from None
            stmt = stmt.where(
                or_(col(Sale.occurred_at) < at, and_(col(Sale.occurred_at) == at, col(Sale.id) < last_id))
            )
        stmt = stmt.order_by(col(Sale.occurred_at).desc(), col(Sale.id).desc()).limit(limit + 1)
        async with state.clasp.db.session() as session:
            sales = list((await session.exec(stmt)).all())
            more = len(sales) > limit
            sales = sales[:limit]
            lines = await lines_for(session, [s.id for s in sales])  # type: ignore[misc]
        last = sales[-1] if sales else None
        return SaleList(
            items=[sale_out(SaleView(s, lines[s.id])) for s in sales],  # type: ignore[index]
            next_cursor=encode_cursor(last.occurred_at.isoformat(), last.id) if more and last else None,
        )
