"""API tokens: only a hash is stored, they authenticate requests, and revoking one locks it out —
through core.tokens, over HTTP, and with the real ``clasp token`` command."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from core.models import ApiToken, User
from core.runtime import Runtime
from core.tokens import (
    LAST_USED_PRECISION,
    TOKEN_PREFIX,
    TokenError,
    create_token,
    hash_token,
    list_tokens,
    revoke_token,
)
from core.users import create_user
from tests.test_api_helpers import api_client, audit_rows, build_world


async def _owner(rt: Runtime, email: str = "owner@shop.example.com") -> User:
    async with rt.db.transaction() as s:
        return await create_user(s, email=email, password="correct horse battery", role="owner")


async def test_only_a_hash_is_stored(rt: Runtime) -> None:
    user = await _owner(rt)
    async with rt.db.transaction() as s:
        row, plaintext = await create_token(s, user_id=user.id, name="website", actor="test")  # type: ignore[arg-type]
    assert plaintext.startswith(TOKEN_PREFIX)
    assert len(plaintext) >= len(TOKEN_PREFIX) + 40
    async with rt.db.session() as s:
        stored = await s.get(ApiToken, row.id)
        every_value = [str(v) for r in (await s.exec(select(ApiToken))).all() for v in r.model_dump().values()]
    assert stored is not None
    assert stored.token_hash == hash_token(plaintext) != plaintext
    assert plaintext.startswith(stored.prefix) and len(stored.prefix) < len(plaintext) // 3
    assert not any(plaintext in v for v in every_value)
    (audit,) = await audit_rows(rt, "api_token.create")
    assert plaintext not in json.dumps(audit.details)
    assert audit.details["prefix"] == stored.prefix
    # Two tokens never collide, and neither is derived from the name or the user.
    async with rt.db.transaction() as s:
        _, other = await create_token(s, user_id=user.id, name="website")  # type: ignore[arg-type]
    assert other != plaintext and other[len(TOKEN_PREFIX) :] != plaintext[len(TOKEN_PREFIX) :]


async def test_bad_token_requests_are_refused(rt: Runtime) -> None:
    user = await _owner(rt)
    async with rt.db.transaction() as s:
        with_no_name = None
        try:
            await create_token(s, user_id=user.id, name="   ")  # type: ignore[arg-type]
        except TokenError as exc:
            with_no_name = str(exc)
        unknown_user = None
        try:
            await create_token(s, user_id=999_999, name="x")
        except TokenError as exc:
            unknown_user = str(exc)
    assert with_no_name and "name" in with_no_name
    assert unknown_user and "999999" in unknown_user


async def test_token_lifecycle_over_http(rt: Runtime) -> None:
    user = await _owner(rt)
    async with rt.db.transaction() as s:
        row, plaintext = await create_token(s, user_id=user.id, name="website")  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {plaintext}"}
    async with api_client(rt) as client:
        ok = await client.get("/api/v1/clients", headers=headers)
        assert ok.status_code == 200, ok.text
        async with rt.db.session() as s:
            used = await s.get(ApiToken, row.id)
        assert used is not None and used.last_used_at is not None
        first_use = used.last_used_at

        # Within the precision window a request does not write again; after it, it does.
        await client.get("/api/v1/clients", headers=headers)
        async with rt.db.transaction() as s:
            again = await s.get(ApiToken, row.id)
            assert again is not None and again.last_used_at == first_use
            again.last_used_at = first_use - LAST_USED_PRECISION - timedelta(seconds=1)
            s.add(again)
        await client.get("/api/v1/sales", headers=headers)
        async with rt.db.session() as s:
            later = await s.get(ApiToken, row.id)
        assert later is not None and later.last_used_at is not None and later.last_used_at >= first_use

        async with rt.db.transaction() as s:
            await revoke_token(s, row.id, actor="test")  # type: ignore[arg-type]
            await revoke_token(s, row.id, actor="test")  # type: ignore[arg-type]  # twice changes nothing
        revoked = await client.get("/api/v1/clients", headers=headers)
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["www-authenticate"]
    assert len(await audit_rows(rt, "api_token.revoke")) == 1
    async with rt.db.session() as s:
        (info,) = await list_tokens(s)
        assert await list_tokens(s, include_revoked=False) == []
    assert info.id == row.id and info.prefix == row.prefix and not info.active


async def test_missing_malformed_and_unknown_tokens_get_401_with_a_challenge(rt: Runtime) -> None:
    world = await build_world(rt)
    async with rt.db.transaction() as s:
        manager = await s.get(User, world.users["manager"])
        assert manager is not None
        manager.active = False
        s.add(manager)
    cases = {
        "missing": {},
        "basic": {"Authorization": "Basic b3duZXI6cGFzc3dvcmQ="},
        "bearer without token": {"Authorization": "Bearer"},
        "unknown": {"Authorization": f"Bearer {TOKEN_PREFIX}not-a-real-token"},
        "no prefix": {"Authorization": "Bearer abc"},
        "deactivated user": world.auth("manager"),
    }
    async with api_client(rt) as client:
        for label, headers in cases.items():
            for method, path in (("GET", "/api/v1/clients"), ("GET", "/api/v1/sales"), ("PATCH", "/api/v1/clients/1")):
                resp = await client.request(method, path, headers=headers, json={} if method == "PATCH" else None)
                assert resp.status_code == 401, (label, path, resp.text)
                assert resp.headers["content-type"].startswith("application/json")
                assert resp.json()["status_code"] == 401
                assert resp.headers["www-authenticate"].startswith('Bearer realm="clasp"'), label
        still_fine = await client.get("/api/v1/clients", headers=world.auth("owner"))
    assert still_fine.status_code == 200
    async with api_client(rt) as client:
        missing = await client.get("/api/v1/clients")
    assert missing.headers["www-authenticate"] == 'Bearer realm="clasp"'


async def test_clasp_token_command(rt: Runtime, clasp_cli) -> None:  # type: ignore[no-untyped-def]
    await _owner(rt)
    help_ = clasp_cli("token", "--help")
    assert help_.returncode == 0, help_.stderr
    assert "create" in help_.stdout and "revoke" in help_.stdout

    created = clasp_cli("token", "create", "--user", "OWNER@shop.example.com", "--name", "nightly export")
    assert created.returncode == 0, created.stderr
    plaintext = created.stdout.strip()
    assert plaintext.startswith(TOKEN_PREFIX) and "\n" not in plaintext
    assert "not stored" in created.stderr

    listed = clasp_cli("token", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["name"] == "nightly export" and entry["user"] == "owner@shop.example.com"
    assert plaintext.startswith(entry["prefix"]) and plaintext not in listed.stdout
    table = clasp_cli("token", "list")
    assert entry["prefix"] in table.stdout and plaintext not in table.stdout

    async with api_client(rt) as client:
        ok = await client.get("/api/v1/clients", headers={"Authorization": f"Bearer {plaintext}"})
        assert ok.status_code == 200
        revoked = clasp_cli("token", "revoke", str(entry["id"]))
        assert revoked.returncode == 0, revoked.stderr
        refused = await client.get("/api/v1/clients", headers={"Authorization": f"Bearer {plaintext}"})
    assert refused.status_code == 401
    (after,) = json.loads(clasp_cli("token", "list", "--json").stdout)
    assert after["revoked_at"] is not None and after["last_used_at"] is not None
    assert json.loads(clasp_cli("token", "list", "--active", "--json").stdout) == []

    unknown_user = clasp_cli("token", "create", "--user", "nobody@shop.example.com", "--name", "x")
    assert unknown_user.returncode == 1 and "nobody@shop.example.com" in unknown_user.stderr
    unknown_token = clasp_cli("token", "revoke", "424242")
    assert unknown_token.returncode == 1 and "424242" in unknown_token.stderr
