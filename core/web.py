"""The Litestar application factory: health, OpenAPI, and whatever plugins add (the admin panel)."""

from __future__ import annotations

import time
from typing import Any

from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.response import Response
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import text

from core import __version__
from core.runtime import Runtime


async def check_database(rt: Runtime) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with rt.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # a health check reports, it does not raise
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "backend": rt.db.dialect, "ms": round((time.perf_counter() - started) * 1000, 1)}


async def check_redis(rt: Runtime) -> dict[str, Any]:
    from core.redis import describe

    started = time.perf_counter()
    if rt.redis is None:
        return {"ok": False, "error": "not connected", "server": describe(rt.settings)}
    try:
        await rt.redis.ping()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "server": describe(rt.settings)}
    return {
        "ok": True,
        "server": describe(rt.settings),
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


@get("/healthz", tags=["system"], summary="Database and Redis health")
async def healthz(state: State) -> Response[dict[str, Any]]:
    rt: Runtime = state.clasp
    database, redis = await check_database(rt), await check_redis(rt)
    ok = database["ok"] and redis["ok"]
    body = {"ok": ok, "version": __version__, "database": database, "redis": redis}
    return Response(body, status_code=HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE)


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.clasp


def create_app(rt: Runtime, *, route_handlers: list[Any] | None = None, connect_redis: bool = True) -> Litestar:
    """Build the web app around a runtime. The caller owns the runtime's lifetime."""

    async def _connect(app: Litestar) -> None:
        if connect_redis and rt.redis is None:
            from arq import create_pool

            from core.redis import redis_settings

            rt.redis = await create_pool(redis_settings(rt.settings), default_queue_name=rt.settings.queue_name)
            app.state.owns_redis = True

    async def _disconnect(app: Litestar) -> None:
        if app.state.get("owns_redis") and rt.redis is not None:
            await rt.redis.aclose()
            rt.redis = None

    from core.api import api_router, openapi_components
    from core.outreach.webhooks import webhook_router

    handlers: list[Any] = [healthz, api_router, webhook_router, *(route_handlers or [])]
    return Litestar(
        route_handlers=handlers,
        plugins=list(rt.registry.web_plugins),
        state=State({"clasp": rt}),
        on_startup=[_connect],
        on_shutdown=[_disconnect],
        openapi_config=OpenAPIConfig(
            title="Clasp",
            version=__version__,
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=openapi_components(),
        ),
        debug=False,
    )
