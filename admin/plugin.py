"""The admin panel: a Litestar init plugin registered through ``clasp_register_web``.

It adds the panel's routes under /admin (and / → /admin), Jinja2 templates, the pinned static files,
database-backed sessions, CSRF protection, panel error pages, and the pages, nav items and client
panels other plugins contribute through ``clasp_register_admin``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar import Router, get
from litestar.config.csrf import CSRFConfig
from litestar.plugins import InitPluginProtocol
from litestar.plugins.htmx import HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from admin import render as filters
from admin.auth import require_user
from admin.errors import handle_exception
from admin.routes import (
    account,
    audit,
    automations,
    client_profile,
    clients,
    connectors,
    consent,
    conversations,
    dashboard,
    errors,
    identity,
    locations,
    oauth,
    reports,
    sales,
    today,
    tokens,
    users,
)
from admin.sessions import DatabaseSessionConfig, DatabaseStore
from core.plugin import hookimpl

if TYPE_CHECKING:
    from litestar.config.app import AppConfig

    from core.runtime import Runtime

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
SESSION_STORE = "clasp_admin_sessions"
SESSION_MAX_AGE = 12 * 3600  # a long shift on the floor; renewed while in use
# Bearer-token API calls and provider webhooks authenticate themselves; they carry no panel cookie.
CSRF_EXEMPT = ["^/api/", "^/webhooks/"]


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect(path="/admin", status_code=302)


def _engine_callback(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.filters.update(
        ago=filters.ago, duration=filters.duration, utc=filters.utc, number=filters.number, money=filters.money
    )
    env.globals["static"] = lambda name: f"/admin/static/{name}"


class AdminPanel(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        rt: Runtime = app_config.state["clasp"]
        settings = rt.settings
        session_config = DatabaseSessionConfig(
            store=SESSION_STORE,
            key="clasp_session",
            path="/",
            max_age=SESSION_MAX_AGE,
            renew_on_access=True,
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
        )
        app_config.stores = _with_store(app_config.stores, SESSION_STORE, DatabaseStore(rt.db))
        template_dirs: list[Path | str] = [TEMPLATES]
        plugin_handlers: list[Any] = []
        for page in rt.registry.admin_pages:
            template_dirs.extend(page.template_dirs)
            plugin_handlers.extend(page.route_handlers)
        panel = Router(
            path="/admin",
            route_handlers=[
                *account.route_handlers,
                *dashboard.route_handlers,
                *today.route_handlers,
                *automations.route_handlers,
                *connectors.route_handlers,
                *oauth.route_handlers,
                *clients.route_handlers,
                *client_profile.route_handlers,
                *consent.route_handlers,
                *locations.route_handlers,
                *audit.route_handlers,
                *users.route_handlers,
                *sales.route_handlers,
                *reports.route_handlers,
                *conversations.route_handlers,
                *errors.route_handlers,
                *identity.route_handlers,
                *tokens.route_handlers,
                *plugin_handlers,
            ],
            guards=[require_user],
            middleware=[session_config.middleware],
            request_class=HTMXRequest,
            include_in_schema=False,
        )
        static = create_static_files_router(
            path="/admin/static", directories=[STATIC], include_in_schema=False, cache_control=None, name="admin-static"
        )
        # Uploaded MMS pictures are served from the site root so the messaging provider can fetch them.
        app_config.route_handlers.extend([root, panel, static, *conversations.media_handlers])
        app_config.template_config = TemplateConfig(
            directory=template_dirs, engine=JinjaTemplateEngine, engine_callback=_engine_callback
        )
        app_config.csrf_config = CSRFConfig(
            secret=rt.secret_key,
            cookie_name="clasp_csrf",
            cookie_secure=settings.secure_cookies,
            cookie_samesite="lax",
            header_name="x-csrftoken",
            exclude=CSRF_EXEMPT,
        )
        app_config.exception_handlers = {**app_config.exception_handlers, Exception: handle_exception}
        return app_config


def _with_store(stores: Any, name: str, store: Any) -> Any:
    from litestar.stores.registry import StoreRegistry

    if stores is None:
        return {name: store}
    if isinstance(stores, StoreRegistry):
        stores.register(name, store)
        return stores
    return {**stores, name: store}


@hookimpl
def clasp_register_web(register):  # type: ignore[no-untyped-def]
    register(AdminPanel())
