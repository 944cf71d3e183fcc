"""The audit log, for owners: filter by action, newest first, paginated."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Response
from sqlalchemy import func
from sqlmodel import select

from admin.auth import owner_only
from admin.render import render, runtime_of
from core.models import AuditLog

PAGE_SIZE = 50


@get("/audit", guards=[owner_only], name="admin:audit")
async def audit_page(
    request: Request[Any, Any, Any], action: FromQuery[str] = "", page: FromQuery[int] = 1
) -> Response[Any]:
    page = max(1, page)
    where = [AuditLog.action == action] if action else []
    async with runtime_of(request).db.session() as session:
        actions = (await session.exec(select(AuditLog.action).distinct().order_by(AuditLog.action))).all()
        total = (await session.exec(select(func.count()).select_from(AuditLog).where(*where))).one()
        stmt = (
            select(AuditLog)
            .where(*where)
            .order_by(AuditLog.at.desc(), AuditLog.id.desc())  # type: ignore[attr-defined,union-attr]
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
        rows = (await session.exec(stmt)).all()
    pages = max(1, -(-total // PAGE_SIZE))
    context = {"rows": rows, "actions": actions, "action": action, "page": page, "pages": pages, "total": total}
    return render(request, "audit.html", context)


route_handlers = [audit_page]
