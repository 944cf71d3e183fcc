"""``clasp consent``: the consent ledger from the command line (importing an existing opt-in list)."""

from __future__ import annotations

from pathlib import Path

import click

from core.cli.state import CliError, run_with_runtime
from core.runtime import Runtime


@click.group()
def consent() -> None:
    """The consent ledger: import an existing opt-in list."""


@consent.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check and match every row; write nothing.")
@click.option("--region", default="US", show_default=True, help="Country for phone numbers without a country code.")
@click.option("--by", "recorded_by", default="import", show_default=True,
              help="Who recorded it, kept on each row (e.g. your email).")
def import_(file: Path, dry_run: bool, region: str, recorded_by: str) -> None:
    """Import opt-ins (and opt-outs) from FILE.csv.

    Columns: email and/or phone, channel (sms, email, call, mail), purpose (marketing,
    transactional), status (opted_in/opted_out, yes/no), recorded_at (ISO), wording, source.
    Rows that cannot be used are listed with their line numbers and skipped; importing the same
    file twice records nothing new. Exit status 1 when any row had a problem.
    """
    from core.outreach.consent_import import ImportReport, import_csv

    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {file}: {exc}") from None

    async def go(rt: Runtime) -> ImportReport:
        if dry_run:
            async with rt.db.session() as session:
                return await import_csv(session, text, filename=file.name, recorded_by=recorded_by,
                                        region=region.upper(), dry_run=True)
        async with rt.db.transaction() as session:
            return await import_csv(session, text, filename=file.name, recorded_by=recorded_by, region=region.upper())

    report = run_with_runtime(go)
    for line, problem in report.problems:
        click.echo(f"line {line}: {problem}", err=True)
    click.echo(("Dry run: " if dry_run else "") + report.summary(dry_run=dry_run) + ".")
    if report.problems:
        raise SystemExit(1)
