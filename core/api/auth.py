"""Bearer-token authentication for the API: a router guard, and the caller it leaves behind.

The guard runs before every API handler, so no endpoint can forget it. It resolves the token to its
user and that user's scope (``core.access``); handlers receive it as the ``caller`` dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from core.access import Principal, principal_for
from core.runtime import Runtime
from core.tokens import verify_token

REALM = "clasp"
SECURITY_SCHEME = "bearerAuth"
_STATE_KEY = "clasp_api_caller"


@dataclass(frozen=True)
class Caller:
    """Who is calling the API: the token, its user and the scope the user's role grants."""

    principal: Principal
    token_id: int
    user_id: int
    email: str

    @property
    def origin(self) -> str:
        """The change-feed origin of an edit made through this token."""
        return f"api:{self.token_id}"

    @property
    def actor(self) -> str:
        return self.email


try:
    from litestar.di import NamedDependency

    CallerDep: TypeAlias = NamedDependency[Caller]  # type: ignore[valid-type]
except ImportError:  # Litestar < 2.23 injects by parameter name without a marker
    CallerDep: TypeAlias = Caller  # type: ignore[no-redef,misc]


def _unauthorized(detail: str, *, error: str | None) -> NotAuthorizedException:
    # RFC 6750 §3: no error code when no credentials were sent, "invalid_token" when they were bad.
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}", error_description="{detail}"'
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": challenge})


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _unauthorized("the Authorization header must be 'Bearer <token>'", error="invalid_request")
    return token.strip() or None


async def require_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    token = bearer_token(connection)
    if token is None:
        raise _unauthorized("an API token is required: send 'Authorization: Bearer <token>'", error=None)
    rt: Runtime = connection.app.state.clasp
    async with rt.db.transaction() as session:
        found = await verify_token(session, token)
        if found is None:
            raise _unauthorized("the API token is invalid or has been revoked", error="invalid_token")
        row, user = found
        principal = await principal_for(session, user)
    connection.state[_STATE_KEY] = Caller(
        principal=principal,
        token_id=row.id,  # type: ignore[arg-type]
        user_id=user.id,  # type: ignore[arg-type]
        email=user.email,
    )


def owners_and_managers(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    caller: Caller = connection.state[_STATE_KEY]
    if caller.principal.role not in ("owner", "manager"):
        raise PermissionDeniedException(detail="only owners and managers may do this")


def provide_caller(request: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    return request.state[_STATE_KEY]  # type: ignore[no-any-return]
