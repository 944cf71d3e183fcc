"""Locations the signed-in person works at, and each store's outreach mode (own book / store book)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath
from litestar.response import Response
from sqlalchemy import func
from sqlmodel import select

from admin.auth import owner_or_manager
from admin.render import flash, redirect, render, runtime_of
from admin.routes.connectors import actor
from core.access import Principal, location_filter
from core.audit import record
from core.models import Client, Location, utcnow
from core.models.org import OUTREACH_MODES


@get("/locations", name="admin:locations")
async def locations_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal: Principal = request.state.principal
    async with runtime_of(request).db.session() as session:
        clients = (
            select(func.count())
            .select_from(Client)
            .where(Client.home_location_id == Location.id, Client.merged_into_id.is_(None))  # type: ignore[union-attr]
            .scalar_subquery()
        )
        stmt = select(Location, clients).where(location_filter(principal, Location.id)).order_by(Location.name)
        rows = (await session.exec(stmt)).all()
    return render(request, "locations.html", {"rows": rows, "modes": OUTREACH_MODES})


@post("/locations/{location_id:int}/outreach-mode", guards=[owner_or_manager])
async def set_outreach_mode(request: Request[Any, Any, Any], location_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    form = await request.form()
    mode = str(form.get("outreach_mode") or "")
    if mode not in OUTREACH_MODES:
        raise ClientException(f"outreach mode must be one of {', '.join(OUTREACH_MODES)}")
    async with runtime_of(request).db.transaction() as session:
        stmt = select(Location).where(Location.id == location_id, location_filter(principal, Location.id))
        location = (await session.exec(stmt.with_for_update())).first()
        if location is None:
            raise NotFoundException("no such location")
        if location.outreach_mode != mode:
            before = location.outreach_mode
            location.outreach_mode, location.updated_at = mode, utcnow()
            session.add(location)
            await record(
                session,
                "location.outreach_mode",
                target_type="location",
                target_id=location_id,
                details={"from": before, "to": mode},
                **actor(request),
            )
    flash(
        request,
        f"{location.name}: associates now see {'the whole store book' if mode == 'store' else 'their own clients'}.",
    )
    return redirect(request, "/admin/locations")


route_handlers = [locations_page, set_outreach_mode]
