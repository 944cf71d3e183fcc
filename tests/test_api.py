"""The JSON API over HTTP: client search and detail, edits, role scope, sales, the OpenAPI schema."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from core.api import openapi_components
from core.models import AuditLog, ChangeFeed, Client, ClientContact
from core.runtime import Runtime
from tests.test_api_helpers import World, api_client, at, audit_rows, build_world, count, feed_rows


@pytest.fixture
async def world(rt: Runtime) -> World:
    return await build_world(rt)


async def _ids(client: Any, token: str, **params: Any) -> list[int]:
    resp = await client.get("/api/v1/clients", params=params, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    return [c["id"] for c in resp.json()["items"]]


# ------------------------------------------------------------------------------------------- search


SEARCHES = [
    ("ann", ["ann"]),
    ("Lee", ["ann"]),
    ("ann lee", ["ann"]),
    ("ANN LE", ["ann"]),
    ("ann ortiz", []),
    ("ann.lee@example.com", ["ann"]),
    ("ANN.LEE@EXAMPLE.COM", ["ann"]),
    ("@example.co.uk", ["cleo", "fay"]),
    ("(212) 555-0134", ["ann"]),
    ("212-555-0134", ["ann"]),
    ("212.555.0134", ["ann"]),
    ("+1 212 555 0134", ["ann"]),
    ("12125550134", ["ann"]),
    ("0134", ["ann"]),
    ("020 7946 0018", ["cleo"]),
    ("+44 20 7946 0018", ["cleo"]),
    ("555-0199", ["ben"]),
    ("100%", []),
    ("nobody", []),
]


async def test_search_by_name_email_and_phone(rt: Runtime, world: World) -> None:
    async with api_client(rt) as client:
        for query, expected in SEARCHES:
            ids = await _ids(client, world.tokens["owner"], q=query)
            assert sorted(ids) == sorted(world.clients[k] for k in expected), query


async def test_list_excludes_merged_and_pages_with_a_cursor(rt: Runtime, world: World) -> None:
    visible = sorted(world.clients[k] for k in ("ann", "ben", "cleo", "dan", "eve", "fay"))
    seen: list[int] = []
    cursor = None
    pages = 0
    async with api_client(rt) as client:
        while True:
            params: dict[str, Any] = {"limit": 4}
            if cursor:
                params["cursor"] = cursor
            resp = await client.get("/api/v1/clients", params=params, headers=world.auth("owner"))
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert len(body["items"]) <= 4
            seen += [c["id"] for c in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        bad = await client.get("/api/v1/clients", params={"cursor": "not-a-cursor"}, headers=world.auth("owner"))
        too_big = await client.get("/api/v1/clients", params={"limit": 100_000}, headers=world.auth("owner"))
    assert seen == visible
    assert world.clients["ann_old"] not in seen
    assert pages == 2
    assert bad.status_code == 400
    assert too_big.status_code == 400


async def test_list_items_carry_primary_contacts(rt: Runtime, world: World) -> None:
    async with api_client(rt) as client:
        resp = await client.get("/api/v1/clients", params={"q": "ann"}, headers=world.auth("owner"))
    (item,) = resp.json()["items"]
    assert item["email"] == "ann.lee@example.com"
    assert item["phone"] == "+12125550134"
    assert item["home_location_id"] == world.locations["downtown"]
    assert item["owner_associate_id"] == world.associates["alice"]


# ------------------------------------------------------------------------------------------- detail


async def test_get_client_with_contacts_refs_consent_and_sales(rt: Runtime, world: World) -> None:
    async with api_client(rt) as client:
        resp = await client.get(f"/api/v1/clients/{world.clients['ann']}", headers=world.auth("owner"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["first_name"], body["last_name"]) == ("Ann", "Lee")
    assert {(c["kind"], c["value"], c["is_primary"]) for c in body["contacts"]} == {
        ("email", "ann.lee@example.com", True),
        ("phone", "+12125550134", True),
    }
    assert [(r["connector_name"], r["connector_type"], r["external_id"]) for r in body["external_refs"]] == [
        ("Downtown Lightspeed", "lightspeed_r", "LS-1001")
    ]
    # The latest ledger entry per channel is the status; channels never recorded are unknown.
    assert body["consent"]["sms"]["status"] == "opted_in"
    assert body["consent"]["sms"]["source"] == "keyword:START"
    assert body["consent"]["email"] == {"status": "unknown", "source": None, "recorded_at": None}
    assert [s["id"] for s in body["sales"]] == [world.sales["ann_repair"], world.sales["ann_ring"]]
    assert body["sales_total"] == 2
    ring = body["sales"][1]
    assert ring["total_minor"] == 250_000 and ring["currency"] == "USD" and ring["status"] == "completed"
    assert [(line["sku"], line["quantity"]) for line in ring["lines"]] == [("ANN_RING-1", 1), ("BOX-1", -1)]
    assert ring["occurred_at"].startswith("2026-03-10T15:00:00")
    assert body["merged_into_id"] is None


async def test_missing_client_is_404(rt: Runtime, world: World) -> None:
    async with api_client(rt) as client:
        resp = await client.get("/api/v1/clients/999999", headers=world.auth("owner"))
    assert resp.status_code == 404
    assert resp.json()["status_code"] == 404


# ------------------------------------------------------------------------------------------ editing


async def test_patch_normalises_writes_one_feed_row_and_an_audit_row(rt: Runtime, world: World) -> None:
    ann = world.clients["ann"]
    feed_before = len(await feed_rows(rt))
    async with api_client(rt) as client:
        resp = await client.patch(
            f"/api/v1/clients/{ann}",
            headers=world.auth("manager"),
            json={
                "first_name": "  Annabel  ",
                "last_name": "Lee",  # unchanged: not in the feed row
                "emails": ["Annabel.Lee@Example.COM", "ann.lee@example.com"],
                "phones": ["(646) 555-0172"],
                "birthday": "1984-07-19",
                "address": {"line1": "12 Grand St", "city": "New York", "region": "NY", "country": "us"},
                "note": "Prefers yellow gold.",
            },
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["first_name"] == "Annabel"
    assert [(c["kind"], c["value"], c["is_primary"]) for c in body["contacts"] if c["kind"] == "email"] == [
        ("email", "annabel.lee@example.com", True),
        ("email", "ann.lee@example.com", False),
    ]
    assert [c["value"] for c in body["contacts"] if c["kind"] == "phone"] == ["+16465550172"]
    assert body["birthday"] == "1984-07-19"
    assert body["address"]["country"] == "US" and body["address"]["line2"] is None
    origin = f"api:{world.token_ids['manager']}"
    assert body["provenance"]["first_name"]["source"] == origin
    assert body["provenance"]["first_name"]["connector_id"] is None

    rows = (await feed_rows(rt))[feed_before:]
    assert len(rows) == 1
    row = rows[0]
    assert (row.entity, row.entity_id, row.op) == ("client", ann, "update")
    assert row.origin == f"api:{world.token_ids['manager']}"
    assert row.origin_connector_id is None
    assert row.changes == {
        "first_name": "Annabel",
        "emails": ["annabel.lee@example.com", "ann.lee@example.com"],
        "phones": ["+16465550172"],
        "birthday": "1984-07-19",
        "address": {"line1": "12 Grand St", "city": "New York", "region": "NY", "country": "US"},
        "note": "Prefers yellow gold.",
    }
    (audit,) = await audit_rows(rt, "client.edit")
    assert audit.actor == "manager@shop.example.com"
    assert audit.actor_user_id == world.users["manager"]
    assert audit.target_id == str(ann)
    assert audit.details["changes"]["first_name"] == {"from": "Ann", "to": "Annabel"}
    assert audit.details["changes"]["phones"] == {"from": ["+12125550134"], "to": ["+16465550172"]}

    async with rt.db.session() as s:
        stored = await s.get(Client, ann)
        assert stored is not None
        assert stored.provenance["first_name"]["source"] == f"api:{world.token_ids['manager']}"
        assert stored.provenance["first_name"]["connector_id"] is None
        assert "last_name" not in stored.provenance

    # The same edit again changes nothing, so it writes nothing.
    async with api_client(rt) as client:
        again = await client.patch(
            f"/api/v1/clients/{ann}", headers=world.auth("manager"), json={"first_name": "Annabel", "note": None}
        )
        assert again.status_code == 200
        assert len(await feed_rows(rt)) == feed_before + 2  # the note was cleared: one more row
        unchanged = await client.patch(f"/api/v1/clients/{ann}", headers=world.auth("manager"), json={"note": None})
    assert unchanged.status_code == 200
    assert len(await feed_rows(rt)) == feed_before + 2
    assert (await feed_rows(rt))[-1].changes == {"note": None}


async def test_patch_reads_local_phones_in_the_home_store_country(rt: Runtime, world: World) -> None:
    async with api_client(rt) as client:
        resp = await client.patch(
            f"/api/v1/clients/{world.clients['cleo']}",
            headers=world.auth("owner"),
            json={"phones": ["020 7946 0999", "+1 212 555 0188"]},
        )
    assert resp.status_code == 200, resp.text
    assert [c["value"] for c in resp.json()["contacts"] if c["kind"] == "phone"] == ["+442079460999", "+12125550188"]


async def test_patch_keeps_contact_rows_that_stay(rt: Runtime, world: World) -> None:
    ann = world.clients["ann"]
    async with rt.db.session() as s:
        before = (
            await s.exec(select(ClientContact).where(ClientContact.client_id == ann, ClientContact.kind == "email"))
        ).one()
    async with api_client(rt) as client:
        resp = await client.patch(
            f"/api/v1/clients/{ann}",
            headers=world.auth("owner"),
            json={"emails": ["new@example.com", "ann.lee@example.com"]},
        )
    assert resp.status_code == 200
    async with rt.db.session() as s:
        kept = await s.get(ClientContact, before.id)
    assert kept is not None and kept.value == "ann.lee@example.com" and kept.is_primary is False


BAD_EDITS: list[tuple[dict[str, Any], set[str]]] = [
    ({"emails": ["not-an-email"]}, {"emails"}),
    ({"phones": ["12"]}, {"phones"}),
    ({"birthday": "2999-01-01"}, {"birthday"}),
    ({"birthday": "17/05/1980"}, {"birthday"}),
    ({"first_name": "x" * 201}, {"first_name"}),
    ({"address": {"country": "USA"}}, {"address"}),
    ({"address": {"street": "1 Main St"}}, {"address"}),
    ({"emails": "ann@example.com"}, {"emails"}),
    (
        {"emails": ["bad@"], "phones": ["nope"], "birthday": "2999-01-01", "note": "ok"},
        {"emails", "phones", "birthday"},
    ),
    ({"owner_associate_id": 3}, {"data"}),
]


async def test_patch_rejects_bad_values_and_writes_nothing(rt: Runtime, world: World) -> None:
    ann = world.clients["ann"]

    async def snapshot() -> tuple[Any, ...]:
        async with rt.db.session() as s:
            client = (await s.get(Client, ann)).model_dump()  # type: ignore[union-attr]
            contacts = (await s.exec(select(ClientContact).where(ClientContact.client_id == ann))).all()
        return client, sorted((c.kind, c.value, c.is_primary) for c in contacts)

    before = await snapshot()
    feed_before, audit_before = await count(rt, ChangeFeed), await count(rt, AuditLog)
    async with api_client(rt) as client:
        for payload, bad_keys in BAD_EDITS:
            resp = await client.patch(f"/api/v1/clients/{ann}", headers=world.auth("owner"), json=payload)
            assert resp.status_code == 400, (payload, resp.text)
            body = resp.json()
            assert {e["key"] for e in body["extra"]} == bad_keys, (payload, body)
            assert all(e["message"] for e in body["extra"])
    assert await snapshot() == before
    assert await count(rt, ChangeFeed) == feed_before
    assert await count(rt, AuditLog) == audit_before


async def test_patch_of_a_merged_client_is_a_conflict(rt: Runtime, world: World) -> None:
    async with api_client(rt) as client:
        resp = await client.patch(
            f"/api/v1/clients/{world.clients['ann_old']}", headers=world.auth("owner"), json={"first_name": "X"}
        )
        detail = await client.get(f"/api/v1/clients/{world.clients['ann_old']}", headers=world.auth("owner"))
    assert resp.status_code == 409
    assert resp.json()["extra"]["merged_into_id"] == world.clients["ann"]
    assert detail.status_code == 200
    assert detail.json()["merged_into_id"] == world.clients["ann"]


# --------------------------------------------------------------------------------------------- scope

SCOPE = {
    "owner": {"ann", "ben", "cleo", "dan", "eve", "fay"},
    # Cleo lives in London but bought at Downtown.
    "manager": {"ann", "ben", "cleo"},
    # Downtown is in "own" mode: Alice sees her own clients only.
    "alice": {"ann"},
    # Uptown is in "store" mode: the whole store book.
    "carol": {"dan", "eve"},
}


@pytest.mark.parametrize("who", sorted(SCOPE))
async def test_role_scope_for_lists_reads_and_edits(rt: Runtime, world: World, who: str) -> None:
    allowed = SCOPE[who]
    async with api_client(rt) as client:
        listed = await _ids(client, world.tokens[who], limit=500)
        assert sorted(listed) == sorted(world.clients[k] for k in allowed)
        # Search is scoped too: Fay's email finds nothing for those who may not see her.
        found = await _ids(client, world.tokens[who], q="fay@example.co.uk")
        assert found == ([world.clients["fay"]] if "fay" in allowed else [])
        for key in SCOPE["owner"]:
            cid = world.clients[key]
            got = await client.get(f"/api/v1/clients/{cid}", headers=world.auth(who))
            assert got.status_code == (200 if key in allowed else 404), (who, key, got.text)
            edit = await client.patch(f"/api/v1/clients/{cid}", headers=world.auth(who), json={"note": f"by {who}"})
            assert edit.status_code == (200 if key in allowed else 404), (who, key, edit.text)
    edited = {row.entity_id for row in await feed_rows(rt)}
    assert edited == {world.clients[k] for k in allowed}


async def test_client_detail_shows_only_sales_at_the_managers_stores(rt: Runtime, world: World) -> None:
    async with api_client(rt) as client:
        as_manager = await client.get(f"/api/v1/clients/{world.clients['cleo']}", headers=world.auth("manager"))
        as_owner = await client.get(f"/api/v1/clients/{world.clients['cleo']}", headers=world.auth("owner"))
    assert [s["id"] for s in as_manager.json()["sales"]] == [world.sales["cleo_pendant"]]
    assert as_manager.json()["sales_total"] == 1
    assert [s["id"] for s in as_owner.json()["sales"]] == [world.sales["cleo_pendant"], world.sales["cleo_london"]]


# --------------------------------------------------------------------------------------------- sales


async def _sales(client: Any, world: World, who: str, **params: Any) -> list[int]:
    resp = await client.get("/api/v1/sales", params=params, headers=world.auth(who))
    assert resp.status_code == 200, resp.text
    return [s["id"] for s in resp.json()["items"]]


async def test_sales_filters_scope_and_lines(rt: Runtime, world: World) -> None:
    s = world.sales
    async with api_client(rt) as client:
        everything = await _sales(client, world, "owner")
        assert everything == [
            s["dan_watch"],
            s["ann_repair"],
            s["cleo_pendant"],
            s["ann_ring"],
            s["cleo_london"],
            s["fay_earrings"],
        ]
        assert await _sales(client, world, "owner", client_id=world.clients["cleo"]) == [
            s["cleo_pendant"],
            s["cleo_london"],
        ]
        assert await _sales(client, world, "owner", location_id=world.locations["london"]) == [
            s["cleo_london"],
            s["fay_earrings"],
        ]
        assert await _sales(client, world, "owner", status="completed") == [
            s["cleo_pendant"],
            s["ann_ring"],
            s["cleo_london"],
        ]
        assert await _sales(client, world, "owner", since="2026-03-10", until="2026-04-01") == [
            s["cleo_pendant"],
            s["ann_ring"],
        ]
        assert await _sales(client, world, "owner", since="2026-03-10T15:00:01Z") == [
            s["dan_watch"],
            s["ann_repair"],
            s["cleo_pendant"],
        ]
        assert await _sales(client, world, "owner", since="2026-03-10T11:00:00-04:00") == [
            s["dan_watch"],
            s["ann_repair"],
            s["cleo_pendant"],
            s["ann_ring"],
        ]
        # Managers and associates see the sales of their stores only.
        assert await _sales(client, world, "manager") == [s["ann_repair"], s["cleo_pendant"], s["ann_ring"]]
        assert await _sales(client, world, "manager", location_id=world.locations["london"]) == []
        assert await _sales(client, world, "carol") == [s["dan_watch"]]

        resp = await client.get(
            "/api/v1/sales", params={"client_id": world.clients["ann"]}, headers=world.auth("owner")
        )
        ring = next(x for x in resp.json()["items"] if x["id"] == s["ann_ring"])
        assert [(line["name"], line["quantity"], line["total_minor"]) for line in ring["lines"]] == [
            ("ann_ring piece", 1, 250_000),
            ("Gift box", -1, 0),
        ]

        naive = await client.get("/api/v1/sales", params={"since": "2026-03-10T15:00:00"}, headers=world.auth("owner"))
        bad_status = await client.get("/api/v1/sales", params={"status": "stolen"}, headers=world.auth("owner"))
    assert naive.status_code == 400 and naive.json()["extra"][0]["key"] == "since"
    assert bad_status.status_code == 400


async def test_sales_pages_with_a_cursor(rt: Runtime, world: World) -> None:
    seen: list[int] = []
    cursor = None
    async with api_client(rt) as client:
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            resp = await client.get("/api/v1/sales", params=params, headers=world.auth("owner"))
            assert resp.status_code == 200, resp.text
            seen += [x["id"] for x in resp.json()["items"]]
            cursor = resp.json()["next_cursor"]
            if cursor is None:
                break
    assert seen == await _sales_all(rt, world)
    assert len(seen) == len(set(seen)) == 6


async def _sales_all(rt: Runtime, world: World) -> list[int]:
    async with api_client(rt) as client:
        return await _sales(client, world, "owner", limit=500)


async def test_sales_with_equal_times_page_without_gaps(rt: Runtime, world: World) -> None:
    from core.models import Sale

    async with rt.db.transaction() as s:
        for _ in range(5):
            s.add(
                Sale(
                    location_id=world.locations["uptown"],
                    status="completed",
                    currency="USD",
                    occurred_at=at("2026-06-01T12:00:00"),
                )
            )
    seen: list[int] = []
    cursor = None
    async with api_client(rt) as client:
        while True:
            params: dict[str, Any] = {"limit": 2, "location_id": world.locations["uptown"]}
            if cursor:
                params["cursor"] = cursor
            resp = await client.get("/api/v1/sales", params=params, headers=world.auth("owner"))
            seen += [x["id"] for x in resp.json()["items"]]
            cursor = resp.json()["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)) == 6


# ------------------------------------------------------------------------------------------- openapi


async def test_openapi_documents_every_endpoint(rt: Runtime) -> None:
    async with api_client(rt) as client:
        resp = await client.get("/schema/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]

    def params(path: str, method: str) -> set[str]:
        return {p["name"] for p in paths[path][method].get("parameters", [])}

    assert params("/api/v1/clients", "get") >= {"q", "limit", "cursor"}
    assert params("/api/v1/clients/{client_id}", "get") == {"client_id"}
    assert params("/api/v1/clients/{client_id}", "patch") == {"client_id"}
    assert params("/api/v1/sales", "get") >= {"client_id", "location_id", "since", "until", "status", "limit", "cursor"}
    for path in ("/api/v1/clients/{client_id}/merge", "/api/v1/clients/{client_id}/unmerge"):
        assert "post" in paths[path]
    schemas = resp.json()["components"]["schemas"]
    assert set(schemas["ClientPatch"]["properties"]) == {
        "first_name",
        "last_name",
        "emails",
        "phones",
        "address",
        "birthday",
        "anniversary",
        "note",
    }
    detail = schemas["ClientDetail"]["properties"]
    assert {"contacts", "external_refs", "consent", "sales"} <= set(detail)
    for path, ops in paths.items():
        if path.startswith("/api/v1/"):
            for method, op in ops.items():
                assert op.get("security") == [{"bearerAuth": []}], (method, path)
                assert "401" in op["responses"] and {"200", "201"} & set(op["responses"]), (method, path)
                assert op.get("summary") and op.get("description"), (method, path)
    assert {"400", "404", "409"} <= set(paths["/api/v1/clients/{client_id}"]["patch"]["responses"])
    assert "403" in paths["/api/v1/clients/{client_id}/merge"]["post"]["responses"]
    assert "bearerAuth" in openapi_components().to_schema()["securitySchemes"]


# ------------------------------------------------------------------------------- the shared edit path


async def test_edit_client_is_the_panels_path_too(rt: Runtime, world: World) -> None:
    from core.clients import ClientEditError, ClientNotFound, edit_client

    ben = world.clients["ben"]
    async with rt.db.transaction() as s:
        client = await edit_client(
            s,
            ben,
            {"last_name": "Ortiz-Vega", "anniversary": "2010-06-12T00:00:00Z", "phones": ["212 555 0199"]},
            actor="manager@shop.example.com",
            origin=f"user:{world.users['manager']}",
            actor_user_id=world.users["manager"],
        )
        assert client.last_name == "Ortiz-Vega"
    (row,) = await feed_rows(rt)
    # The phone was already stored (in another format): only real changes reach the feed.
    assert row.changes == {"last_name": "Ortiz-Vega", "anniversary": "2010-06-12"}
    assert row.origin == f"user:{world.users['manager']}"
    (audit,) = await audit_rows(rt, "client.edit")
    assert audit.details["origin"] == f"user:{world.users['manager']}"

    async with rt.db.transaction() as s:
        with pytest.raises(ClientNotFound):
            await edit_client(s, 999_999, {"note": "x"}, actor="a", origin="user:1")
        with pytest.raises(ClientEditError) as bad:
            await edit_client(s, ben, {"nickname": "B", "emails": ["x"]}, actor="a", origin="user:1")
    assert set(bad.value.errors) == {"nickname", "emails"}
    assert len(await feed_rows(rt)) == 1
