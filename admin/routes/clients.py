"""Clients: the book the signed-in person may see (scoped by core.access), searched and paged.
One client's page and its edit form live in ``admin.routes.client_profile``."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Response
from sqlalchemy import exists, func, or_
from sqlmodel import select

from admin.render import render, runtime_of
from core.access import Principal, client_filter
from core.models import Associate, Client, ClientContact, Location

log = logging.getLogger("clasp.admin")
PAGE_SIZE = 50


def _search(q: str) -> Any:
    like = f"%{q.lower()}%"
    full_name = func.lower(Client.first_name + " " + Client.last_name)
    contact = exists().where(ClientContact.client_id == Client.id, func.lower(ClientContact.value).like(like))
    return or_(full_name.like(like), contact)


@get("/clients", name="admin:clients")
async def clients_page(
    request: Request[Any, Any, Any], q: FromQuery[str] = "", page: FromQuery[int] = 1
) -> Response[Any]:
    principal: Principal = request.state.principal
    page = max(1, page)
    where = [client_filter(principal), Client.merged_into_id.is_(None)]  # type: ignore[union-attr]
    if q.strip():
        where.append(_search(q.strip()))
    async with runtime_of(request).db.session() as session:
        total = (await session.exec(select(func.count()).select_from(Client).where(*where))).one()
        stmt = (
            select(Client, Location.name, Associate.first_name, Associate.last_name)
            .outerjoin(Location, Location.id == Client.home_location_id)  # type: ignore[arg-type]
            .outerjoin(Associate, Associate.id == Client.owner_associate_id)  # type: ignore[arg-type]
            .where(*where)
            .order_by(Client.last_name, Client.first_name, Client.id)
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
        rows = (await session.exec(stmt)).all()
    pages = max(1, -(-total // PAGE_SIZE))
    return render(request, "clients/list.html", {"rows": rows, "q": q, "page": page, "pages": pages, "total": total})



route_handlers = [clients_page]
