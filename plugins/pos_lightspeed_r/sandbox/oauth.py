"""The sandbox's authorization server: codes (60 s, single use, PKCE), JWT access tokens, rotation.

Rotation follows the 2026-01-15 rules: each refresh returns a new pair, and the refresh token it
replaced is revoked when the new access token is first used — so a refresh whose answer was lost
can be retried with the old token. At most ``refresh_per_minute`` refreshes per client a minute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

CODE_TTL = 60.0
INVALID_GRANT = "The provided authorization grant is invalid, expired or revoked"


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str, hint: str = "") -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.hint = status, error, description, hint

    def body(self) -> dict[str, str]:
        out = {"error": self.error, "error_description": self.description}
        if self.hint:
            out["hint"] = self.hint
        return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Grant:
    refresh_token: str
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class AuthServer:
    client_id: str
    client_secret: str
    account_id: int
    token_ttl: int = 3600
    refresh_per_minute: int = 5
    rotate: bool = True  # False: a provider that keeps the refresh token (no refresh_token in the answer)
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    # access-token id -> the refresh token to revoke on its first use
    pending_revocation: dict[str, str] = field(default_factory=dict)
    revoked_access: set[str] = field(default_factory=set)
    not_before: float = 0.0  # tokens issued before this are treated as expired (admin "expire all")
    refresh_times: deque[float] = field(default_factory=deque)
    issued: int = 0
    refreshes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------------------- authorize

    def new_code(self, *, client_id: str, redirect_uri: str, scope: str, challenge: str, method: str) -> str:
        if client_id != self.client_id:
            raise OAuthError(400, "invalid_client", "Client authentication failed")
        if method and method not in ("S256", "plain"):
            raise OAuthError(400, "invalid_request", "Code challenge method must be S256 or plain")
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {"client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
                                "challenge": challenge, "method": method or "plain", "expires": time.time() + CODE_TTL}
        return code

    # ------------------------------------------------------------------------------- token

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if "scope" in form and grant_type == "refresh_token":
            raise OAuthError(400, "invalid_request", "The request includes an unsupported parameter", "scope")
        if form.get("client_id") != self.client_id:
            raise OAuthError(401, "invalid_client", "Client authentication failed")
        if form.get("client_secret") and form["client_secret"] != self.client_secret:
            raise OAuthError(401, "invalid_client", "Client authentication failed")
        if grant_type == "authorization_code":
            return self._exchange(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        raise OAuthError(400, "unsupported_grant_type", "The authorization grant type is not supported")

    def _exchange(self, form: dict[str, str]) -> dict[str, Any]:
        code = form.get("code", "")
        if not code:
            raise OAuthError(400, "invalid_request", "The request is missing a required parameter", "code")
        with self.lock:
            entry = self.codes.pop(code, None)
        if entry is None or entry["expires"] < time.time():
            raise OAuthError(400, "invalid_grant", INVALID_GRANT,
                             "Authorization code has expired" if entry else "Cannot decrypt the authorization code")
        verifier = form.get("code_verifier", "")
        if entry["challenge"]:
            expected = (_b64(hashlib.sha256(verifier.encode()).digest()) if entry["method"] == "S256" else verifier)
            if not verifier or not hmac.compare_digest(expected, entry["challenge"]):
                raise OAuthError(400, "invalid_grant", INVALID_GRANT, "Failed to verify `code_verifier`.")
        elif not form.get("client_secret"):
            raise OAuthError(401, "invalid_client", "Client authentication failed")
        return self._issue(entry["scope"], replaces=None)

    def _refresh(self, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        with self.lock:
            now = time.time()
            while self.refresh_times and self.refresh_times[0] < now - 60:
                self.refresh_times.popleft()
            if self.refresh_per_minute and len(self.refresh_times) >= self.refresh_per_minute:
                raise OAuthError(400, "invalid_request", "Too many refresh attempts; try again in a minute")
            self.refresh_times.append(now)
            grant = self.grants.get(token)
            if grant is None or grant.revoked:
                raise OAuthError(400, "invalid_grant", "The refresh token is invalid.", "Token has been revoked")
            self.refreshes += 1
        if not self.rotate:
            tokens = self._issue(grant.scope, replaces=None)
            with self.lock:
                self.grants.pop(tokens.pop("refresh_token"), None)
            return tokens
        return self._issue(grant.scope, replaces=token)

    def _issue(self, scope: str, *, replaces: str | None) -> dict[str, Any]:
        now = time.time()
        jti = secrets.token_hex(12)
        claims = {"iss": "sandbox", "aud": self.client_id, "sub": "1", "acct": str(self.account_id),
                  "scope": scope, "iat": now, "nbf": now, "exp": now + self.token_ttl, "jti": jti}
        header = {"alg": "HS256", "typ": "JWT", "kid": "RT_OAUTH2_SANDBOX"}
        signing = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        access = signing + "." + _b64(hmac.new(self.key, signing.encode(), hashlib.sha256).digest())
        refresh = "def50200" + secrets.token_hex(40)
        with self.lock:
            self.grants[refresh] = Grant(refresh_token=refresh, client_id=self.client_id, scope=scope)
            if replaces:
                self.pending_revocation[jti] = replaces
            self.issued += 1
        return {"token_type": "Bearer", "expires_in": self.token_ttl, "access_token": access, "refresh_token": refresh}

    # ------------------------------------------------------------------------------- API side

    def verify(self, authorization: str | None) -> dict[str, Any]:
        denied = OAuthError(401, "access_denied", "The resource owner or authorization server denied the request.",
                            "Access token could not be verified")
        if not authorization or not authorization.lower().startswith("bearer "):
            raise OAuthError(401, "access_denied", "The resource owner or authorization server denied the request.",
                             "Missing \"Bearer\" token")
        token = authorization.split(" ", 1)[1].strip()
        try:
            head, body, signature = token.split(".")
            expected = _b64(hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(expected, signature):
                raise denied
            claims = json.loads(_unb64(body))
        except (ValueError, TypeError):
            raise denied from None
        if claims["exp"] < time.time() or claims["iat"] < self.not_before or claims["jti"] in self.revoked_access:
            raise denied
        with self.lock:
            old = self.pending_revocation.pop(claims["jti"], None)
            if old and old in self.grants:
                self.grants[old].revoked = True
        return claims

    def expire_all(self) -> None:
        with self.lock:
            self.not_before = time.time() + 1e-6
