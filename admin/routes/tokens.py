"""API tokens: everyone creates and revokes their own; owners see and revoke everyone's.

A token acts with its user's role and scope (``core.api.auth``). Its value is in the one response
that creates it (not stored in the session, not cacheable) and never shown again: only a hash is kept.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response
from sqlmodel.ext.asyncio.session import AsyncSession

from admin.render import flash, redirect, render, runtime_of
from core.access import Principal
from core.models import ApiToken, User
from core.tokens import TokenError, TokenInfo, create_token, list_tokens, revoke_token

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _tokens(session: AsyncSession, principal: Principal) -> list[TokenInfo]:
    return await list_tokens(session, user_id=None if principal.is_owner else principal.user_id)


async def _page(request: Request[Any, Any, Any], **extra: Any) -> dict[str, Any]:
    async with runtime_of(request).db.session() as session:
        tokens = await _tokens(session, request.state.principal)
    return {"tokens": tokens, "name": "", "error": None, "created": None, **extra}


@get("/tokens", name="admin:tokens")
async def tokens_page(request: Request[Any, Any, Any]) -> Response[Any]:
    return render(request, "tokens.html", await _page(request))


@post("/tokens")
async def create(request: Request[Any, Any, Any]) -> Response[Any]:
    user: User = request.state.user
    form = await request.form()
    name = str(form.get("name") or "").strip()
    try:
        async with runtime_of(request).db.transaction() as session:
            # core.tokens writes the audit row ("api_token.create") with the token's prefix, never its value.
            row, plaintext = await create_token(
                session,
                user_id=user.id,
                name=name,
                actor=user.email,
                actor_user_id=user.id,  # type: ignore[arg-type]
            )
    except TokenError as exc:
        return render(request, "tokens.html", await _page(request, name=name, error=str(exc)), status_code=422)
    # Rendered in this response only: a reload or the back button cannot bring the value back.
    context = await _page(request, created={"id": row.id, "name": row.name, "value": plaintext})
    return render(request, "tokens.html", context, headers=NO_STORE)


@post("/tokens/{token_id:int}/revoke")
async def revoke(request: Request[Any, Any, Any], token_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    user: User = request.state.user
    async with runtime_of(request).db.transaction() as session:
        row = await session.get(ApiToken, token_id)
        # Someone else's token is "not found" to anyone but an owner.
        if row is None or (row.user_id != user.id and not principal.is_owner):
            raise NotFoundException("no such API token")
        was_live = row.revoked_at is None
        # core.tokens writes the audit row ("api_token.revoke").
        await revoke_token(session, token_id, actor=user.email, actor_user_id=user.id)
    message = f"Token “{row.name}” revoked: it stops working now." if was_live else "That token was revoked already."
    flash(request, message, "ok" if was_live else "info")
    return redirect(request, "/admin/tokens")


route_handlers = [tokens_page, create, revoke]
