"""``clasp outbox``: the outreach outbox — what is queued, parked or sent, and sending it now."""

from __future__ import annotations

import json
from typing import Any

import click

from core.cli.state import CliError, json_default, run_with_runtime
from core.models.outreach import OUTREACH_STATES
from core.runtime import Runtime


@click.group()
def outbox() -> None:
    """Inspect and send the outreach outbox (texts waiting, sent, skipped or parked for review)."""


@outbox.command("list")
@click.option("--state", type=click.Choice(OUTREACH_STATES), help="Only messages in this state.")
@click.option("--client", "client_id", type=int, help="Only this client's messages.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def list_(state: str | None, client_id: int | None, limit: int, as_json: bool) -> None:
    """List outbox and conversation messages, newest first."""
    from core.outreach.outbox import list_outreach

    async def go(rt: Runtime) -> list[dict[str, Any]]:
        async with rt.db.session() as session:
            rows = await list_outreach(session, state=state, client_id=client_id, limit=limit)
        return [r.model_dump() for r in rows]

    rows = run_with_runtime(go)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=json_default, sort_keys=True))
        return
    if not rows:
        click.echo("No messages." if state is None else f"No {state} messages.")
        return
    for r in rows:
        who = r["to_address"] if r["direction"] == "outbound" else r["from_address"]
        arrow = "→" if r["direction"] == "outbound" else "←"
        when = (r["sent_at"] or r["due_at"]).strftime("%Y-%m-%d %H:%M")
        body = r["body"].replace("\n", " ")
        body = body if len(body) <= 50 else body[:49] + "…"
        client = r["client_id"] or "-"
        head = f"{r['id']:>6}  {r['state']:<11} {r['kind'][:5]:<5} {arrow} {who or '-':<16}"
        click.echo(f"{head} client {client:<6} {when}  {body}")
        if r["state_reason"]:
            click.echo(f"{'':8}{r['state_reason']}")


@outbox.command()
@click.option("--limit", type=click.IntRange(1, 100_000), help="Send at most this many (default: all that are due).")
def flush(limit: int | None) -> None:
    """Send what is due now, in the foreground, with the same rules as the worker.

    Rows stuck in "sending" (a worker died mid-send) are first looked up at the provider and
    recorded, or parked in "review"; nothing is sent twice.
    """
    from core.outreach.sender import flush as flush_outbox

    report = run_with_runtime(lambda rt: flush_outbox(rt, limit=limit))
    click.echo(f"Outbox: {report}.")
    if report.review:
        click.echo(f"{len(report.review)} message(s) need review: `clasp outbox list --state review`.", err=True)


@outbox.command()
@click.argument("outreach_ids", nargs=-1, type=int, required=True)
def requeue(outreach_ids: tuple[int, ...]) -> None:
    """Queue parked messages (review, failed, skipped, undelivered) to be sent again.

    For a "review" message, first check the provider's log: requeueing one the provider did
    send texts the client twice.
    """
    from core.outreach.outbox import OutboxError
    from core.outreach.outbox import requeue as requeue_row

    async def go(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            for oid in outreach_ids:
                try:
                    await requeue_row(session, oid)
                except OutboxError as exc:
                    raise CliError(str(exc)) from None

    run_with_runtime(go)
    click.echo(f"Requeued {len(outreach_ids)} message(s).")
