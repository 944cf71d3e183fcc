"""OAuth against the sandbox: authorize → exchange → refresh on expiry and on 401, rotation persisted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from core.connectors import get_connector, load_settings
from plugins.pos_lightspeed_r.auth import TokenManager
from plugins.pos_lightspeed_r.client import LightspeedApi
from plugins.pos_lightspeed_r.plugin import LightspeedR, LightspeedRSettings
from tests.lightspeed_r.fixtures import (
    REDIRECT_URI,
    MemoryContext,
    add_lightspeed_connector,
    authorize,
    connector_values,
    serve_sandbox,
)


async def stored(rt, ctx):
    async with rt.db.session() as session:
        return load_settings(rt, await get_connector(session, ctx.connector_id))


def secret(value) -> str:
    return value.get_secret_value() if value is not None else ""


async def test_authorize_url_carries_state_and_pkce() -> None:
    with serve_sandbox() as server:
        ctx = MemoryContext(LightspeedRSettings(**connector_values(server)))
        flow = LightspeedR().oauth(ctx)
        url = flow.authorize_url(state="s-123", redirect_uri=REDIRECT_URI, code_challenge="abc")
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert parts.path == "/auth/oauth/authorize"
        assert query["response_type"] == "code" and query["client_id"] == "clasp-sandbox"
        assert query["state"] == "s-123" and query["code_challenge"] == "abc"
        assert query["code_challenge_method"] == "S256"
        assert "employee:customers" in query["scope"]


async def test_exchange_stores_tokens_and_account_and_check_passes(rt) -> None:
    with serve_sandbox() as server:
        ctx = await add_lightspeed_connector(rt, server)
        result = await rt.registry.connector_type("lightspeed_r").check(ctx)
        assert not result.ok and "authorize" in result.message.lower()

        await authorize(ctx)
        saved = await stored(rt, ctx)
        assert saved.account_id == str(server.sandbox.ds.account_id)  # from the token's acct claim
        assert secret(saved.refresh_token) and secret(saved.access_token)
        assert saved.access_token_expires_at > datetime.now(UTC)

        result = await rt.registry.connector_type("lightspeed_r").check(ctx)
        assert result.ok, result.message
        assert "Maison Clasp Jewelers" in result.message
        assert (await stored(rt, ctx)).currency == "USD"


async def test_a_wrong_verifier_is_refused() -> None:
    with serve_sandbox() as server:
        ctx = MemoryContext(LightspeedRSettings(**connector_values(server)))
        flow = LightspeedR().oauth(ctx)
        import httpx

        url = flow.authorize_url(state="x", redirect_uri=REDIRECT_URI, code_challenge="not-the-hash-of-anything")
        async with httpx.AsyncClient() as http:
            location = (await http.get(url)).headers["location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        from core.plugin import PermanentError

        with pytest.raises(PermanentError, match="code_verifier"):
            await flow.exchange(code=code, redirect_uri=REDIRECT_URI, code_verifier="wrong")


async def test_refresh_on_expiry_rotates_and_persists_before_use(rt) -> None:
    with serve_sandbox(token_ttl=1) as server:
        ctx = await add_lightspeed_connector(rt, server)
        first = await authorize(ctx)
        await asyncio.sleep(1.05)  # the access token is past its (early) refresh time
        async with LightspeedApi(ctx) as api:
            await api.ensure_account()
        saved = await stored(rt, ctx)
        assert secret(saved.refresh_token) != first["refresh_token"]  # rotated and stored
        assert secret(saved.access_token) != first["access_token"]
        assert server.sandbox.auth.refreshes == 1
        # The old refresh token died when the new access token was first used.
        assert server.sandbox.auth.grants[first["refresh_token"]].revoked


async def test_new_pair_is_durable_before_the_new_access_token_is_used(rt) -> None:
    with serve_sandbox() as server:
        ctx = await add_lightspeed_connector(rt, server)
        first = await authorize(ctx)
        new_access = await TokenManager(ctx).refresh(stale=first["access_token"])
        # Nothing has used the new access token yet, and the DB already holds the new refresh token:
        # a crash now loses nothing, and the old refresh token is still alive until first use.
        saved = await stored(rt, ctx)
        assert secret(saved.access_token) == new_access
        new_refresh = secret(saved.refresh_token)
        assert new_refresh != first["refresh_token"]
        assert not server.sandbox.auth.grants[first["refresh_token"]].revoked
        assert not server.sandbox.auth.grants[new_refresh].revoked


async def test_a_401_refreshes_once_and_retries(rt) -> None:
    with serve_sandbox() as server:
        ctx = await add_lightspeed_connector(rt, server)
        await authorize(ctx)
        server.admin("POST", "/_sandbox/tokens/expire")  # revoked early: the stored expiry still looks fine
        async with LightspeedApi(ctx) as api:
            body = await api.get_json(api.account_url("Shop.json"))
            assert body["Shop"]
            assert api.stats.refreshes == 1
        log = server.stats(log=True)["log"]
        assert [e["status"] for e in log][:2] == [401, 200]


async def test_a_provider_that_does_not_rotate_keeps_the_old_refresh_token(rt) -> None:
    with serve_sandbox(rotate_refresh_tokens=False) as server:
        ctx = await add_lightspeed_connector(rt, server)
        first = await authorize(ctx)
        await TokenManager(ctx).refresh(stale=first["access_token"])
        saved = await stored(rt, ctx)
        assert secret(saved.refresh_token) == first["refresh_token"]
        assert secret(saved.access_token) != first["access_token"]


async def test_a_revoked_refresh_token_gives_a_clear_error(rt) -> None:
    with serve_sandbox() as server:
        ctx = await add_lightspeed_connector(rt, server)
        first = await authorize(ctx)
        server.sandbox.auth.grants[first["refresh_token"]].revoked = True
        server.admin("POST", "/_sandbox/tokens/expire")
        result = await rt.registry.connector_type("lightspeed_r").check(ctx)
        assert not result.ok
        assert "authorize the connector again" in result.message
