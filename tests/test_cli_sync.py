"""`clasp sync` and `clasp errors` against the testpos plugin reading the fake POS over real HTTP."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from sqlmodel import select

from core.models import AuditLog, Sale, SyncError, SyncRun
from core.runtime import Runtime
from tests.testpos.fake import FakePOS
from tests.testpos.fixtures import PLUGIN_MODULE, add_testpos, fake_pos, fake_pos_server, pos_rt  # noqa: F401


@pytest.fixture
def cli(clasp_cli, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`clasp` with the testpos plugin installed (through the CLASP_PLUGINS allow-list)."""
    monkeypatch.setenv("CLASP_PLUGINS", PLUGIN_MODULE)
    return clasp_cli


def failed_cleanly(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr + proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    return last


def bad_amount_sale(pos: FakePOS) -> dict[str, Any]:
    sale = pos.get_record("sales", "T2")
    line = {**sale["lines"][0], "id": "TBAD-L1", "unit_price": "1,299.00", "total": "1,299.00"}
    return pos.put("sales", {**sale, "id": "TBAD", "lines": [line], "subtotal": "1,299.00", "total": "1,299.00"})


async def test_sync_then_fix_and_replay_errors(cli, pos_rt: Runtime, fake_pos: FakePOS) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    fake_pos.generate(customers=12, sales=8)
    bad_amount_sale(fake_pos)
    cid = await add_testpos(pos_rt, fake_pos)

    proc = cli("sync", "Test POS")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    async with pos_rt.db.session() as s:
        [run] = (await s.exec(select(SyncRun))).all()
        assert run.status == "succeeded" and run.trigger == "cli" and run.errors == 1
        assert len((await s.exec(select(Sale))).all()) == 8
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "sync.trigger"))).one()
        assert audit.target_id == str(cid) and audit.actor.startswith("cli:")
    # The summary names the run, its totals and each stream.
    assert f"run {run.id}) succeeded" in proc.stdout
    assert f"{run.records:,} records" in proc.stdout
    for stream in ("shops", "customers", "sales"):
        assert stream in proc.stdout

    listed = json.loads(cli("errors", "list", "--json", "--connector", "Test POS").stdout)
    assert [(e["connector"], e["stream"], e["external_id"], e["state"]) for e in listed] == [
        ("Test POS", "sales", "TBAD", "open")
    ]
    error_id = listed[0]["id"]

    # Replaying before the fix fails the same way, in one line, and keeps the error open.
    proc = cli("errors", "replay", str(error_id))
    assert "still fail" in failed_cleanly(proc)
    assert "not a decimal number" in proc.stdout

    # The fix is a setting; then every open error of the connector replays.
    assert cli("connector", "set", "Test POS", "--set", "lenient_amounts=true").returncode == 0
    proc = cli("errors", "replay", "--all", "--connector", "Test POS")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Replayed 1 error" in proc.stdout
    async with pos_rt.db.session() as s:
        error = await s.get(SyncError, error_id)
        assert error is not None and error.state == "replayed"
        assert len((await s.exec(select(Sale))).all()) == 9


async def test_sync_failures_exit_non_zero(cli, pos_rt: Runtime, fake_pos: FakePOS) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert "Nowhere" in failed_cleanly(cli("sync", "Nowhere"))
    fake_pos.generate(customers=3, sales=2)
    await add_testpos(pos_rt, fake_pos, api_key="not-the-key")
    proc = cli("sync", "Test POS", "--full")
    line = failed_cleanly(proc)
    assert "failed" in line and "API key" in line
    async with pos_rt.db.session() as s:
        [run] = (await s.exec(select(SyncRun))).all()
        assert run.status == "failed" and run.full is True
    assert f"run {run.id}) failed" in proc.stdout
    assert cli("connector", "disable", "Test POS").returncode == 0
    assert "disabled" in failed_cleanly(cli("sync", "Test POS"))
