"""``clasp errors``: the error queue — records that could not be ingested, and replaying them."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlmodel import select

from core.cli.state import CliError, actor, run_with_runtime
from core.runtime import Runtime

STATES = ("open", "replayed", "dismissed", "all")


def _errors_module() -> Any:
    try:
        import core.errors as module
    except ImportError as exc:
        raise CliError(f"the error queue is not available in this installation ({exc})") from None
    return module


async def _connector_id(rt: Runtime, name: str | None) -> int | None:
    if name is None:
        return None
    from core.connectors import get_connector

    async with rt.db.session() as session:
        return (await get_connector(session, name)).id


@click.group()
def errors() -> None:
    """Inspect and replay the error queue (records a sync could not ingest)."""


@errors.command("list")
@click.option("--connector", "connector_name", metavar="NAME", help="Only this connector's errors.")
@click.option("--state", type=click.Choice(STATES), default="open", show_default=True)
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with payloads and context).")
def list_(connector_name: str | None, state: str, limit: int, as_json: bool) -> None:
    """List errors in the queue, newest first."""
    module = _errors_module()
    from core.export import iso_datetime
    from core.models import Connector

    async def go(rt: Runtime) -> list[dict[str, Any]]:
        connector_id = await _connector_id(rt, connector_name)
        async with rt.db.session() as session:
            rows = await module.list_errors(
                session, state=None if state == "all" else state, connector_id=connector_id, limit=limit
            )
            names = {c.id: c.name for c in (await session.exec(select(Connector))).all()}
        return [
            {
                "id": e.id,
                "connector": names.get(e.connector_id),
                "connector_id": e.connector_id,
                "stage": e.stage,
                "stream": e.stream,
                "external_id": e.external_id,
                "reason": e.reason,
                "state": e.state,
                "attempts": e.attempts,
                "run_id": e.run_id,
                "created_at": iso_datetime(e.created_at),
                "replayed_at": iso_datetime(e.replayed_at),
                "payload": e.payload,
                "context": e.context,
            }
            for e in rows
        ]

    rows = run_with_runtime(go)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
        return
    if not rows:
        click.echo(f"No {'' if state == 'all' else state + ' '}errors.")
        return
    table = Table("id", "connector", "stream", "external id", "state", "tries", "when", "reason", box=None)
    for r in rows:
        reason = (r["reason"] or "").splitlines()
        table.add_row(
            str(r["id"]),
            r["connector"] or "-",
            r["stream"] or r["stage"],
            r["external_id"] or "-",
            r["state"],
            str(r["attempts"]),
            r["created_at"] or "",
            reason[0] if reason else "",
        )
    Console(soft_wrap=True).print(table)


@errors.command()
@click.argument("error_id", required=False, type=int)
@click.option("--all", "replay_all", is_flag=True, help="Replay every open error (of --connector).")
@click.option("--connector", "connector_name", metavar="NAME", help="With --all: only this connector's errors.")
def replay(error_id: int | None, replay_all: bool, connector_name: str | None) -> None:
    """Re-run error ERROR_ID (or --all) through ingestion, after fixing its cause.

    A replay that succeeds marks the error replayed; it never creates a duplicate.
    """
    if (error_id is None) == (not replay_all):
        raise CliError("give either an error id or --all")
    if connector_name and not replay_all:
        raise CliError("--connector only goes with --all")
    module = _errors_module()
    from core import audit

    async def go(rt: Runtime) -> list[Any]:
        if replay_all:
            connector_id = await _connector_id(rt, connector_name)
            results = list(await module.replay_all(rt, connector_id=connector_id))
        else:
            results = [await module.replay_error(rt, error_id)]
        async with rt.db.transaction() as session:
            await audit.record(
                session,
                "errors.replay",
                actor=actor(),
                target_type="sync_error",
                target_id=error_id,
                details={
                    "all": replay_all,
                    "connector": connector_name,
                    "ok": [r.error_id for r in results if r.ok],
                    "failed": [r.error_id for r in results if not r.ok],
                },
            )
        return results

    results = run_with_runtime(go)
    if not results:
        click.echo("Nothing to replay.")
        return
    for r in results:
        detail = f" — {r.message}" if r.message else ""
        click.echo(f"{r.error_id}: {'replayed' if r.ok else 'still failing'}{detail}")
    failed = sum(1 for r in results if not r.ok)
    if failed:
        raise CliError(f"{failed} of {len(results)} error(s) still fail; fix the cause and replay again")
    click.echo(f"Replayed {len(results)} error(s).")


@errors.command()
@click.argument("error_ids", nargs=-1, required=True, type=int)
def dismiss(error_ids: tuple[int, ...]) -> None:
    """Close errors ERROR_IDS without replaying them (the records are not wanted)."""
    module = _errors_module()
    from core import audit

    async def go(rt: Runtime) -> list[int]:
        closed = []
        async with rt.db.transaction() as session:
            for error_id in error_ids:
                if await module.dismiss_error(session, error_id):
                    closed.append(error_id)
            await audit.record(
                session, "errors.dismiss", actor=actor(), target_type="sync_error", details={"ids": closed}
            )
        return closed

    closed = run_with_runtime(go)
    skipped = [i for i in error_ids if i not in closed]
    if closed:
        click.echo(f"Dismissed {', '.join(map(str, closed))}.")
    if skipped:
        raise CliError(f"not open (or no such error): {', '.join(map(str, skipped))}")
