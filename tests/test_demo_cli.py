"""``clasp demo`` as a person runs it: one process, sandboxes wired, first sync done, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlmodel import col, select

from core.db import Database
from core.models import Connector, Location, SyncRun

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait(what: str, proc: subprocess.Popen[str], check, limit: float = 90.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"clasp demo exited while waiting for {what}: {proc.communicate()}")
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.3)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}: {proc.communicate()}")


async def test_clasp_demo_wires_the_sandboxes_syncs_and_stops_cleanly(db: Database) -> None:
    port = _free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 (starting a process does not block; waiting is polled)
        [sys.executable, "-m", "core.cli", "demo", "--port", str(port), "--shops", "2", "--clients", "40",
         "--years", "1", "--sales-per-day", "0.3", "--drip-rate", "500"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "CLASP_DEMO_PASSWORD": "demo-password-123"},
    )
    try:
        async def healthy() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"http://127.0.0.1:{port}/healthz")).json().get("ok") is True
            except (httpx.HTTPError, ValueError):
                return False

        async def first_sync() -> SyncRun | None:
            async with db.session() as session:
                stmt = (select(SyncRun).join(Connector, col(Connector.id) == SyncRun.connector_id)
                        .where(col(Connector.type) == "lightspeed_r", col(SyncRun.status) == "succeeded"))
                return (await session.exec(stmt)).first()

        await _wait("/healthz", proc, healthy)
        run = await _wait("the first sync", proc, first_sync)
        assert run.trigger == "demo" and run.records > 0
        async with db.session() as session:
            connectors = {c.name: c for c in (await session.exec(select(Connector))).all()}
            locations = (await session.exec(select(Location))).all()
        assert {"Lightspeed R (sandbox)", "Twilio (sandbox)"} <= set(connectors)
        assert connectors["Lightspeed R (sandbox)"].state == "ok"
        assert len(locations) == 2 and all(loc.timezone != "UTC" for loc in locations)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"http://127.0.0.1:{port}/admin" in out and "demo@clasp.local / demo-password-123" in out
    assert "sandbox:   lightspeed-r at http://127.0.0.1:" in out and "authorized through OAuth" in out
    assert "/_sandbox/shops" in out and "Ctrl-C" in out
    assert "Lightspeed R (sandbox): synced" in out
