"""Writeback of client edits to Lightspeed R-Series customers, against the sandbox."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.plugin import ClientWrite
from plugins.pos_lightspeed_r.plugin import LightspeedR
from tests.lightspeed_r.fixtures import memory_connector, read_stream, serve_sandbox, stream_named


def change(external_id: str | None, **changes) -> ClientWrite:
    return ClientWrite(client_id=1, external_id=external_id, changes=changes, changed_at=datetime.now(UTC), feed_id=1)


async def reread(ctx, customer_id: str):
    stream = stream_named(ctx, "customers")
    payloads, _, _ = await read_stream(stream, {"cursor": "2000-01-01T00:00:00+00:00",
                                                "swept_at": datetime.now(UTC).isoformat()})
    return stream.decode(next(p for p in payloads if p["customerID"] == customer_id))


@pytest.mark.parametrize("mode", ["merge", "replace"])
async def test_an_edit_round_trips_through_lightspeed(mode) -> None:
    with serve_sandbox(contact_write_mode=mode) as server:
        ctx = await memory_connector(server, writeback=True)
        writer = LightspeedR().writer(ctx)
        target = next(c for c in server.sandbox.ds.customers.values()
                      if len(c["Contact"]["Phones"]) == 1 and c["Contact"]["Emails"])
        customer_id = str(target["customerID"])
        old_phone = target["Contact"]["Phones"][0]["number"]
        result = await writer.write(change(
            customer_id, first_name="Renée", birthday="1984-02-29", anniversary="2010-06-12", note="Loves pearls",
            emails=["renee@example.org"], phones=["+12125550177", old_phone],
            address={"line1": "1 Main St", "city": "Boston", "region": "MA", "postal_code": "02108", "country": "US"},
        ))
        assert result.ok, result.message
        assert result.remote_updated_at is not None

        client = await reread(ctx, customer_id)
        assert client.first_name == "Renée"
        assert client.birthday == date(1984, 2, 29) and client.anniversary == date(2010, 6, 12)
        assert client.note == "Loves pearls"
        assert [c.value for c in client.contacts if c.kind == "email"] == ["renee@example.org"]
        phones = {c.value for c in client.contacts if c.kind == "phone"}
        assert phones == {"+12125550177", old_phone}
        assert client.address == {"line1": "1 Main St", "city": "Boston", "region": "MA", "postal_code": "02108",
                                  "country": "US"}

        # Removing a number and the anniversary clears them, whatever the PUT semantics.
        result = await writer.write(change(customer_id, phones=["+12125550177"], anniversary=None, emails=[]))
        assert result.ok, result.message
        client = await reread(ctx, customer_id)
        assert [c.value for c in client.contacts if c.kind == "phone"] == ["+12125550177"]
        assert [c for c in client.contacts if c.kind == "email"] == []
        assert client.anniversary is None


async def test_unlinked_and_vanished_customers() -> None:
    with serve_sandbox() as server:
        ctx = await memory_connector(server, writeback=True)
        writer = LightspeedR().writer(ctx)
        assert (await writer.write(change(None, first_name="X"))).ok
        gone = await writer.write(change("999999", first_name="X"))
        assert not gone.ok and "no longer exists" in gone.message
        assert server.stats()["by_status"].get("404") == 1


async def test_no_writer_unless_writeback_is_on() -> None:
    with serve_sandbox() as server:
        ctx = await memory_connector(server)
        assert LightspeedR().writer(ctx) is None


async def test_sandbox_creates_customers_with_nested_contact() -> None:
    from plugins.pos_lightspeed_r.client import LightspeedApi

    with serve_sandbox() as server:
        ctx = await memory_connector(server)
        async with LightspeedApi(ctx) as api:
            await api.ensure_account()
            created = await api.write_json("POST", api.account_url("Customer.json"), {
                "firstName": "Jane", "lastName": "Doe",
                "Contact": {"Phones": {"ContactPhone": {"number": "360 555 0153", "useType": "Home"}},
                            "Emails": {"ContactEmail": {"address": "jane@example.com", "useType": "Primary"}}}})
        customer = created["Customer"]
        assert customer["firstName"] == "Jane" and customer["archived"] == "false"
        assert customer["Contact"]["Emails"] == {"ContactEmail": {"address": "jane@example.com", "useType": "Primary"}}
        client = await reread(ctx, customer["customerID"])
        assert {c.value for c in client.contacts} == {"jane@example.com", "360 555 0153"}
