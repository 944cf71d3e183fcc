"""Rendering helpers shared by the panel's routes: page context, flash messages, redirects."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from litestar import Request
from litestar.plugins.htmx import ClientRedirect, HTMXTemplate
from litestar.response import Redirect, Response

from core.models import utcnow
from core.plugin import NavItem
from core.runtime import Runtime

FLASH_KEY = "_flashes"
FLASH_KINDS = ("ok", "info", "error")

BUILTIN_NAV = (
    NavItem(label="Today", href="/admin/today", order=5),
    NavItem(label="Dashboard", href="/admin", order=10),
    NavItem(label="Clients", href="/admin/clients", order=20),
    NavItem(label="Sales", href="/admin/sales", order=25),
    NavItem(label="Inbox", href="/admin/inbox", order=27),
    NavItem(label="Reports", href="/admin/reports", order=28),
    NavItem(label="Locations", href="/admin/locations", order=30),
    NavItem(label="Automations", href="/admin/automations", roles=frozenset({"owner", "manager"}), order=45),
    NavItem(label="Errors", href="/admin/errors", roles=frozenset({"owner", "manager"}), order=50),
    NavItem(label="Duplicates", href="/admin/duplicates", roles=frozenset({"owner", "manager"}), order=60),
    NavItem(label="API tokens", href="/admin/tokens", order=70),
    NavItem(label="Connectors", href="/admin/connectors", roles=frozenset({"owner", "manager"}), order=40),
    NavItem(label="Users", href="/admin/users", roles=frozenset({"owner"}), order=80),
    NavItem(label="Audit", href="/admin/audit", roles=frozenset({"owner"}), order=90),
)


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.clasp


def flash(request: Request[Any, Any, Any], message: str, kind: str = "ok") -> None:
    """Queue a message for the next full page this session renders."""
    assert kind in FLASH_KINDS, kind
    flashes = list(request.session.get(FLASH_KEY, []))
    flashes.append({"kind": kind, "message": message})
    request.session[FLASH_KEY] = flashes[-5:]


def pop_flashes(request: Request[Any, Any, Any]) -> list[dict[str, str]]:
    if "session" not in request.scope or FLASH_KEY not in request.session:
        return []
    return list(request.session.pop(FLASH_KEY))


def nav_for(request: Request[Any, Any, Any]) -> list[NavItem]:
    principal = request.state.get("principal")
    if principal is None:
        return []
    items = [*BUILTIN_NAV, *runtime_of(request).registry.nav_items]
    return sorted((n for n in items if principal.role in n.roles), key=lambda n: (n.order, n.label))


def is_current(request: Request[Any, Any, Any], href: str) -> bool:
    path = request.url.path.rstrip("/") or "/"
    return path == href if href == "/admin" else path == href or path.startswith(href + "/")


def render(
    request: Request[Any, Any, Any],
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    fragment: bool = False,
    **kwargs: Any,
) -> HTMXTemplate:
    """Render a panel template; full pages get the nav, the signed-in user and pending flashes."""
    ctx: dict[str, Any] = {
        "user": request.state.get("user"),
        "principal": request.state.get("principal"),
        **(context or {}),
    }
    if not fragment:
        ctx["nav"] = nav_for(request)
        ctx["flashes"] = pop_flashes(request)
        ctx["is_current"] = lambda href: is_current(request, href)
    return HTMXTemplate(template_name=template, context=ctx, status_code=status_code, **kwargs)


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def redirect(request: Request[Any, Any, Any], url: str) -> Response[Any]:
    """Go to ``url``: a 303 for a plain request, a client-side redirect for htmx (no fragment swap)."""
    if is_htmx(request):
        return client_redirect(url)
    return Redirect(path=url, status_code=303)


def client_redirect(url: str) -> ClientRedirect:
    response = ClientRedirect(redirect_to=url)
    # Pinned: a POST handler's default 201 would otherwise apply; htmx wants a plain 200.
    response.status_code = 200
    return response


def safe_next(value: str | None, default: str = "/admin") -> str:
    """Only same-site panel paths are valid after sign-in (no open redirect)."""
    if value and value.startswith("/admin") and not value.startswith("//") and "\\" not in value:
        return value
    return default


# ------------------------------------------------------------------------------------- template filters


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    return f"{duration((now or utcnow()) - value)} ago"


def duration(delta: timedelta | float | None) -> str:
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def number(value: int | None) -> str:
    return f"{value or 0:,}"


_EXPONENTS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3}


def money(minor: int | None, currency: str = "USD") -> str:
    exponent = _EXPONENTS.get(currency.upper(), 2)
    amount = (minor or 0) / 10**exponent
    return f"{amount:,.{exponent}f} {currency.upper()}"
