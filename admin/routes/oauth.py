"""One-click OAuth: authorize a connector at its provider (authorization code + PKCE S256).

The state and the PKCE verifier live in the signed-in person's server-side session, so a callback
only completes an authorization this same session started (the state is the CSRF defence here).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import ClientException
from litestar.params import FromPath, FromQuery, Parameter
from litestar.response import Redirect, Response

from admin.auth import owner_only
from admin.render import flash, redirect, render, runtime_of
from admin.routes.connectors import actor, ctype_of, load_connector
from core.audit import record
from core.connectors import ConnectorError, context_for, update_settings
from core.models import utcnow
from core.plugin import PluginError

log = logging.getLogger("clasp.admin")
PENDING_KEY = "oauth_pending"
PENDING_MAX_AGE = 15 * 60
CALLBACK_PATH = "/admin/oauth/callback"


def code_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def callback_url(request: Request[Any, Any, Any]) -> str:
    return runtime_of(request).settings.base_url + CALLBACK_PATH


@post("/connectors/{connector_id:int}/authorize", guards=[owner_only])
async def authorize(request: Request[Any, Any, Any], connector_id: FromPath[int]) -> Response[Any]:
    rt = runtime_of(request)
    async with rt.db.session() as session:
        connector = await load_connector(session, connector_id)
    ctype = ctype_of(rt, connector)
    if "oauth" not in ctype.capabilities:
        raise ClientException(f"{ctype.title or ctype.name} connectors do not use OAuth")
    flow = ctype.oauth(context_for(rt, connector))
    if flow is None:
        flash(request, "Fill in the OAuth client settings first, then authorize.", "error")
        return redirect(request, f"/admin/connectors/{connector_id}")
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    now = time.time()
    pending = {k: v for k, v in dict(request.session.get(PENDING_KEY, {})).items() if now - v["at"] < PENDING_MAX_AGE}
    pending[state] = {"connector_id": connector_id, "verifier": verifier, "at": now}
    request.session[PENDING_KEY] = pending
    url = flow.authorize_url(state=state, redirect_uri=callback_url(request), code_challenge=code_challenge(verifier))
    async with rt.db.transaction() as session:
        await record(
            session, "connector.authorize_started", target_type="connector", target_id=connector_id, **actor(request)
        )
    # A full-page redirect to the provider even when htmx asked: the provider's page is not a fragment.
    return Redirect(path=url, status_code=303)


@get("/oauth/callback", guards=[owner_only], name="admin:oauth-callback")
async def oauth_callback(
    request: Request[Any, Any, Any],
    oauth_state: str | None = Parameter(query="state", default=None),
    code: FromQuery[str | None] = None,
    error: FromQuery[str | None] = None,
    error_description: FromQuery[str | None] = None,
) -> Response[Any]:
    rt = runtime_of(request)
    pending = dict(request.session.get(PENDING_KEY, {}))
    entry = pending.pop(oauth_state, None) if oauth_state else None
    request.session[PENDING_KEY] = pending
    if entry is None or time.time() - entry["at"] > PENDING_MAX_AGE:
        async with rt.db.transaction() as session:
            await record(
                session, "connector.authorize_failed", details={"reason": "unknown or expired state"}, **actor(request)
            )
        return render(
            request,
            "error.html",
            {
                "status": 400,
                "title": "This authorization cannot be completed",
                "detail": "The link is unknown or has expired. Start again from the connector page.",
            },
            status_code=400,
        )
    connector_id = int(entry["connector_id"])
    target = f"/admin/connectors/{connector_id}"
    async with rt.db.session() as session:
        connector = await load_connector(session, connector_id)
    if error or not code:
        message = error_description or error or "the provider sent no authorization code"
        await _failed(request, connector_id, message)
        flash(request, f"Authorization was not completed: {message}", "error")
        return redirect(request, target)
    flow = ctype_of(rt, connector).oauth(context_for(rt, connector))
    try:
        if flow is None:
            raise PluginError("the connector's OAuth settings are incomplete")
        values = await flow.exchange(code=code, redirect_uri=callback_url(request), code_verifier=entry["verifier"])
        async with rt.db.transaction() as session:
            connector = await load_connector(session, connector_id, lock=True)
            await update_settings(rt, session, connector, values)
            if connector.state in ("needs_auth", "error"):
                connector.state, connector.state_message = "new", None
            connector.updated_at = utcnow()
            session.add(connector)
            await record(
                session,
                "connector.authorized",
                target_type="connector",
                target_id=connector_id,
                details={"fields": sorted(values)},
                **actor(request),
            )
    except (PluginError, ConnectorError) as exc:
        await _failed(request, connector_id, str(exc))
        flash(request, f"Authorization failed: {exc}", "error")
        return redirect(request, target)
    except Exception as exc:
        log.exception("OAuth exchange for connector %s crashed", connector_id)
        await _failed(request, connector_id, f"{type(exc).__name__}: {exc}")
        flash(request, f"Authorization failed: {type(exc).__name__}: {exc}", "error")
        return redirect(request, target)
    flash(request, f"“{connector.name}” is authorized.")
    return redirect(request, target)


async def _failed(request: Request[Any, Any, Any], connector_id: int, message: str) -> None:
    async with runtime_of(request).db.transaction() as session:
        await record(
            session,
            "connector.authorize_failed",
            target_type="connector",
            target_id=connector_id,
            details={"reason": message[:500]},
            **actor(request),
        )


route_handlers = [authorize, oauth_callback]
