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
from core.models import Location, User, UserLocation
from core.models.org import ROLES
from core.users import (
    UNLINKED_WARNING,
    AssociateOption,
    UserError,
    associate_options,
    create_user,
    edit_user,
    location_ids_of,
    user_warnings,
)


async def _page_context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    async with runtime_of(request).db.session() as session:
        users = (await session.exec(select(User).order_by(User.active.desc(), User.email))).all()  # type: ignore[attr-defined]
        links = (await session.exec(select(UserLocation.user_id, Location.name).join(Location))).all()
        locations = (await session.exec(select(Location).order_by(Location.name))).all()
        options = await associate_options(session)
    where: dict[int, list[str]] = {}
    for user_id, name in links:
        where.setdefault(user_id, []).append(name)
    by_id = {o.id: o for o in options}
    # Pickable: active associates, plus any inactive one a user is still linked to (so the form keeps it).
    linked_ids = {u.associate_id for u in users if u.associate_id is not None}
    groups: dict[str, list[AssociateOption]] = {}
    for option in options:
        if option.active or option.id in linked_ids:
            groups.setdefault(option.location_name or "No location", []).append(option)
    return {
        "users": users,
        "where": where,
        "locations": locations,
        "associate_groups": groups,
        "associate_of": {u.id: by_id.get(u.associate_id or 0) for u in users},
        "unlinked_warning": UNLINKED_WARNING,
        "roles": ROLES,
        "editing": None,
    }


def _form_ids(form: Any, key: str) -> list[int]:
    return [int(v) for v in form.getall(key, []) if str(v).isdigit()]


def _form_id(form: Any, key: str) -> int | None:
    raw = str(form.get(key) or "")
    return int(raw) if raw.isdigit() else None


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
    location_ids = _form_ids(form, "location_ids")
    associate_id = _form_id(form, "associate_id")
    try:
        async with runtime_of(request).db.transaction() as session:
            user = await create_user(
                session,
                **values,
                location_ids=location_ids,
                associate_id=associate_id,
                audit_actor=actor(request),
            )
            assert user.id is not None
            warnings = await user_warnings(
                session,
                role=user.role,
                location_ids=await location_ids_of(session, user.id),
                associate_id=associate_id,
                user_id=user.id,
            )
    except UserError as exc:
        shown = {**values, "password": "", "location_ids": location_ids, "associate_id": associate_id}
        context = {**await _page_context(request), "form": shown, "error": str(exc)}
        return render(request, "users.html", context, status_code=422)
    flash(request, f"{user.email} can now sign in as {user.role}.")
    for warning in warnings:
        flash(request, f"{user.email}: {warning}.", "info")
    return redirect(request, "/admin/users")


async def _load(session: Any, user_id: int, *, lock: bool = False) -> User:
    user = await session.get(User, user_id, with_for_update=lock)
    if user is None:
        raise NotFoundException("no such user")
    return user


@get("/users/{user_id:int}/edit", guards=[owner_only], name="admin:user-edit")
async def edit_page(request: Request[Any, Any, Any], user_id: FromPath[int]) -> Response[Any]:
    async with runtime_of(request).db.session() as session:
        user = await _load(session, user_id)
        form = {
            "name": user.name,
            "role": user.role,
            "location_ids": await location_ids_of(session, user_id),
            "associate_id": user.associate_id,
        }
    context = {**await _page_context(request), "editing": user, "form": form, "error": None}
    return render(request, "users.html", context)


@post("/users/{user_id:int}", guards=[owner_only])
async def edit(request: Request[Any, Any, Any], user_id: FromPath[int]) -> Response[Any]:
    form = await request.form()
    me: User = request.state.user
    role = str(form.get("role") or "")
    values = {
        "name": str(form.get("name") or "").strip(),
        "role": role,
        "location_ids": _form_ids(form, "location_ids"),
        "associate_id": _form_id(form, "associate_id"),
    }
    try:
        async with runtime_of(request).db.transaction() as session:
            user = await _load(session, user_id, lock=True)
            if user_id == me.id and role != user.role:
                raise UserError("you cannot change your own role: ask another owner")
            result = await edit_user(
                session,
                user,
                audit_actor=actor(request),
                name=values["name"],
                role=role,
                location_ids=values["location_ids"],
                associate_id=values["associate_id"],
                unlink_associate=values["associate_id"] is None,
            )
    except UserError as exc:
        async with runtime_of(request).db.session() as session:
            editing = await _load(session, user_id)
        context = {**await _page_context(request), "editing": editing, "form": values, "error": str(exc)}
        return render(request, "users.html", context, status_code=422)
    changed = ", ".join(LABELS.get(key, key) for key in result.changes)
    flash(request, f"{user.email}: {changed} changed." if changed else f"Nothing to change for {user.email}.")
    for warning in result.warnings:
        flash(request, f"{user.email}: {warning}.", "info")
    return redirect(request, "/admin/users")


LABELS = {"location_ids": "locations", "associate_id": "associate link"}


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


route_handlers = [users_page, add_user, edit_page, edit, set_active]
