"""``clasp sync NAME``: run one connector's sync in the foreground, with live progress."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.cli.state import CliError, actor, run_with_runtime
from core.runtime import Runtime


def _counts(records: int, pages: int, errors: int) -> str:
    return f"{records:>9,} records {pages:>6,} pages {errors:>5,} errors"


class ProgressView:
    """A run-wide bar (a real one once the streams can estimate their progress) and a row per stream.

    The engine reports run totals after every committed page; a stream's own counts are the totals
    minus what the run had when that stream began.
    """

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description:<20}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.overall: TaskID | None = None
        self.streams: dict[str, tuple[TaskID, tuple[int, int, int]]] = {}
        self.last = (0, 0, 0)

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            for task_id in [self.overall, *(t for t, _ in self.streams.values())]:
                if task_id is not None:
                    self.progress.update(task_id, total=1, completed=1)
        self.progress.stop()

    def update(self, event: Any) -> None:
        totals = (int(event.records), int(event.pages), int(event.errors))
        if self.overall is None:
            self.overall = self.progress.add_task("all streams", total=None, counts="")
        stream = event.stream or "sync"
        if stream not in self.streams:
            for task_id, _ in self.streams.values():  # streams run one after another
                self.progress.update(task_id, total=1, completed=1)
            self.streams[stream] = (self.progress.add_task(f"  {stream}", total=None, counts=""), self.last)
        task_id, base = self.streams[stream]
        own = [t - b for t, b in zip(totals, base, strict=True)]
        self.progress.update(task_id, counts=_counts(*own))
        done, total = getattr(event, "streams_done", 0), getattr(event, "streams_total", 0)
        label = f"stream {min(done + 1, total)}/{total}" if total else "all streams"
        if event.progress is not None:
            fraction = max(0.0, min(1.0, float(event.progress)))
            self.progress.update(self.overall, total=1.0, completed=fraction)
        self.progress.update(self.overall, description=label, counts=_counts(*totals))
        self.last = totals


def print_summary(console: Console, run: Any, connector_name: str) -> None:
    started, finished = getattr(run, "started_at", None), getattr(run, "finished_at", None)
    took = f" in {(finished - started).total_seconds():.1f}s" if started and finished else ""
    console.print(
        f"Sync of {connector_name!r} (run {run.id}) {run.status}{took}: "
        f"{run.records:,} records, {run.pages:,} pages, {run.errors:,} errors."
    )
    stats = getattr(run, "stats", None) or {}
    if stats:
        table = Table("stream", "records", "pages", "errors", box=None)
        for stream, s in stats.items():
            s = s if isinstance(s, dict) else {}
            table.add_row(stream, f"{s.get('records', 0):,}", f"{s.get('pages', 0):,}", f"{s.get('errors', 0):,}")
        console.print(table)
    if run.message:
        console.print(f"message: {run.message}", markup=False)
    if run.errors:
        console.print(f"Errors went to the error queue: `clasp errors list --connector {connector_name}`.")


def print_push_summary(console: Console, report: Any, connector_name: str) -> None:
    console.print(
        f"Push of {connector_name!r} (run {report.run_id}) {report.status}: {sum(report.pushed.values()):,} records "
        f"{dict(report.pushed)}, {report.errors:,} errors, {report.skipped:,} skipped."
    )
    if report.usage.get("api_limit"):
        console.print(f"API usage {report.usage['api_usage']:,}/{report.usage['api_limit']:,}")
    if report.message:
        console.print(f"message: {report.message}", markup=False)
    if report.errors:
        console.print(f"Errors went to the error queue: `clasp errors list --connector {connector_name}`.")
    # Near the daily API limit a push stops early on purpose; that is a success, not a failure.
    if report.status != "succeeded" and not report.usage.get("throttled"):
        reason = f": {report.message}" if report.message else ""
        raise CliError(f"push of {connector_name!r} {report.status}{reason}")


@click.command()
@click.argument("name")
@click.option("--full", is_flag=True, help="Backfill from the beginning of the history window, not the checkpoint.")
def sync(name: str, full: bool) -> None:
    """Sync connector NAME now, in the foreground. Exit status 0 only if the run succeeded."""
    from core import audit
    from core.connectors import get_connector

    try:
        from core.sync import SyncBusy, SyncFailed, SyncRefused, run_sync
    except ImportError as exc:  # the sync engine is a separate part; say so plainly if it is missing
        raise CliError(f"the sync engine is not available in this installation ({exc})") from None

    out = Console(soft_wrap=True)
    err = Console(stderr=True)

    async def go(rt: Runtime) -> tuple[Any, str]:
        async with rt.db.transaction() as session:
            row = await get_connector(session, name)
            if row.type not in rt.registry.connector_types:
                raise CliError(f"connector {row.name!r} has type {row.type!r}, which no installed plugin provides")
            await audit.record(
                session,
                "sync.trigger",
                actor=actor(),
                target_type="connector",
                target_id=row.id,
                details={"name": row.name, "full": full, "trigger": "cli"},
            )
            connector_id, connector_name, connector_kind = row.id, row.name, row.kind
        assert connector_id is not None
        if connector_kind == "crm":
            # A CRM connector has nothing to pull: its "sync" is the push of the change feed to it.
            from core.crm import CrmRefused, run_push

            with ProgressView(err) as view:
                try:
                    report = await run_push(rt, connector_id, full=full, trigger="cli", on_progress=view.update)
                except CrmRefused as exc:
                    raise CliError(str(exc)) from None
            return report, connector_name
        with ProgressView(err) as view:
            try:
                run = await run_sync(rt, connector_id, full=full, trigger="cli", on_progress=view.update)
            except (SyncBusy, SyncRefused) as exc:
                raise CliError(str(exc)) from None
            except SyncFailed as exc:
                failed = getattr(exc, "run", None) or (exc.args[0] if exc.args else None)
                if failed is not None and hasattr(failed, "status"):
                    return failed, connector_name
                raise CliError(f"sync of {connector_name!r} failed: {exc}") from None
        return run, connector_name

    run, connector_name = run_with_runtime(go)
    if hasattr(run, "pushed"):  # a CRM push: core.crm.PushReport
        print_push_summary(out, run, connector_name)
        return
    print_summary(out, run, connector_name)
    if run.status != "succeeded":
        reason = (run.message or "").strip().splitlines()
        raise CliError(f"sync of {connector_name!r} {run.status}" + (f": {reason[0]}" if reason else ""))
    sys.stdout.flush()
