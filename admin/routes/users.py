"""Panel accounts, for owners: who can sign in, with which role and locations."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath
from litestar.response import Response
from sqlmodel import select

from admin.auth import owner_only
from admin.render import flash, redirect, render, runtime_of
from admin.routes.connectors import actor
from core.audit import record
from core.models import Associate, Location, User, UserLocation
from core.models.org import ROLES
from core.users import UserError, create_user


async def _page_context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    async with runtime_of(request).db.session() as session:
        users = (await session.exec(select(User).order_by(User.active.desc(), User.email))).all()  # type: ignore[attr-defined]
        links = (await session.exec(select(UserLocation.user_id, Location.name).join(Location))).all()
        locations = (await session.exec(select(Location).order_by(Location.name))).all()
        associates = (
            await session.exec(select(Associate).where(Associate.active).order_by(Associate.first_name))
        ).all()  # type: ignore[arg-type]
    where: dict[int, list[str]] = {}
    for user_id, name in links:
        where.setdefault(user_id, []).append(name)
    return {"users": users, "where": where, "locations": locations, "associates": associates, "roles": ROLES}


@get("/users", guards=[owner_only], name="admin:users")
async def users_page(request: Request[Any, Any, Any]) -> Response[Any]:
    return render(request, "users.html", {**await _page_context(request), "form": {}, "error": None})


@post("/users", guards=[owner_only])
async def add_user(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    values = {
        "email": str(form.get("email") or "").strip(),
        "name": str(form.get("name") or "").strip(),
        "role": str(form.get("role") or ""),
        "password": str(form.get("password") or ""),
    }
    location_ids = [int(v) for v in form.getall("location_ids", []) if str(v).isdigit()]
    raw_associate = str(form.get("associate_id") or "")
    associate_id = int(raw_associate) if raw_associate.isdigit() else None
    try:
        async with runtime_of(request).db.transaction() as session:
            user = await create_user(
                session,
                **values,
                location_ids=location_ids,
                associate_id=associate_id,  # type: ignore[arg-type]
            )
            await record(
                session,
                "user.create",
                target_type="user",
                target_id=user.id,
                details={"email": user.email, "role": user.role, "locations": location_ids},
                **actor(request),
            )
    except UserError as exc:
        shown = {**values, "password": "", "location_ids": location_ids, "associate_id": associate_id}
        context = {**await _page_context(request), "form": shown, "error": str(exc)}
        return render(request, "users.html", context, status_code=422)
    flash(request, f"{user.email} can now sign in as {user.role}.")
    return redirect(request, "/admin/users")


@post("/users/{user_id:int}/active", guards=[owner_only])
async def set_active(request: Request[Any, Any, Any], user_id: FromPath[int]) -> Response[Any]:
    form = await request.form()
    active = form.get("active") == "true"
    me: User = request.state.user
    if user_id == me.id and not active:
        raise ClientException("you cannot deactivate your own account")
    async with runtime_of(request).db.transaction() as session:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            raise NotFoundException("no such user")
        if user.active != active:
            user.active = active
            session.add(user)
            await record(
                session,
                "user.activate" if active else "user.deactivate",
                target_type="user",
                target_id=user_id,
                details={"email": user.email},
                **actor(request),
            )
    # A deactivated user's sessions stop working at their next request (the guard checks `active`).
    flash(request, f"{user.email} {'can sign in again' if active else 'can no longer sign in'}.")
    return redirect(request, "/admin/users")


route_handlers = [users_page, add_user, set_active]
