"""Merging and unmerging clients through the API (core.identity does the work)."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from core.models import ChangeFeed
from core.runtime import Runtime
from tests.test_api_helpers import World, api_client, audit_rows, build_world, count

pytest.importorskip("core.identity", reason="core.identity (merge_clients / unmerge) is not available yet")


@pytest.fixture
async def world(rt: Runtime) -> World:
    return await build_world(rt)


def _emails(body: dict) -> list[str]:  # type: ignore[type-arg]
    return sorted(c["value"] for c in body["contacts"] if c["kind"] == "email")


async def test_merge_and_unmerge_round_trip(rt: Runtime, world: World) -> None:
    ann, ben = world.clients["ann"], world.clients["ben"]
    feed_before = await count(rt, ChangeFeed)
    async with api_client(rt) as client:
        merged = await client.post(
            f"/api/v1/clients/{ann}/merge", headers=world.auth("manager"), json={"other_id": ben}
        )
        assert merged.status_code == 200, merged.text
        body = merged.json()
        assert body["merge"]["survivor_id"] == ann and body["merge"]["absorbed_id"] == ben
        assert body["merge"]["reason"] == f"manual:api:{world.token_ids['manager']}"
        assert body["merge"]["undone_at"] is None
        assert _emails(body["client"]) == ["ann.lee@example.com", "ben@example.org"]
        assert [m["id"] for m in body["client"]["merges"]] == [body["merge"]["id"]]

        listed = await client.get("/api/v1/clients", headers=world.auth("manager"))
        assert ben not in [c["id"] for c in listed.json()["items"]]
        absorbed = await client.get(f"/api/v1/clients/{ben}", headers=world.auth("owner"))
        assert absorbed.json()["merged_into_id"] == ann
        # The absorbed client takes no edits: they belong on the survivor.
        edit = await client.patch(f"/api/v1/clients/{ben}", headers=world.auth("owner"), json={"note": "x"})
        assert edit.status_code == 409 and edit.json()["extra"]["merged_into_id"] == ann
        again = await client.post(f"/api/v1/clients/{ann}/merge", headers=world.auth("owner"), json={"other_id": ben})
        assert again.status_code == 409

        undone = await client.post(f"/api/v1/clients/{ann}/unmerge", headers=world.auth("manager"))
        assert undone.status_code == 200, undone.text
        result = undone.json()
        assert result["restored_client_id"] == ben
        assert result["merge"]["id"] == body["merge"]["id"] and result["merge"]["undone_at"] is not None
        assert _emails(result["client"]) == ["ann.lee@example.com"]

        restored = await client.get(f"/api/v1/clients/{ben}", headers=world.auth("manager"))
        assert restored.status_code == 200 and restored.json()["merged_into_id"] is None
        assert _emails(restored.json()) == ["ben@example.org"]
        listed = await client.get("/api/v1/clients", headers=world.auth("manager"))
        assert ben in [c["id"] for c in listed.json()["items"]]

        nothing_left = await client.post(f"/api/v1/clients/{ann}/unmerge", headers=world.auth("owner"), json={})
        assert nothing_left.status_code == 404
        twice = await client.post(
            f"/api/v1/clients/{ann}/unmerge", headers=world.auth("owner"), json={"merge_id": body["merge"]["id"]}
        )
        assert twice.status_code == 409

    # Merge and unmerge each append their change-feed rows (survivor and absorbed) and an audit row.
    async with rt.db.session() as s:
        rows = (await s.exec(select(ChangeFeed).where(col(ChangeFeed.id) > feed_before))).all()
    assert sorted((r.op, r.entity_id) for r in rows) == sorted(
        [("merge", ann), ("merge", ben), ("unmerge", ann), ("unmerge", ben)]
    )
    assert all(r.origin == f"api:{world.token_ids['manager']}" for r in rows)
    assert [a.actor for a in await audit_rows(rt, "client.merge")] == ["manager@shop.example.com"]
    assert [a.actor for a in await audit_rows(rt, "client.unmerge")] == ["manager@shop.example.com"]


async def test_merge_needs_an_owner_or_manager_and_both_clients_in_scope(rt: Runtime, world: World) -> None:
    ann, ben, fay = world.clients["ann"], world.clients["ben"], world.clients["fay"]
    async with api_client(rt) as client:
        associate = await client.post(
            f"/api/v1/clients/{ann}/merge", headers=world.auth("alice"), json={"other_id": ben}
        )
        unmerge = await client.post(f"/api/v1/clients/{ann}/unmerge", headers=world.auth("alice"))
        out_of_scope = await client.post(
            f"/api/v1/clients/{ann}/merge", headers=world.auth("manager"), json={"other_id": fay}
        )
        survivor_out_of_scope = await client.post(
            f"/api/v1/clients/{fay}/merge", headers=world.auth("manager"), json={"other_id": ann}
        )
        itself = await client.post(f"/api/v1/clients/{ann}/merge", headers=world.auth("owner"), json={"other_id": ann})
        already = await client.post(
            f"/api/v1/clients/{ben}/merge", headers=world.auth("owner"), json={"other_id": world.clients["ann_old"]}
        )
        missing_body = await client.post(f"/api/v1/clients/{ann}/merge", headers=world.auth("owner"), json={})
    # The owner merges Fay (London only) into Ann; the Downtown manager may not bring Fay back.
    async with api_client(rt) as client:
        owners = await client.post(f"/api/v1/clients/{ann}/merge", headers=world.auth("owner"), json={"other_id": fay})
        assert owners.status_code == 200, owners.text
        by_manager = await client.post(f"/api/v1/clients/{ann}/unmerge", headers=world.auth("manager"))
        by_owner = await client.post(f"/api/v1/clients/{ann}/unmerge", headers=world.auth("owner"))
    assert by_manager.status_code == 404
    assert by_owner.status_code == 200 and by_owner.json()["restored_client_id"] == fay
    assert associate.status_code == 403
    assert unmerge.status_code == 403
    assert out_of_scope.status_code == 404 and str(fay) in out_of_scope.json()["detail"]
    assert survivor_out_of_scope.status_code == 404
    assert itself.status_code == 400
    assert already.status_code == 409
    assert missing_body.status_code == 400
    assert [a.details["absorbed_id"] for a in await audit_rows(rt, "client.merge")] == [fay]
