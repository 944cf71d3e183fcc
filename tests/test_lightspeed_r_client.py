"""The R-Series HTTP client against the sandbox: V3 paging, the one-vs-many quirk, pacing, retries."""

from __future__ import annotations

import time

from plugins.pos_lightspeed_r.client import LightspeedApi
from tests.lightspeed_r.fixtures import memory_connector, read_stream, serve_sandbox, stream_named


def api_log(server):
    return [e for e in server.stats(log=True)["log"] if e["path"].startswith("Account/")]


async def test_paging_follows_complete_next_urls() -> None:
    with serve_sandbox() as server:
        ctx = await memory_connector(server)
        async with LightspeedApi(ctx) as api:
            await api.ensure_account()
            server.admin("POST", "/_sandbox/stats/reset")
            pages = [(rows, nxt) async for rows, nxt in api.pages("Customer", {"limit": 7, "archived": "true"})]
        total = server.sandbox.ds.truth.customer_records
        assert sum(len(rows) for rows, _ in pages) == total
        assert len(pages) == -(-total // 7)
        assert all(nxt and nxt.startswith(server.url) and "after=" in nxt and "limit=7" in nxt
                   for _, nxt in pages[:-1])
        assert pages[-1][1] is None
        ids = [r["customerID"] for rows, _ in pages for r in rows]
        assert len(set(ids)) == total  # no row lost or repeated across page boundaries
        assert server.stats()["requests"] == len(pages)


async def test_single_row_pages_and_strings_survive() -> None:
    with serve_sandbox() as server:
        ctx = await memory_connector(server)
        async with LightspeedApi(ctx) as api:
            await api.ensure_account()
            # limit=1: every page body carries the resource as a bare object, not a list.
            body = await api.get_json(api.account_url("Shop.json"), {"limit": 1})
            assert isinstance(body["Shop"], dict) and body["Shop"]["shopID"] == "1"
            pages = [rows async for rows, _ in api.pages("Shop", {"limit": 1})]
            assert [len(rows) for rows in pages] == [1] * server.sandbox.ds.truth.shops
            # Zero rows: the key is absent altogether.
            empty = await api.get_json(api.account_url("Shop.json"), {"shopID": "999"})
            assert "Shop" not in empty
            assert [rows async for rows, _ in api.pages("Shop", {"shopID": "999"})] == [[]]


async def test_a_backfill_at_a_small_bucket_never_hits_429() -> None:
    # Bucket 6, drip 25/s, burst 5/s: the client must pace itself from the headers alone.
    with serve_sandbox(bucket_size=6, drip_rate=25, burst_limit=5, clients=450) as server:
        ctx = await memory_connector(server)
        stream = stream_named(ctx, "customers")
        server.admin("POST", "/_sandbox/stats/reset")
        started = time.monotonic()
        payloads, _, pages = await read_stream(stream)
        elapsed = time.monotonic() - started
        stats = server.stats(log=True)
        assert stats["throttled"] == 0, stats["by_status"]
        assert len(payloads) == server.sandbox.ds.truth.customer_records
        # Never more than the burst limit in any one-second window, as the server counts them.
        seconds = [int(e["t"]) for e in stats["log"]]
        assert max(seconds.count(s) for s in set(seconds)) <= 5
        # ...and no slower than the limits require (the cost of all requests at the drip rate, minus the bucket).
        assert elapsed >= (stats["cost"] - 6) / 25 - 0.05
        assert pages >= 5


async def test_retry_after_is_obeyed() -> None:
    with serve_sandbox() as server:
        ctx = await memory_connector(server)
        async with LightspeedApi(ctx) as api:
            await api.ensure_account()
            server.admin("POST", "/_sandbox/stats/reset")
            server.admin("POST", "/_sandbox/faults", {"status": 429, "retry_after": 1})
            body = await api.get_json(api.account_url("Shop.json"))
            assert body["Shop"] and api.stats.throttled == 1
        log = api_log(server)
        assert [e["status"] for e in log] == [429, 200]
        assert log[1]["t"] - log[0]["t"] >= 1.0


async def test_server_errors_and_dropped_connections_are_retried() -> None:
    with serve_sandbox() as server:
        ctx = await memory_connector(server)
        async with LightspeedApi(ctx) as api:
            await api.ensure_account()
            server.admin("POST", "/_sandbox/stats/reset")
            server.admin("POST", "/_sandbox/faults", {"status": 503})
            server.admin("POST", "/_sandbox/faults", {"drop": True})
            body = await api.get_json(api.account_url("Employee.json"))
            assert body["Employee"]
        assert [e["status"] for e in api_log(server)] == [503, 500, 200]


async def test_a_persistent_client_error_is_permanent_and_explained() -> None:
    from core.plugin import PermanentError

    with serve_sandbox() as server:
        ctx = await memory_connector(server)
        async with LightspeedApi(ctx) as api:
            await api.ensure_account()
            try:
                await api.get_json(api.account_url("Sale.json"), {"sort": "ticketNumber"})
            except PermanentError as exc:
                assert "Sortable fields" in str(exc)
            else:
                raise AssertionError("an unsupported sort must fail")


async def test_descending_sorts_and_filters_page_like_the_real_api() -> None:
    with serve_sandbox() as server:
        ctx = await memory_connector(server)
        async with LightspeedApi(ctx) as api:
            await api.ensure_account()
            ids = [int(r["customerID"]) async for rows, _ in api.pages("Customer", {"limit": 9, "sort": "-customerID"})
                   for r in rows]
            visible = sorted((c["customerID"] for c in server.sandbox.ds.customers.values() if not c["archived"]),
                             reverse=True)
            assert ids == visible  # archived rows are hidden unless archived=true
            body = await api.get_json(api.account_url("Customer.json"), {"customerID": "IN,[3,5,8]"})
            assert sorted(r["customerID"] for r in body["Customer"]) == ["3", "5", "8"]
            body = await api.get_json(api.account_url("Customer.json"), {"customerID": "><,4,6", "archived": "true"})
            assert [r["customerID"] for r in body["Customer"]] == ["4", "5", "6"]
