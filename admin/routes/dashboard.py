"""The dashboard: connector health, recent sync runs and alerts; the signed-in person's book."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Response
from sqlalchemy import func
from sqlmodel import select

from admin.health import health_all
from admin.render import render, runtime_of
from core.access import Principal, client_filter, location_filter
from core.models import Client, Connector, Location, SyncRun


@get("/", name="admin:dashboard")
async def dashboard(request: Request[Any, Any, Any]) -> Response[Any]:
    principal: Principal = request.state.principal
    rt = runtime_of(request)
    async with rt.db.session() as session:
        clients = (
            await session.exec(
                select(func.count())
                .select_from(Client)
                .where(client_filter(principal), Client.merged_into_id.is_(None))  # type: ignore[union-attr]
            )
        ).one()
        locations = (
            await session.exec(
                select(func.count()).select_from(Location).where(location_filter(principal, Location.id))
            )
        ).one()
        healths, runs = [], []
        if principal.role in ("owner", "manager"):
            healths = await health_all(rt, session)
            stmt = (
                select(SyncRun, Connector.name)
                .join(Connector, Connector.id == SyncRun.connector_id)  # type: ignore[arg-type]
                .order_by(SyncRun.started_at.desc())  # type: ignore[attr-defined]
                .limit(10)
            )
            runs = list((await session.exec(stmt)).all())
    alerts = [(h, a) for h in healths for a in h.alerts]
    return render(
        request,
        "dashboard.html",
        {"clients": clients, "locations": locations, "healths": healths, "runs": runs, "alerts": alerts},
    )


route_handlers = [dashboard]
