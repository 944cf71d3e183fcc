"""`clasp outbox list|flush|requeue` in a real subprocess, and the worker jobs on a real arq worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from arq.worker import Worker, func

from core.jobs import redis_pool
from core.models import Outreach
from core.outreach.jobs import kick, outbox_tick, send_outbox
from core.outreach.outbox import enqueue
from core.redis import redis_settings
from core.runtime import Runtime
from tests.twilio.fixtures import Sandbox, add_twilio, build_world, closed_port_url, serve_sandbox

ROOT = Path(__file__).resolve().parent.parent
# The CLI helper registers the group in core/cli; until then the test adds it the same way.
CLI = (
    "import sys; from core.cli import cli, main; from core.cli.outbox import outbox; "
    "cli.add_command(outbox); main(sys.argv[1:])"
)


@pytest.fixture
def sandbox():
    with serve_sandbox() as server:
        yield server


def clasp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], capture_output=True, text=True, env={**os.environ}, cwd=ROOT, timeout=120
    )


async def test_outbox_list_flush_and_requeue(rt: Runtime, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASP_BASE_URL", closed_port_url())
    world = await build_world(rt)
    await add_twilio(rt, sandbox)
    async with rt.db.transaction() as s:
        ready = await enqueue(s, client_id=world.clients["ann"], body="Your ring is ready", kind="transactional")
        promo = await enqueue(s, client_id=world.clients["dan"], body="Big sale", kind="marketing")
    listed = clasp("outbox", "list", "--state", "pending")
    assert listed.returncode == 0, listed.stderr
    assert f"{ready.id:>6}  pending" in listed.stdout and "Big sale" in listed.stdout
    flushed = clasp("outbox", "flush")
    assert flushed.returncode == 0, flushed.stderr
    assert "1 sent" in flushed.stdout and "1 skipped" in flushed.stdout
    assert [m["body"] for m in sandbox.messages(direction="outbound-api")] == ["Your ring is ready"]
    skipped = clasp("outbox", "list", "--state", "skipped")
    assert "Big sale" in skipped.stdout and "no marketing consent" in skipped.stdout
    assert "Your ring is ready" not in skipped.stdout
    bad = clasp("outbox", "list", "--state", "bogus")
    assert bad.returncode != 0 and "bogus" in bad.stderr
    requeued = clasp("outbox", "requeue", str(promo.id))
    assert requeued.returncode == 0 and "Requeued 1" in requeued.stdout
    refused = clasp("outbox", "requeue", str(ready.id))
    assert refused.returncode == 1 and "only review, failed" in refused.stderr
    async with rt.db.session() as s:
        assert (await s.get(Outreach, promo.id)).state == "pending"  # type: ignore[union-attr]


async def test_kick_queues_one_send_job_and_the_worker_sends(rt: Runtime, sandbox: Sandbox) -> None:
    rt.settings.base_url = closed_port_url()
    world = await build_world(rt)
    await add_twilio(rt, sandbox)
    async with rt.db.transaction() as s:
        row = await enqueue(s, client_id=world.clients["ann"], body="Sent by the worker", kind="transactional")
    await redis_pool(rt)
    assert await kick(rt) is True
    assert await kick(rt) is False  # already queued: one job, not two
    worker = Worker(
        functions=[func(send_outbox, name="send_outbox", keep_result=0)],
        redis_settings=redis_settings(rt.settings),
        queue_name=rt.settings.queue_name,
        ctx={"clasp": rt},
        burst=True,
        handle_signals=False,
        keep_result=0,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert [m["body"] for m in sandbox.messages(direction="outbound-api")] == ["Sent by the worker"]
    async with rt.db.session() as s:
        assert (await s.get(Outreach, row.id)).state == "sent"  # type: ignore[union-attr]
    # The cron tick re-derives due work from the database alone (no Redis job needed).
    async with rt.db.transaction() as s:
        await enqueue(s, client_id=world.clients["ben"], body="Sent by the tick", kind="transactional")
    summary = await outbox_tick({"clasp": rt})
    assert summary["sent"] == 1
    assert len(sandbox.messages(direction="outbound-api")) == 2
