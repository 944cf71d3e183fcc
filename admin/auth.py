"""Who is signed in: session contents, the sign-in guard, role guards and sign-in throttling."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal, principal_for
from core.models import AuditLog, User, utcnow
from core.runtime import Runtime
from core.users import hash_password, needs_rehash, verify_password

SESSION_USER = "uid"
# A failed sign-in costs the attacker one try of five per account per window; shops share one public
# IP behind NAT, so the per-address limit is looser than the per-account one.
WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_IP = 20


class SignInRequired(NotAuthorizedException):
    """No valid session: plain requests get a 302 to the sign-in page, htmx ones a client redirect."""


def runtime(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    return connection.app.state.clasp


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    client = connection.scope.get("client")
    return client[0] if client else None


async def require_user(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Router guard: load the signed-in user and their scope into ``connection.state``."""
    if handler.opt.get("public"):
        return
    user_id = connection.session.get(SESSION_USER) if "session" in connection.scope else None
    if not isinstance(user_id, int):
        raise SignInRequired("sign in to continue")
    async with runtime(connection).db.session() as session:
        user = await session.get(User, user_id)
        if user is None or not user.active:
            connection.clear_session()
            raise SignInRequired("your account is no longer active")
        connection.state.user = user
        connection.state.principal = await principal_for(session, user)


def require_role(*roles: str) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """Handler guard: only these roles may use the route (scoping still applies inside it)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal: Principal | None = connection.state.get("principal")
        if principal is None:
            raise SignInRequired("sign in to continue")
        if principal.role not in roles:
            raise PermissionDeniedException("your role does not allow this page")

    return guard


owner_only = require_role("owner")
owner_or_manager = require_role("owner", "manager")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verifying against this keeps an unknown email as slow as a wrong password (no account probing).
    return hash_password(secrets.token_hex(16))


@dataclass
class SignInResult:
    user: User | None
    locked: bool = False


async def recent_failures(session: AsyncSession, *, email: str, ip: str | None) -> tuple[int, int]:
    since = utcnow() - WINDOW
    base = (
        select(func.count())
        .select_from(AuditLog)
        .where(
            AuditLog.action == "auth.sign_in_failed",
            AuditLog.at >= since,  # type: ignore[arg-type,operator]
        )
    )
    by_email = (await session.exec(base.where(AuditLog.target_id == email))).one()
    by_ip = (await session.exec(base.where(AuditLog.ip == ip))).one() if ip else 0
    return int(by_email), int(by_ip)


async def authenticate(session: AsyncSession, *, email: str, password: str, ip: str | None) -> SignInResult:
    """Check a sign-in attempt. Throttled attempts are refused before the password is even checked."""
    failures_email, failures_ip = await recent_failures(session, email=email, ip=ip)
    if failures_email >= MAX_FAILURES_PER_EMAIL or failures_ip >= MAX_FAILURES_PER_IP:
        return SignInResult(user=None, locked=True)
    user = (await session.exec(select(User).where(User.email == email))).first()
    if user is None or not user.active:
        verify_password(_dummy_hash(), password)
        return SignInResult(user=None)
    if not verify_password(user.password_hash, password):
        return SignInResult(user=None)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return SignInResult(user=user)
