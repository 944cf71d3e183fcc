"""Error pages in the panel's layout, and the sign-in redirect for expired sessions.

Handlers are app-wide (a 404 for an unknown URL or a CSRF failure happens before any route), so they
answer only for panel paths and leave the JSON API's errors exactly as Litestar makes them.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Request
from litestar.exceptions import HTTPException
from litestar.exceptions.responses import create_exception_response
from litestar.response import Redirect, Response

from admin.auth import SignInRequired
from admin.render import client_redirect, is_htmx, render, safe_next

log = logging.getLogger("clasp.admin")

SIGN_IN = "/admin/sign-in"
TITLES = {
    400: "That request did not make sense",
    403: "You do not have access to this",
    404: "Nothing here",
    405: "That is not allowed here",
    500: "Something went wrong on our side",
}


def is_panel_path(path: str) -> bool:
    return path == "/" or path == "/admin" or path.startswith("/admin/")


def sign_in_url(request: Request[Any, Any, Any]) -> str:
    if is_htmx(request):
        # The page the person was looking at, not the fragment htmx asked for.
        current = urlsplit(request.headers.get("hx-current-url", ""))
        here = current.path + (f"?{current.query}" if current.query else "")
    else:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = safe_next(here, default="")
    return SIGN_IN + (f"?next={quote(target, safe='/')}" if target and target != SIGN_IN else "")


def handle_sign_in_required(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    url = sign_in_url(request)
    if is_htmx(request):
        return client_redirect(url)
    return Redirect(path=url, status_code=302)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, SignInRequired) and is_panel_path(request.url.path):
        return handle_sign_in_required(request, exc)
    if not is_panel_path(request.url.path):
        if not isinstance(exc, HTTPException):
            log.exception("unhandled error on %s %s", request.method, request.url.path)
        return create_exception_response(request, exc)
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status >= 500:
        log.exception("panel error on %s %s", request.method, request.url.path, exc_info=exc)
        detail = "The error was logged. Try again, and tell your administrator if it keeps happening."
    else:
        detail = exc.detail if isinstance(exc, HTTPException) else ""
    if "CSRF" in detail:
        detail = "This form has expired. Reload the page and try again."
    headers = {"HX-Reswap": "none"} if is_htmx(request) else {}
    return render(
        request,
        "error.html",
        {"status": status, "title": TITLES.get(status, "Something went wrong"), "detail": detail},
        status_code=status,
        headers=headers,
    )
