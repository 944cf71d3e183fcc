"""The JSON API under /api/v1 (documented in the OpenAPI schema at /schema).

Every request carries ``Authorization: Bearer <token>`` (see ``core.tokens``); the router's guard
resolves it to the token's user and scope before any handler runs.
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.openapi.spec import Components, SecurityScheme

from core.api.auth import SECURITY_SCHEME, provide_caller, require_token
from core.api.clients import ClientController
from core.api.sales import SalesController
from core.outreach.api import MessagesController

api_router = Router(
    path="/api/v1",
    route_handlers=[ClientController, SalesController, MessagesController],
    guards=[require_token],
    dependencies={"caller": Provide(provide_caller, sync_to_thread=False)},
    security=[{SECURITY_SCHEME: []}],
    tags=["api"],
)


def openapi_components() -> Components:
    """The security scheme the API's operations refer to, for the app's OpenAPIConfig(components=...)."""
    return Components(
        security_schemes={
            SECURITY_SCHEME: SecurityScheme(
                type="http",
                scheme="bearer",
                description="An API token (`clasp token create --user EMAIL --name NAME`). It acts with its "
                "user's role and locations.",
            )
        }
    )


__all__ = ["api_router", "openapi_components"]
