"""No duplicate text when the sender dies at any step of a send.

The sender runs in a real subprocess that exits abruptly (``os._exit``: no cleanup, no commit) at
each crash point of ``core.outreach.sender``, selected by ``CLASP_OUTBOX_CRASH_AT``. Then the sender
runs again. The sandbox must have received each message exactly once, or the row must be parked in
``review`` with the sandbox having received nothing for it — never twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from core.models import Outreach
from core.outreach.outbox import enqueue
from core.outreach.sender import CRASH_ENV, CRASH_EXIT, CRASH_POINTS, flush
from core.runtime import Runtime
from tests.twilio.fixtures import (
    Sandbox,
    add_twilio,
    build_world,
    closed_port_url,
    serve_clasp,
    serve_sandbox,
    wait_for,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sandbox():
    with serve_sandbox() as server:
        yield server


def run_sender(crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "tests.twilio.flush_once"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


async def queue_two(rt: Runtime, client_ids: list[int]) -> list[int]:
    async with rt.db.transaction() as s:
        rows = [
            await enqueue(s, client_id=cid, body=f"Pickup reminder {cid}", kind="transactional") for cid in client_ids
        ]
    return [r.id for r in rows]  # type: ignore[misc]


async def get(rt: Runtime, oid: int) -> Outreach:
    async with rt.db.session() as s:
        found = await s.get(Outreach, oid)
        assert found is not None
        return found


@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_a_killed_sender_never_sends_twice(
    rt: Runtime, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    base_url = closed_port_url()  # no webhooks: recovery must come from the sender itself
    monkeypatch.setenv("CLASP_BASE_URL", base_url)
    rt.settings.base_url = base_url
    world = await build_world(rt)
    await add_twilio(rt, sandbox)
    first, second = await queue_two(rt, [world.clients["ann"], world.clients["ben"]])

    crashed = run_sender(point)
    assert crashed.returncode == CRASH_EXIT, crashed.stderr[-2000:]
    # The sender claims one row at a time: only the first row can be in doubt, the second is untouched.
    assert (await get(rt, second)).state == "pending"
    in_doubt = await get(rt, first)
    expected_sent_before = point in ("after_send", "recorded")
    if point == "claiming":
        assert in_doubt.state == "pending" and in_doubt.claimed_at is None  # the claim rolled back
    assert len(sandbox.messages(to=world.phones["ann"])) == (1 if expected_sent_before else 0)

    # Another sender comes along after the claim has gone stale.
    report = await flush(rt, stale_after=timedelta(0))
    again = run_sender(None)
    assert again.returncode == 0, again.stderr[-2000:]

    ann_msgs = sandbox.messages(to=world.phones["ann"])
    final = await get(rt, first)
    if point == "claiming":
        assert report.sent == [first, second] and final.state == "sent"
        assert len(ann_msgs) == 1 and final.provider_id == ann_msgs[0]["sid"]
    elif point == "recorded":
        assert in_doubt.state == "sent" and final.state == "sent" and report.reconciled == []
        assert len(ann_msgs) == 1 and final.provider_id == ann_msgs[0]["sid"]
    elif point == "after_send":
        # Twilio accepted it; the lookup finds it and the row is adopted, not re-sent.
        assert in_doubt.state == "sending" and in_doubt.provider_id is None
        assert report.reconciled == [first] and final.state in ("sent", "delivered")
        assert len(ann_msgs) == 1 and final.provider_id == ann_msgs[0]["sid"]
        assert "recovered" in (final.state_reason or "")
    else:
        # Died before Twilio saw it: nobody can be sure of that from the database alone, so it is
        # parked for a person — and was not sent.
        assert in_doubt.state == "sending"
        assert report.review == [first] and final.state == "review"
        assert ann_msgs == []
        assert "requeue" in (final.state_reason or "")
    # Either way the other message went out exactly once.
    assert len(sandbox.messages(to=world.phones["ben"])) == 1
    assert (await get(rt, second)).state == "sent"


async def test_a_status_callback_adopts_a_row_whose_sender_died(rt: Runtime, sandbox: Sandbox) -> None:
    with serve_clasp(rt) as clasp:
        os.environ["CLASP_BASE_URL"] = clasp.url
        try:
            world = await build_world(rt)
            await add_twilio(rt, sandbox)
            first, _second = await queue_two(rt, [world.clients["ann"], world.clients["ben"]])
            crashed = run_sender("after_send")
            assert crashed.returncode == CRASH_EXIT, crashed.stderr[-2000:]
            # No reconcile has run: Twilio's signed callback carries ?outreach=<id> and settles the row.
            adopted = await wait_for(lambda: _delivered(rt, first))
            msgs = sandbox.messages(to=world.phones["ann"])
            assert len(msgs) == 1 and adopted.provider_id == msgs[0]["sid"]
            report = await flush(rt, stale_after=timedelta(0))
            assert first not in report.review + report.reconciled
            assert len(sandbox.messages(to=world.phones["ann"])) == 1
        finally:
            os.environ.pop("CLASP_BASE_URL", None)


async def _delivered(rt: Runtime, oid: int) -> Outreach | None:
    found = await get(rt, oid)
    return found if found.state == "delivered" else None


async def test_concurrent_senders_send_each_message_once(
    rt: Runtime, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    base_url = closed_port_url()
    monkeypatch.setenv("CLASP_BASE_URL", base_url)
    world = await build_world(rt)
    await add_twilio(rt, sandbox)
    clients = [world.clients[k] for k in ("ann", "ben", "cleo", "dan")] * 4
    async with rt.db.transaction() as s:
        ids = [
            (await enqueue(s, client_id=c, body=f"Note {i}", kind="transactional")).id for i, c in enumerate(clients)
        ]
    runs = await asyncio.gather(*(asyncio.to_thread(run_sender, None) for _ in range(3)))
    assert all(r.returncode == 0 for r in runs), [r.stderr[-1000:] for r in runs]
    bodies = sorted(m["body"] for m in sandbox.messages(direction="outbound-api"))
    assert bodies == sorted(f"Note {i}" for i in range(len(ids)))
    async with rt.db.session() as s:
        states = {(await s.get(Outreach, oid)).state for oid in ids}  # type: ignore[union-attr]
    assert states <= {"sent", "delivered"}
