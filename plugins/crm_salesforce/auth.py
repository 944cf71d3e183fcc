"""OAuth 2.0 for a headless connector: the JWT bearer flow and the refresh-token flow.

Both post a form to ``{login_url}/services/oauth2/token`` and answer ``access_token`` and
``instance_url``; data calls go to the instance URL, never to the login host. The JWT flow has no
refresh token (a new assertion is signed whenever a session is needed). With refresh-token
rotation on, Salesforce answers a new ``refresh_token`` and invalidates the old one, so it is saved
at once (``ctx.save_settings`` commits in its own transaction).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from core.plugin import ConnectorContext, PermanentError, TransientError, request_with_retries

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Salesforce accepts about three minutes of clock skew; the assertion only bounds the token request.
ASSERTION_SECONDS = 180


@dataclass
class Session:
    access_token: str
    instance_url: str


def jwt_assertion(client_id: str, username: str, audience: str, private_key_pem: str) -> str:
    claims = {"iss": client_id, "sub": username, "aud": audience, "exp": int(time.time()) + ASSERTION_SECONDS}
    return jwt.encode(claims, private_key_pem, algorithm="RS256")


def _audience(login_url: str) -> str:
    # The documented audiences are the login hosts themselves (login./test.salesforce.com); a My Domain
    # URL is accepted by Salesforce as the audience too [unverified], so the login URL is used as is.
    return login_url.rstrip("/")


async def authenticate(ctx: ConnectorContext, http: httpx.AsyncClient) -> Session:
    settings = ctx.settings
    url = f"{settings.login_url.rstrip('/')}/services/oauth2/token"
    if settings.auth_mode == "jwt":
        if not (settings.client_id and settings.username and settings.private_key):
            raise PermanentError("JWT bearer authentication needs client_id, username and private_key")
        try:
            assertion = jwt_assertion(
                settings.client_id, settings.username, _audience(settings.login_url),
                settings.private_key.get_secret_value(),
            )
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise PermanentError(f"the private key cannot sign a JWT: {exc}") from None
        form: dict[str, str] = {"grant_type": JWT_GRANT, "assertion": assertion}
    else:
        if not (settings.client_id and settings.client_secret and settings.refresh_token):
            raise PermanentError("refresh-token authentication needs client_id, client_secret and refresh_token")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": settings.refresh_token.get_secret_value(),
            "client_id": settings.client_id,
            "client_secret": settings.client_secret.get_secret_value(),
        }
    try:
        response = await request_with_retries(http, "POST", url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TransientError(f"cannot reach the Salesforce login host {settings.login_url}: {exc}") from None
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 500:
        raise TransientError(f"Salesforce login answered HTTP {response.status_code}")
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        error = body.get("error", "") if isinstance(body, dict) else ""
        detail = body.get("error_description", "") if isinstance(body, dict) else ""
        raise PermanentError(
            f"Salesforce refused to authenticate ({response.status_code} {error}: {detail or response.text[:200]})"
        )
    if settings.auth_mode == "refresh_token" and body.get("refresh_token"):
        current = settings.refresh_token.get_secret_value() if settings.refresh_token else None
        if body["refresh_token"] != current:
            await ctx.save_settings(refresh_token=body["refresh_token"])
    return Session(access_token=body["access_token"], instance_url=str(body.get("instance_url") or "").rstrip("/"))
