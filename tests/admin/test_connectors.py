"""Connector pages: types from the registry, generated forms, secrets, OAuth, check, sync now."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select

from core.connectors import load_settings
from core.models import AuditLog, Connector, SyncRun
from core.runtime import Runtime
from core.settings import Settings
from core.web import create_app
from tests.admin import fakeshop
from tests.admin.conftest import Panel, build_org, http_client, runtime_with, text_of


@pytest.fixture
def provider(serve: Any) -> Any:
    return serve(lambda _url: fakeshop.create_provider(clients=5, page_size=2))


@pytest.fixture
async def shop_rt(settings: Settings, db: Any) -> AsyncIterator[Runtime]:
    runtime = runtime_with(settings, fakeshop)
    yield runtime
    if runtime.redis is not None:
        await runtime.redis.aclose()
    await runtime.close()


@pytest.fixture
async def owner(shop_rt: Runtime) -> AsyncIterator[Panel]:
    org = await build_org(shop_rt)
    async with http_client(create_app(shop_rt)) as client:
        panel = Panel(client)
        assert (await panel.sign_in(org.users["owner"])).status_code == 303
        panel.org = org  # type: ignore[attr-defined]
        yield panel


async def audit_rows(rt: Runtime, action: str) -> list[AuditLog]:
    async with rt.db.session() as s:
        return list((await s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))).all())


def field_html(html: str, name: str) -> str:
    match = re.search(
        rf'<div class="field[^"]*" data-field="{name}">(.*?)</div>\s*(?=<div class="field|<div class="actions)',
        html,
        re.S,
    )
    assert match, f"no field {name}"
    return match.group(1)


async def add_fakeshop(panel: Panel, base_url: str, **extra: str) -> int:
    data = {
        "type": "fakeshop",
        "name": "FakeShop Downtown",
        "base_url": base_url,
        "client_id": "clasp-app",
        "region": "us",
        "page_size": "2",
        "poll_interval_seconds": "300",
        **extra,
    }
    resp = await panel.post("/admin/connectors/new", data)
    assert resp.status_code == 303, resp.text
    return int(resp.headers["location"].rsplit("/", 1)[1])


async def test_connector_types_come_from_the_installed_plugins(shop_rt: Runtime, owner: Panel) -> None:
    page = text_of((await owner.get("/admin/connectors")).text)
    assert len(shop_rt.registry.connector_types) >= 2
    for ctype in shop_rt.registry.connector_types.values():
        assert (ctype.title or ctype.name) in page
    chooser = (await owner.get("/admin/connectors/new")).text
    assert 'href="/admin/connectors/new?type=fakeshop"' in chooser


async def test_the_form_is_generated_from_the_settings_model(owner: Panel) -> None:
    html = (await owner.get("/admin/connectors/new?type=fakeshop")).text
    assert 'type="checkbox" name="include_archived"' in field_html(html, "include_archived")
    region = field_html(html, "region")
    assert "<select" in region and 'value="us" selected' in region and 'value="eu"' in region
    page_size = field_html(html, "page_size")
    assert (
        'type="number"' in page_size
        and 'min="1"' in page_size
        and 'max="500"' in page_size
        and 'value="2"' in page_size
    )
    token = field_html(html, "access_token")
    assert 'type="password"' in token and 'value=""' in token and "Access token" in token
    url = field_html(html, "base_url")
    assert "FakeShop URL" in url and "Where FakeShop answers" in url


async def test_invalid_settings_show_inline_errors_and_keep_what_was_typed(shop_rt: Runtime, owner: Panel) -> None:
    data = {
        "type": "fakeshop",
        "name": "",
        "base_url": "http://shop",
        "page_size": "0",
        "region": "us",
        "access_token": "typed-secret-value",
    }
    resp = await owner.post("/admin/connectors/new", data)
    assert resp.status_code == 422
    html = resp.text
    assert "Give the connector a name" in field_html(html, "name")
    assert "greater than or equal to 1" in field_html(html, "page_size")
    assert 'value="http://shop"' in field_html(html, "base_url")
    assert "typed-secret-value" not in html  # secrets are never echoed, even back into a failed form
    async with shop_rt.db.session() as s:
        assert (await s.exec(select(Connector).where(Connector.type == "fakeshop"))).first() is None
    # A duplicate name is an inline error on the name field.
    resp = await owner.post("/admin/connectors/new", {**data, "name": "Downtown POS", "page_size": "5"})
    assert resp.status_code == 422 and "already has this name" in field_html(resp.text, "name")


async def test_secrets_are_write_only(shop_rt: Runtime, owner: Panel) -> None:
    cid = await add_fakeshop(owner, "http://shop", access_token="tok-very-secret-1")
    async with shop_rt.db.session() as s:
        connector = await s.get(Connector, cid)
    assert connector is not None and "access_token" not in connector.settings
    assert "tok-very-secret-1" not in (connector.secrets or "")
    assert load_settings(shop_rt, connector).access_token.get_secret_value() == "tok-very-secret-1"  # type: ignore[union-attr]
    html = (await owner.get(f"/admin/connectors/{cid}")).text
    assert "tok-very-secret-1" not in html and "ecret-1" not in html
    assert "•••• set" in field_html(html, "access_token")
    # Saving with the secret left blank keeps it; other fields change.
    form = {
        "base_url": "http://shop2",
        "client_id": "clasp-app",
        "region": "eu",
        "page_size": "3",
        "poll_interval_seconds": "300",
        "access_token": "",
        "include_archived": "on",
    }
    assert (await owner.post(f"/admin/connectors/{cid}/settings", form)).status_code == 303
    async with shop_rt.db.session() as s:
        connector = await s.get(Connector, cid)
    stored = load_settings(shop_rt, connector)  # type: ignore[arg-type]
    assert stored.access_token.get_secret_value() == "tok-very-secret-1"  # type: ignore[attr-defined]
    assert (stored.base_url, stored.region, stored.page_size, stored.include_archived) == (
        "http://shop2",
        "eu",
        3,
        True,
    )  # type: ignore[attr-defined]
    [entry] = await audit_rows(shop_rt, "connector.settings")
    assert entry.details["changed"] == ["base_url", "include_archived", "page_size", "region"]
    # A new value replaces it; "remove" clears it. The audit names fields, never values.
    await owner.post(f"/admin/connectors/{cid}/settings", {**form, "access_token": "tok-new-2"})
    async with shop_rt.db.session() as s:
        assert load_settings(shop_rt, await s.get(Connector, cid)).access_token.get_secret_value() == "tok-new-2"  # type: ignore[arg-type,union-attr]
    await owner.post(f"/admin/connectors/{cid}/settings", {**form, "clear__access_token": "on"})
    async with shop_rt.db.session() as s:
        assert load_settings(shop_rt, await s.get(Connector, cid)).access_token is None  # type: ignore[arg-type,attr-defined]
    assert all("tok-" not in str(e.details) for e in await audit_rows(shop_rt, "connector.settings"))
    # Invalid edits are refused with the error next to the field, nothing stored.
    resp = await owner.post(f"/admin/connectors/{cid}/settings", {**form, "page_size": "9999"})
    assert resp.status_code == 422 and "less than or equal to 500" in field_html(resp.text, "page_size")


async def test_enable_disable_and_sync_refused_while_disabled(shop_rt: Runtime, owner: Panel) -> None:
    cid = await add_fakeshop(owner, "http://shop")
    assert (await owner.post(f"/admin/connectors/{cid}/enabled", {"enabled": "false"})).status_code == 303
    page = text_of((await owner.get(f"/admin/connectors/{cid}")).text)
    assert "“FakeShop Downtown” is disabled." in page and "Enable" in page
    resp = await owner.post(f"/admin/connectors/{cid}/sync", htmx=True)
    assert "Enable the connector before syncing it." in resp.text
    assert await audit_rows(shop_rt, "connector.sync") == []
    await owner.post(f"/admin/connectors/{cid}/enabled", {"enabled": "true"})
    assert [e.action for e in await audit_rows(shop_rt, "connector.disable")] == ["connector.disable"]
    assert [e.action for e in await audit_rows(shop_rt, "connector.enable")] == ["connector.enable"]


async def authorize(panel: Panel, cid: int) -> httpx.Response:
    """Click "Authorize", approve at FakeShop (a real server), follow its redirect back."""
    resp = await panel.post(f"/admin/connectors/{cid}/authorize")
    assert resp.status_code == 303
    authorize_url = resp.headers["location"]
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    async with httpx.AsyncClient() as browser:
        page = await browser.get(authorize_url)
        approve = re.search(r'id="approve" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
        back = await browser.get(str(page.url.join(approve)))
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    assert callback.path == "/admin/oauth/callback"
    return await panel.get(f"{callback.path}?{callback.query}")


async def test_oauth_authorize_with_pkce_stores_tokens(shop_rt: Runtime, owner: Panel, provider: Any) -> None:
    cid = await add_fakeshop(owner, provider.url)
    check = await owner.post(f"/admin/connectors/{cid}/check", htmx=True)
    assert "Connection failed" in check.text and "Not authorized yet" in check.text
    resp = await authorize(owner, cid)
    assert resp.status_code == 303 and resp.headers["location"] == f"/admin/connectors/{cid}"
    assert "is authorized" in text_of((await owner.get(resp.headers["location"])).text)
    async with shop_rt.db.session() as s:
        stored = load_settings(shop_rt, await s.get(Connector, cid))  # type: ignore[arg-type]
    assert stored.shop_id == "shop-42" and stored.access_token is not None  # type: ignore[attr-defined]
    [entry] = await audit_rows(shop_rt, "connector.authorized")
    assert entry.details == {"fields": ["access_token", "refresh_token", "shop_id"]}
    check = await owner.post(f"/admin/connectors/{cid}/check", htmx=True)
    assert "Connection OK" in check.text and "Connected to FakeShop Downtown" in check.text
    assert [e.details["ok"] for e in await audit_rows(shop_rt, "connector.check")] == [False, True]


async def test_oauth_callback_refuses_unknown_state_and_reports_denial(
    shop_rt: Runtime, owner: Panel, provider: Any
) -> None:
    cid = await add_fakeshop(owner, provider.url)
    forged = await owner.get("/admin/oauth/callback?state=forged&code=stolen")
    assert forged.status_code == 400 and "cannot be completed" in forged.text
    resp = await owner.post(f"/admin/connectors/{cid}/authorize")
    state = parse_qs(urlsplit(resp.headers["location"]).query)["state"][0]
    denied = await owner.get(f"/admin/oauth/callback?state={state}&error=access_denied")
    assert denied.status_code == 303
    assert "Authorization was not completed: access_denied" in text_of(
        (await owner.get(f"/admin/connectors/{cid}")).text
    )
    # A state is good once: replaying it fails.
    assert (await owner.get(f"/admin/oauth/callback?state={state}&code=x")).status_code == 400
    reasons = [e.details["reason"] for e in await audit_rows(shop_rt, "connector.authorize_failed")]
    assert reasons == ["unknown or expired state", "access_denied", "unknown or expired state"]


async def test_oauth_code_is_bound_to_the_session_that_started_it(
    shop_rt: Runtime, owner: Panel, provider: Any
) -> None:
    cid = await add_fakeshop(owner, provider.url)
    resp = await owner.post(f"/admin/connectors/{cid}/authorize")
    state = parse_qs(urlsplit(resp.headers["location"]).query)["state"][0]
    other_owner = Panel(http_client(create_app(shop_rt)))
    try:
        assert (await other_owner.sign_in(owner.org.users["owner"])).status_code == 303  # type: ignore[attr-defined]
        assert (await other_owner.get(f"/admin/oauth/callback?state={state}&code=x")).status_code == 400
    finally:
        await other_owner.client.aclose()


async def test_sync_now_enqueues_once_and_the_worker_runs_it(shop_rt: Runtime, owner: Panel, provider: Any) -> None:
    from core.jobs import create_worker

    cid = await add_fakeshop(owner, provider.url)
    first = await owner.post(f"/admin/connectors/{cid}/sync", htmx=True)
    assert first.status_code == 200 and "Sync queued." in first.text and 'id="sync-status"' in first.text
    second = await owner.post(f"/admin/connectors/{cid}/sync", htmx=True)
    assert "already queued" in second.text
    entries = await audit_rows(shop_rt, "connector.sync")
    assert [e.details["queued"] for e in entries] == [True, False]
    assert entries[0].actor == owner.org.users["owner"]  # type: ignore[attr-defined]
    worker = await create_worker(shop_rt, burst=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    async with shop_rt.db.session() as s:
        run = (await s.exec(select(SyncRun).where(SyncRun.connector_id == cid))).one()
    assert run.trigger == "panel" and run.status == "succeeded", run.message
    status = text_of((await owner.get(f"/admin/connectors/{cid}/status", headers={"hx-request": "true"})).text)
    assert "succeeded" in status and f"{run.records} records" in status
