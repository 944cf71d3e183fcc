"""Clients: the book the signed-in person may see (scoped by core.access), and one client's page."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Response
from markupsafe import Markup
from sqlalchemy import exists, func, or_
from sqlmodel import select

from admin.render import render, runtime_of
from core.access import Principal, client_filter, location_filter
from core.models import Associate, Client, ClientContact, Location, Sale
from core.plugin import ClientPanel
from core.runtime import Runtime

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


async def _panel_html(panel: ClientPanel, **available: Any) -> Markup:
    """Call a plugin's panel with the arguments it names; a broken panel must not break the page."""
    try:
        params = inspect.signature(panel.render).parameters
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = available if takes_all else {k: v for k, v in available.items() if k in params}
        html = panel.render(**kwargs)
        if inspect.isawaitable(html):
            html = await html
        return Markup(html) if isinstance(html, Markup) else Markup(str(html))
    except Exception:
        log.exception("client panel %s failed", panel.name)
        return Markup('<p class="muted">This panel could not be shown; the error was logged.</p>')


@get("/clients/{client_id:int}", name="admin:client")
async def client_page(request: Request[Any, Any, Any], client_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    rt: Runtime = runtime_of(request)
    async with rt.db.session() as session:
        stmt = select(Client).where(Client.id == client_id, client_filter(principal))  # type: ignore[arg-type]
        client = (await session.exec(stmt)).first()
        if client is None:
            # Same answer for "does not exist" and "not yours": ids of other stores' clients stay opaque.
            raise NotFoundException("no such client")
        contacts = (
            await session.exec(
                select(ClientContact)
                .where(ClientContact.client_id == client_id)
                .order_by(
                    ClientContact.kind,
                    ClientContact.is_primary.desc(),
                    ClientContact.id,  # type: ignore[attr-defined]
                )
            )
        ).all()
        home = await session.get(Location, client.home_location_id) if client.home_location_id else None
        owner = await session.get(Associate, client.owner_associate_id) if client.owner_associate_id else None
        sales = (
            await session.exec(
                select(Sale, Location.name)
                .join(Location, Location.id == Sale.location_id)  # type: ignore[arg-type]
                .where(Sale.client_id == client_id, location_filter(principal, Sale.location_id))
                .order_by(Sale.occurred_at.desc())  # type: ignore[attr-defined]
                .limit(20)
            )
        ).all()
    panels = [
        (p, await _panel_html(p, client=client, principal=principal, rt=rt, request=request))
        for p in rt.registry.client_panels
    ]
    context = {"client": client, "contacts": contacts, "home": home, "owner": owner, "sales": sales, "panels": panels}
    return render(request, "clients/detail.html", context)


route_handlers = [clients_page, client_page]
