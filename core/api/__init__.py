"""The JSON API under /api/v1 (documented in the OpenAPI schema at /schema)."""

from __future__ import annotations

from litestar import Router

api_router = Router(path="/api/v1", route_handlers=[], tags=["api"])
