"""Sign-in, sessions in the database, cookies, CSRF, throttling and expired sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import func, select, update

from core.models import AuditLog, User, WebSession, utcnow
from core.runtime import Runtime, create_runtime
from core.web import create_app
from tests.admin.conftest import PASSWORD, Org, Panel, http_client


async def audit_actions(rt: Runtime, action: str) -> list[AuditLog]:
    async with rt.db.session() as s:
        return list((await s.exec(select(AuditLog).where(AuditLog.action == action))).all())


async def test_sign_in_sets_a_db_backed_session_with_safe_cookie_flags(rt: Runtime, panels: Any, org: Org) -> None:
    panel: Panel = await panels()
    resp = await panel.sign_in(org.users["owner"], next="/admin/clients")
    assert resp.status_code == 303 and resp.headers["location"] == "/admin/clients"
    cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("clasp_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Secure" not in cookie
    session_id = cookie.split(";")[0].split("=", 1)[1]
    async with rt.db.session() as s:
        row = await s.get(WebSession, session_id)
    assert row is not None and row.expires_at is not None and row.expires_at > utcnow()
    assert (await panel.get("/admin")).status_code == 200
    [entry] = await audit_actions(rt, "auth.sign_in")
    assert entry.actor == org.users["owner"] and entry.ip
    async with rt.db.session() as s:
        user = (await s.exec(select(User).where(User.email == org.users["owner"]))).one()
    assert user.last_login_at is not None


async def test_cookies_are_secure_behind_https(settings: Any, db: Any, org: Org) -> None:
    rt = create_runtime(settings.model_copy(update={"base_url": "https://clasp.example.com"}))
    try:
        async with http_client(create_app(rt), base_url="https://testserver.local") as client:
            panel = Panel(client)
            resp = await panel.sign_in(org.users["owner"])
            assert resp.status_code == 303
            cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("clasp_session="))
            assert "Secure" in cookie
    finally:
        await rt.close()


async def test_a_second_web_process_shares_the_session(settings: Any, rt: Runtime, panels: Any, org: Org) -> None:
    panel: Panel = await panels(org.users["manager"])
    other_rt = create_runtime(settings)  # another process: its own engine, same database
    try:
        async with http_client(create_app(other_rt)) as other:
            other.cookies.update(dict(panel.client.cookies))
            resp = await other.get("/admin", follow_redirects=False)
            assert resp.status_code == 200
            assert org.users["manager"] in resp.text
    finally:
        await other_rt.close()


async def test_sign_in_rotates_the_session_id_and_sign_out_kills_it(rt: Runtime, panels: Any, org: Org) -> None:
    panel: Panel = await panels()
    # An anonymous session (flash messages) that an attacker could have planted.
    await panel.client.get("/admin/sign-in")
    await panel.post("/admin/sign-in", {"email": "nobody@example.com", "password": "x"})
    planted = panel.client.cookies.get("clasp_session")
    await panel.sign_in(org.users["owner"])
    signed_in = panel.client.cookies.get("clasp_session")
    assert signed_in and signed_in != planted
    old_cookies = dict(panel.client.cookies)
    resp = await panel.post("/admin/sign-out")
    assert resp.status_code == 303 and resp.headers["location"] == "/admin/sign-in"
    assert (await audit_actions(rt, "auth.sign_out"))[0].actor == org.users["owner"]
    # Replaying the old cookie no longer works: the server-side session is gone.
    async with http_client(create_app(rt)) as replay:
        replay.cookies.update(old_cookies)
        resp = await replay.get("/admin", follow_redirects=False)
        assert resp.status_code == 302 and resp.headers["location"].startswith("/admin/sign-in")


async def test_failed_sign_in_is_audited_and_says_nothing_about_the_account(rt: Runtime, panels: Any, org: Org) -> None:
    panel: Panel = await panels()
    wrong_password = await panel.sign_in(org.users["owner"], password="wrong-password")
    unknown_user = await panel.sign_in("ghost@example.com")
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert "do not match an active account" in wrong_password.text
    assert "do not match an active account" in unknown_user.text
    failures = await audit_actions(rt, "auth.sign_in_failed")
    assert sorted(f.target_id for f in failures) == sorted([org.users["owner"], "ghost@example.com"])  # type: ignore[type-var]
    assert (await panel.get("/admin")).status_code == 302


async def test_five_failures_lock_the_account_for_a_while(rt: Runtime, panels: Any, org: Org) -> None:
    attacker, owner = await panels(), await panels()
    for _ in range(5):
        assert (await attacker.sign_in(org.users["ann"], password="guess-guess")).status_code == 401
    # Even the right password is refused now, from any address, without checking it.
    resp = await owner.sign_in(org.users["ann"], password=PASSWORD)
    assert resp.status_code == 429 and "Too many failed attempts" in resp.text
    assert len(await audit_actions(rt, "auth.sign_in_locked")) == 1
    # Other accounts are not affected.
    assert (await owner.sign_in(org.users["owner"])).status_code == 303
    # After the window the failures no longer count.
    async with rt.db.transaction() as s:
        await s.exec(
            update(AuditLog)
            .where(AuditLog.action == "auth.sign_in_failed")  # type: ignore[arg-type]
            .values(at=utcnow() - timedelta(minutes=16))
        )
    assert (await (await panels()).sign_in(org.users["ann"])).status_code == 303


async def test_many_failures_from_one_address_lock_that_address(rt: Runtime, panels: Any, org: Org) -> None:
    async with rt.db.transaction() as s:
        for i in range(20):
            s.add(
                AuditLog(
                    action="auth.sign_in_failed", target_type="email", target_id=f"u{i}@example.com", ip="10.1.2.3"
                )
            )
    resp = await (await panels()).sign_in(org.users["owner"])
    assert resp.status_code == 429


async def test_csrf_is_required_on_panel_posts_but_not_on_the_api(panels: Any, org: Org) -> None:
    panel: Panel = await panels(org.users["owner"])
    url = f"/admin/connectors/{org.connector_id}/enabled"
    no_token = await panel.client.post(url, data={"enabled": "false"}, follow_redirects=False)
    assert no_token.status_code == 403 and "This form has expired" in no_token.text
    bad_token = await panel.client.post(url, data={"enabled": "false"}, headers={"x-csrftoken": "nope"})
    assert bad_token.status_code == 403
    htmx = await panel.post(url, {"enabled": "false"}, htmx=True)
    assert htmx.status_code == 200 and htmx.headers["hx-redirect"] == f"/admin/connectors/{org.connector_id}"
    form = await panel.client.post(url, data={"enabled": "true", "_csrf_token": panel.csrf}, follow_redirects=False)
    assert form.status_code == 303
    # The bearer-token API is exempt: it answers with its own auth error, not a CSRF failure.
    api = await panel.client.post("/api/v1/clients", json={})
    assert api.status_code != 403 or "CSRF" not in api.text


async def test_expired_session_redirects_plain_and_htmx_requests(rt: Runtime, panels: Any, org: Org) -> None:
    panel: Panel = await panels(org.users["owner"])
    async with rt.db.transaction() as s:
        await s.exec(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))  # type: ignore[call-overload]
    plain = await panel.get(f"/admin/connectors/{org.connector_id}?tab=runs")
    assert plain.status_code == 302
    assert plain.headers["location"] == f"/admin/sign-in?next=/admin/connectors/{org.connector_id}%3Ftab%3Druns"
    fragment = await panel.get(
        f"/admin/connectors/{org.connector_id}/status",
        headers={
            "hx-request": "true",
            "hx-current-url": f"http://testserver.local/admin/connectors/{org.connector_id}",
        },
    )
    assert fragment.status_code == 200
    assert fragment.headers["hx-redirect"] == f"/admin/sign-in?next=/admin/connectors/{org.connector_id}"
    async with rt.db.session() as s:
        assert (await s.exec(select(func.count()).select_from(WebSession))).one() == 0


async def test_a_deactivated_user_is_signed_out(rt: Runtime, panels: Any, org: Org) -> None:
    panel: Panel = await panels(org.users["manager"])
    async with rt.db.transaction() as s:
        await s.exec(update(User).where(User.email == org.users["manager"]).values(active=False))  # type: ignore[arg-type]
    assert (await panel.get("/admin")).status_code == 302
    assert (await panel.sign_in(org.users["manager"])).status_code == 401


async def test_next_cannot_leave_the_panel(panels: Any, org: Org) -> None:
    resp = await (await panels()).sign_in(org.users["owner"], next="https://evil.example.com/")
    assert resp.headers["location"] == "/admin"
    resp = await (await panels()).sign_in(org.users["owner"], next="//evil.example.com")
    assert resp.headers["location"] == "/admin"


async def test_root_redirects_to_the_panel_and_errors_use_its_layout(panels: Any, org: Org) -> None:
    panel: Panel = await panels(org.users["owner"])
    root = await panel.get("/")
    assert root.status_code == 302 and root.headers["location"] == "/admin"
    missing = await panel.get("/admin/no-such-page")
    assert missing.status_code == 404 and "Nothing here" in missing.text and "admin.css" in missing.text
    api_missing = await panel.get("/api/v1/no-such-thing")
    assert api_missing.status_code == 404 and api_missing.headers["content-type"].startswith("application/json")
    static = await panel.get("/admin/static/htmx.min.js")
    assert static.status_code == 200 and "htmx" in static.text[:200]
