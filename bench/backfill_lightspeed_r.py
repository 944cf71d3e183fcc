"""Backfill the demo chain from the Lightspeed R-Series sandbox under a real leaky bucket.

Prints three ratios (targets in brackets):
  pacing     elapsed ÷ (total request cost ÷ drip rate)   [≤ 1.05]  — runs at the drip rate, not slower
  requests   requests made ÷ minimum pages                [≤ 1.02]  — no wasted requests
  429s       throttled responses                          [0]

The bucket starts full, so the whole backfill is paid for at the drip rate (an empty bucket would
give the first ``bucket_size`` of cost away and flatter the pacing ratio). The drip rate is raised
(``--drip``) so the run takes a minute instead of an hour; the ratio is what matters.

    .venv/bin/python bench/backfill_lightspeed_r.py [--shops 3 --clients 400 --years 5 --drip 10]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.pos_lightspeed_r.auth import LightspeedOAuth
from plugins.pos_lightspeed_r.plugin import LightspeedRSettings
from plugins.pos_lightspeed_r.sandbox.app import create_app
from plugins.pos_lightspeed_r.streams import build_streams


@dataclass
class MemoryContext:
    """A ConnectorContext holding settings in memory (the bench measures the plugin, not the DB)."""

    settings: Any
    connector_id: int = 1
    name: str = "bench"
    base_url: str = "http://127.0.0.1"

    async def save_settings(self, **updates: Any) -> None:
        self.settings = self.settings.model_validate({**self.settings.model_dump(), **updates})


def serve(app: Any) -> tuple[uvicorn.Server, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def authorize(ctx: MemoryContext) -> None:
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlsplit

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    flow = LightspeedOAuth(ctx)
    url = flow.authorize_url(state="bench", redirect_uri="http://127.0.0.1/cb", code_challenge=challenge)
    async with httpx.AsyncClient() as http:
        location = (await http.get(url)).headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = await flow.exchange(code=code, redirect_uri="http://127.0.0.1/cb", code_verifier=verifier)
    await ctx.save_settings(**tokens)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shops", type=int, default=3)
    parser.add_argument("--clients", type=int, default=400)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--sales-per-day", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drip", type=float, default=10.0, help="drip rate (units/s); the real one is 1")
    parser.add_argument("--bucket", type=float, default=90.0)
    parser.add_argument("--burst", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)

    app = create_app(shops=args.shops, clients=args.clients, years=args.years, seed=args.seed,
                     sales_per_day=args.sales_per_day, drip_rate=args.drip, bucket_size=args.bucket,
                     burst_limit=args.burst)
    sandbox = app.state.sandbox
    server, url = serve(app)
    ctx = MemoryContext(LightspeedRSettings(api_base_url=url, auth_base_url=url, client_id="clasp-sandbox",
                                            client_secret="sandbox-secret", history_years=args.years))
    await authorize(ctx)
    sandbox.reset_stats()
    sandbox.bucket.configure(level=args.bucket)  # start full: every unit of cost is paid at the drip rate

    window_start = datetime.now(UTC) - timedelta(days=365.2425 * args.years)
    streams = build_streams(ctx)
    records = 0
    started = time.monotonic()
    for stream in streams:
        async for page in stream.read({}, full=True):
            records += len(page.records)
    elapsed = time.monotonic() - started

    ds = sandbox.ds
    sales_in_window = sum(1 for s in ds.sales.values() if s["timeStamp"] >= window_start)
    rows = {"Shop": len(ds.shops), "Employee": len(ds.employees), "Customer": len(ds.customers),
            "ItemMatrix": len(ds.matrices), "Item": len(ds.items), "Sale": sales_in_window}
    minimum_pages = sum(max(1, math.ceil(n / 100)) for n in rows.values())
    stats = sandbox.stats
    requests = stats["requests"]
    cost, drip = stats["cost"], sandbox.bucket.drip
    ideal = cost / drip
    server.should_exit = True

    print(f"chain: {args.shops} shops, {len(ds.customers)} customers, {len(ds.items)} items, "
          f"{sales_in_window} sales over {args.years} years; bucket {args.bucket:g}, drip {drip:g}/s, "
          f"burst {args.burst}/s")
    print(f"records read: {records}; requests: {requests} ({stats['by_status']}); total cost {cost:.1f}")
    print(f"elapsed {elapsed:.1f} s; cost at drip rate {ideal:.1f} s; client waited {streams[0].stats.waited:.1f} s")
    print(f"pacing   elapsed / (cost / drip) = {elapsed / ideal:.3f}   (target <= 1.05)")
    print(f"requests made / minimum pages   = {requests}/{minimum_pages} = {requests / minimum_pages:.3f}"
          "   (target <= 1.02)")
    print(f"429s                            = {stats['throttled']}   (target 0)")


if __name__ == "__main__":
    asyncio.run(main())
