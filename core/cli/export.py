"""``clasp export``: stream clients, sales or outreach as JSON lines or CSV (see core.export)."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import IO

import click

from core.cli.state import CliError, run_with_runtime
from core.runtime import Runtime


@click.command()
@click.argument("what", type=click.Choice(["clients", "sales", "outreach"]))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to FILE (replaced only when the export completes) instead of standard output.",
)
def export(what: str, fmt: str, output: Path | None) -> None:
    """Export WHAT (clients, sales or outreach) as JSON lines or CSV.

    clients: unified clients (merged-away duplicates excluded) with normalised emails and phones,
    locations, external references, completed-sales count and lifetime value. sales: every sale with
    location, associate and lines (returns have negative quantities). CSV cells holding lists or
    objects are JSON.
    """
    from core.export import EXPORTERS, FIELDS, to_csv_row, to_json_line

    exporter, fields = EXPORTERS[what], FIELDS[what]
    partial = output.with_name(output.name + ".part") if output else None

    async def go(rt: Runtime) -> int:
        count = 0
        fh: IO[str]
        fh = open(partial, "w", newline="", encoding="utf-8") if partial else sys.stdout  # noqa: ASYNC230
        try:
            writer = csv.writer(fh) if fmt == "csv" else None
            if writer is not None:
                writer.writerow(fields)
            async with rt.db.session() as session:
                async for row in exporter(session):
                    if writer is not None:
                        writer.writerow(to_csv_row(row, fields))
                    else:
                        fh.write(to_json_line(row) + "\n")
                    count += 1
            fh.flush()
        finally:
            if partial:
                fh.close()
        return count

    try:
        count = run_with_runtime(go)
    except BrokenPipeError:
        # `clasp export ... | head` closed the pipe: not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return
    except BaseException:
        if partial and partial.exists():
            partial.unlink()
        raise
    if output and partial:
        try:
            os.replace(partial, output)
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc}") from None
        click.echo(f"Exported {count:,} {what} to {output}.", err=True)
