"""A test plugin for the panel: an OAuth connector type whose provider is a tiny Litestar app
("FakeShop", served on a real socket), a sync connector type reading the same fake, and admin
contributions (a nav item for owners, a page, a client panel).

Load it with ``load_plugins(settings, extra=[tests.admin.fakeshop])``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import urlencode

from litestar import Litestar, MediaType, Request, get, post
from litestar.exceptions import NotAuthorizedException
from litestar.response import Redirect, Response
from pydantic import Field

from core.plugin import (
    AdminPage,
    CheckResult,
    ClientPanel,
    ClientRecord,
    ConnectorSettings,
    ConnectorType,
    LocationRecord,
    NavItem,
    OAuthFlow,
    Page,
    PermanentError,
    SecretStr,
    Stream,
    hookimpl,
    http_client,
)

# ------------------------------------------------------------------------------------ the provider


def create_provider(*, clients: int = 6, page_size: int = 2, page_delay: float = 0.0) -> Litestar:
    """FakeShop: an OAuth 2 authorization server with PKCE, and a paged client API."""
    codes: dict[str, dict[str, str]] = {}
    tokens: set[str] = set()
    people = [
        {"id": f"c{i}", "first": f"Client{i}", "last": "Fake", "email": f"client{i}@example.com", "shop": "s1"}
        for i in range(1, clients + 1)
    ]

    @get("/authorize", media_type=MediaType.HTML)
    async def authorize_page(request: Request[Any, Any, Any]) -> str:
        q = request.query_params
        approve = urlencode({k: q.get(k, "") for k in ("redirect_uri", "state", "code_challenge", "client_id")})
        return (
            "<!doctype html><title>FakeShop</title><h1>Allow Clasp to read FakeShop?</h1>"
            f"<p>App: {q.get('client_id')}</p>"
            f'<a id="approve" href="/approve?{approve}">Approve</a> '
            f'<a id="deny" href="{q.get("redirect_uri")}?error=access_denied&state={q.get("state")}">Deny</a>'
        )

    @get("/approve")
    async def approve(request: Request[Any, Any, Any]) -> Redirect:
        q = request.query_params  # "state" is a reserved handler argument name in Litestar
        code = secrets.token_urlsafe(16)
        codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"], "client_id": q["client_id"]}
        return Redirect(path=f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", status_code=302)

    @post("/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        form = await request.form()
        grant = codes.pop(str(form.get("code")), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return Response({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier") or "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant["challenge"]:
            return Response(
                {"error": "invalid_grant", "error_description": "PKCE verification failed"}, status_code=400
            )
        access = secrets.token_urlsafe(16)
        tokens.add(access)
        return Response({"access_token": access, "refresh_token": secrets.token_urlsafe(16), "shop_id": "shop-42"})

    def _check_bearer(request: Request[Any, Any, Any]) -> None:
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in tokens:
            raise NotAuthorizedException("bad token")

    @get("/api/me")
    async def me(request: Request[Any, Any, Any]) -> dict[str, Any]:
        _check_bearer(request)
        return {"shop": "FakeShop Downtown"}

    @get("/api/shops")
    async def shops() -> dict[str, Any]:
        return {"shops": [{"id": "s1", "name": "FakeShop Downtown", "timezone": "America/New_York"}]}

    @get("/api/clients")
    async def client_page(offset: int = 0) -> dict[str, Any]:
        if page_delay:
            await asyncio.sleep(page_delay)
        chunk = people[offset : offset + page_size]
        return {
            "clients": chunk,
            "total": len(people),
            "next": offset + page_size if offset + page_size < len(people) else None,
        }

    return Litestar([authorize_page, approve, token, me, shops, client_page])


# ------------------------------------------------------------------------------- connector types


class FakeShopSettings(ConnectorSettings):
    base_url: str = Field("", title="FakeShop URL", description="Where FakeShop answers, e.g. http://127.0.0.1:9000")
    client_id: str = Field("", title="OAuth client id")
    access_token: SecretStr | None = Field(None, title="Access token")
    refresh_token: SecretStr | None = Field(None, title="Refresh token")
    shop_id: str | None = Field(None, title="Shop id", description="Filled in by authorization")
    region: Literal["us", "eu"] = Field("us", title="Data region")
    include_archived: bool = Field(False, title="Include archived clients")
    page_size: int = Field(2, ge=1, le=500, title="Page size")
    poll_interval_seconds: int = Field(300, ge=10, title="Sync interval (seconds)")


class FakeShopOAuth(OAuthFlow):
    def __init__(self, settings: FakeShopSettings) -> None:
        self.settings = settings

    def authorize_url(self, *, state: str, redirect_uri: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "response_type": "code",
            }
        )
        return f"{self.settings.base_url}/authorize?{query}"

    async def exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        async with http_client(self.settings.base_url) as client:
            resp = await client.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": code_verifier,
                    "client_id": self.settings.client_id,
                },
            )
        body = resp.json()
        if resp.status_code != 200:
            reason = body.get("error_description") or body.get("error") or f"{resp.status_code} {body}"
            raise PermanentError(f"FakeShop refused the code: {reason}")
        return {
            "access_token": body["access_token"],
            "refresh_token": body["refresh_token"],
            "shop_id": body["shop_id"],
        }


class FakeShop(ConnectorType):
    name = "fakeshop"
    kind = "pos"
    title = "FakeShop"
    description = "A fake point of sale for the panel's tests."
    settings_model = FakeShopSettings
    capabilities = frozenset({"oauth", "sync"})

    def oauth(self, ctx: Any) -> OAuthFlow | None:
        return FakeShopOAuth(ctx.settings) if ctx.settings.base_url and ctx.settings.client_id else None

    async def check(self, ctx: Any) -> CheckResult:
        token = ctx.settings.access_token
        if token is None:
            return CheckResult(ok=False, message="Not authorized yet: use “Authorize”.")
        async with http_client(ctx.settings.base_url) as client:
            resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token.get_secret_value()}"})
        if resp.status_code != 200:
            return CheckResult(ok=False, message=f"FakeShop answered {resp.status_code}")
        return CheckResult(ok=True, message=f"Connected to {resp.json()['shop']}")

    def streams(self, ctx: Any) -> list[Stream]:
        return [ShopStream(ctx.settings), ClientStream(ctx.settings)]


class ShopStream(Stream):
    name = "shops"
    object_type = "location"

    def __init__(self, settings: FakeShopSettings) -> None:
        self.settings = settings

    async def read(self, state: Mapping[str, Any], *, full: bool = False) -> AsyncIterator[Page]:
        async with http_client(self.settings.base_url) as client:
            body = (await client.get("/api/shops")).json()
        yield Page(records=body["shops"], state={"done": True})

    def decode(self, payload: Mapping[str, Any]) -> LocationRecord:
        return LocationRecord(external_id=payload["id"], name=payload["name"], timezone=payload["timezone"])


class ClientStream(Stream):
    name = "clients"
    object_type = "client"

    def __init__(self, settings: FakeShopSettings) -> None:
        self.settings = settings

    async def read(self, state: Mapping[str, Any], *, full: bool = False) -> AsyncIterator[Page]:
        offset: int | None = 0 if full else int(state.get("offset", 0))
        async with http_client(self.settings.base_url) as client:
            while offset is not None:
                body = (await client.get("/api/clients", params={"offset": offset})).json()
                offset = body["next"]
                done = (offset if offset is not None else body["total"]) / max(1, body["total"])
                yield Page(records=body["clients"], state={"offset": offset or body["total"]}, progress=done)

    def decode(self, payload: Mapping[str, Any]) -> ClientRecord:
        return ClientRecord.model_validate(
            {
                "external_id": payload["id"],
                "first_name": payload["first"],
                "last_name": payload["last"],
                "contacts": [{"kind": "email", "value": payload["email"], "is_primary": True}],
                "home_location_external_id": payload["shop"],
            }
        )


@hookimpl
def clasp_register_connector_types(register: Any) -> None:
    register(FakeShop())


# --------------------------------------------------------------------------- admin contributions


@get("/fakeshop-report", media_type=MediaType.HTML)
async def fakeshop_report() -> str:
    return "<!doctype html><h1>FakeShop report</h1>"


@get("/fakeshop-crash")
async def fakeshop_crash() -> str:
    raise RuntimeError("boom")


def _broken_panel(client: Any) -> str:
    raise RuntimeError("panel bug")


def _loyalty_panel(client: Any) -> str:
    return f"<p class='loyalty'>Loyalty tier for {client.first_name}: gold</p>"


@hookimpl
def clasp_register_admin(register: Any) -> None:
    register(NavItem(label="FakeShop report", href="/admin/fakeshop-report", roles=frozenset({"owner"}), order=95))
    register(AdminPage(name="fakeshop-report", route_handlers=[fakeshop_report, fakeshop_crash]))
    register(ClientPanel(name="loyalty", title="Loyalty", render=_loyalty_panel))
    register(ClientPanel(name="broken", title="Broken panel", render=_broken_panel, order=200))
