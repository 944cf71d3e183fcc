"""Signing in and out."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromQuery
from litestar.response import Response

from admin.auth import SESSION_USER, authenticate, client_ip
from admin.render import flash, redirect, render, runtime_of, safe_next
from admin.sessions import rotate_session
from core.audit import record
from core.models import User, utcnow
from core.users import UserError, normalise_email

PUBLIC = {"public": True}


def _email(raw: str) -> str:
    try:
        return normalise_email(raw)
    except UserError:
        return raw.strip().lower()


@get("/sign-in", opt=PUBLIC, name="admin:sign-in")
async def sign_in_page(request: Request[Any, Any, Any], next: FromQuery[str | None] = None) -> Response[Any]:
    if isinstance(request.session.get(SESSION_USER), int):
        return redirect(request, safe_next(next))
    return render(request, "sign_in.html", {"next": safe_next(next), "email": ""})


@post("/sign-in", opt=PUBLIC)
async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    email = _email(str(form.get("email") or ""))[:100]
    password = str(form.get("password") or "")
    target = safe_next(str(form.get("next") or ""))
    ip = client_ip(request)
    rt = runtime_of(request)
    async with rt.db.transaction() as session:
        result = await authenticate(session, email=email, password=password, ip=ip)
        user: User | None = result.user
        if result.locked:
            await record(session, "auth.sign_in_locked", actor=email, target_type="email", target_id=email, ip=ip)
        elif user is None:
            await record(session, "auth.sign_in_failed", actor=email, target_type="email", target_id=email, ip=ip)
        else:
            user.last_login_at = utcnow()
            session.add(user)
            await record(
                session,
                "auth.sign_in",
                actor=user.email,
                actor_user_id=user.id,
                target_type="email",
                target_id=email,
                ip=ip,
            )
    if user is None:
        error = (
            "Too many failed attempts. Wait 15 minutes and try again, or ask an owner to check your account."
            if result.locked
            else "That email and password do not match an active account."
        )
        status = 429 if result.locked else 401
        return render(request, "sign_in.html", {"next": target, "email": email, "error": error}, status_code=status)
    rotate_session(request)
    request.set_session({SESSION_USER: user.id})
    return redirect(request, target)


@post("/sign-out")
async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
    user: User = request.state.user
    async with runtime_of(request).db.transaction() as session:
        await record(
            session,
            "auth.sign_out",
            actor=user.email,
            actor_user_id=user.id,
            target_type="email",
            target_id=user.email[:100],
            ip=client_ip(request),
        )
    rotate_session(request)
    request.set_session({})
    flash(request, "You are signed out.", "info")
    return redirect(request, "/admin/sign-in")


route_handlers = [sign_in_page, sign_in, sign_out]
