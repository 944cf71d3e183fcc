"""OAuth 2 for R-Series: the panel's authorize/exchange flow and access-token upkeep.

Lightspeed rotates refresh tokens: every refresh returns a new pair, and the old refresh token dies
once the new access token is first used (immediately, before 2026-01-15). So the new pair is saved
(``ctx.save_settings`` commits at once, in its own transaction) *before* the new access token is
handed to anyone: a crash between the refresh and the save can then only lose a pair that was never
used, and the stored old refresh token still works. A provider that does not rotate (no
``refresh_token`` in the response) keeps the old one.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from core.plugin import ConnectorContext, OAuthFlow, PermanentError, TransientError, http_client, request_with_retries

TOKEN_PATH = "/auth/oauth/token"
AUTHORIZE_PATH = "/auth/oauth/authorize"
# Refresh a little before the provider's expiry so a request never leaves with a dying token.
EARLY_REFRESH = timedelta(seconds=60)


def _now() -> datetime:
    return datetime.now(UTC)


def refresh_by(expires_in: Any, now: datetime | None = None) -> datetime:
    """When to refresh a token that lives ``expires_in`` seconds: 60 s early, or 10% for short lives."""
    try:
        lifetime = max(1.0, float(expires_in))
    except (TypeError, ValueError):
        lifetime = 1800.0  # the shorter of the two documented lifetimes
    margin = min(EARLY_REFRESH.total_seconds(), lifetime * 0.1)
    return (now or _now()) + timedelta(seconds=lifetime - margin)


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token, unverified: used only as a hint (the ``acct`` claim)."""
    try:
        payload = token.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _secret(value: Any) -> str:
    if value is None:
        return ""
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def _token_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}"
    parts = [str(body.get(k)) for k in ("error", "error_description", "hint", "message") if body.get(k)]
    return ": ".join(parts) or f"HTTP {response.status_code}"


async def token_request(settings: Any, form: dict[str, str]) -> dict[str, Any]:
    """POST to the token endpoint (form-encoded, no ``scope``: the endpoint rejects it)."""
    body = {"client_id": settings.client_id, "client_secret": _secret(settings.client_secret), **form}
    if not body["client_secret"]:
        body.pop("client_secret")  # public (PKCE-only) clients omit it
    url = str(settings.auth_base_url).rstrip("/") + TOKEN_PATH
    async with http_client(timeout=30.0) as http:
        try:
            # Retrying is safe: since 2026-01-15 the old refresh token lives until the new access
            # token is first used, so a refresh whose answer got lost can be sent again.
            response = await request_with_retries(http, "POST", url, data=body, attempts=4)
        except httpx.HTTPError as exc:
            raise TransientError(f"could not reach the Lightspeed token endpoint: {exc}") from exc
    if response.status_code in (400, 401):
        raise PermanentError(f"Lightspeed refused the token request ({_token_error(response)}); "
                             "authorize the connector again")
    if response.status_code >= 300:
        raise TransientError(f"Lightspeed token endpoint answered {_token_error(response)}",
                             retry_after=60 if response.status_code == 429 else None)
    try:
        tokens = response.json()
    except ValueError:
        raise TransientError("Lightspeed token endpoint sent a body that is not JSON") from None
    if not isinstance(tokens, dict) or not tokens.get("access_token"):
        raise TransientError("Lightspeed token endpoint sent no access token")
    return tokens


def settings_from_tokens(tokens: dict[str, Any], *, old_refresh: str | None) -> dict[str, Any]:
    refresh = tokens.get("refresh_token") or old_refresh
    return {
        "access_token": str(tokens["access_token"]),
        "refresh_token": str(refresh) if refresh else None,
        "access_token_expires_at": refresh_by(tokens.get("expires_in")),
    }


class LightspeedOAuth(OAuthFlow):
    """Authorization-code grant with PKCE (S256), for the panel's one-click authorize."""

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx

    def authorize_url(self, *, state: str, redirect_uri: str, code_challenge: str) -> str:
        settings = self.ctx.settings
        if not settings.client_id:
            raise PermanentError("set the OAuth client id (from Lightspeed's API client registration) first")
        query = {
            "response_type": "code",
            "client_id": settings.client_id,
            "scope": settings.scope,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            # Lightspeed's examples rely on the URI registered with the client; sending it as well
            # is standard OAuth and lets one client serve several Clasp hosts that registered it.
            "redirect_uri": redirect_uri,
        }
        return str(settings.auth_base_url).rstrip("/") + AUTHORIZE_PATH + "?" + urlencode(query)

    async def exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        tokens = await token_request(
            self.ctx.settings,
            {"grant_type": "authorization_code", "code": code, "code_verifier": code_verifier},
        )
        out = settings_from_tokens(tokens, old_refresh=None)
        # The JWT's `acct` claim names the account without spending a request; when a token is not a
        # JWT the first sync discovers the account through Account.json instead.
        account = jwt_claims(out["access_token"]).get("acct")
        if account:
            out["account_id"] = str(account)
        elif self.ctx.settings.account_id:
            out["account_id"] = self.ctx.settings.account_id
        return out


# One refresh at a time per connector and event loop, so concurrent requests reuse the new token.
_LOCKS: dict[tuple[int, int], asyncio.Lock] = {}


class TokenManager:
    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx

    def _lock(self) -> asyncio.Lock:
        key = (id(asyncio.get_running_loop()), self.ctx.connector_id)
        lock = _LOCKS.get(key)
        if lock is None:
            if len(_LOCKS) > 256:
                _LOCKS.clear()
            lock = _LOCKS[key] = asyncio.Lock()
        return lock

    async def access_token(self) -> str:
        settings = self.ctx.settings
        token = _secret(settings.access_token)
        expires_at = settings.access_token_expires_at
        # A token set by hand (--set) has no known expiry: use it until a 401 says otherwise.
        if token and (expires_at is None or _now() < expires_at):
            return token
        return await self.refresh(stale=token or None)

    async def refresh(self, *, stale: str | None) -> str:
        async with self._lock():
            settings = self.ctx.settings
            current = _secret(settings.access_token)
            if current and current != stale and settings.access_token_expires_at and (
                _now() < settings.access_token_expires_at
            ):
                return current  # someone refreshed while we waited
            old_refresh = _secret(settings.refresh_token)
            if not old_refresh:
                raise PermanentError("the connector is not authorized with Lightspeed yet (no refresh token); "
                                     "use Authorize in the panel or set refresh_token")
            tokens = await token_request(settings, {"grant_type": "refresh_token", "refresh_token": old_refresh})
            updates = settings_from_tokens(tokens, old_refresh=old_refresh)
            # Durable before first use: see the module docstring.
            await self.ctx.save_settings(**updates)
            return updates["access_token"]
