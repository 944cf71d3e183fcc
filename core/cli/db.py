"""``clasp db``: schema migrations (Alembic, driven through core.migrate)."""

from __future__ import annotations

import click

from core.cli.state import CliError, run_with_database, safe_database_url
from core.db import Database


def _describe_target(target: str) -> str:
    return "an empty database (every table dropped)" if target == "base" else target


@click.group()
def db() -> None:
    """Database schema: upgrade, downgrade, show the current revision."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the schema to REVISION (default: head, the latest)."""
    from core import migrate

    async def go(database: Database) -> tuple[str | None, str | None]:
        before = await migrate.current(database)
        await migrate.upgrade(database, revision)
        return before, await migrate.current(database)

    before, after = _run_migration(go)
    if before == after:
        click.echo(f"Already at {after or 'base'}.")
    else:
        click.echo(f"Upgraded {before or 'base'} → {after or 'base'}.")


@db.command()
@click.argument("revision", default="-1")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def downgrade(revision: str, yes: bool) -> None:
    """Downgrade the schema to REVISION (default: -1, one step back; `base` drops every table).

    A downgrade can drop tables and the data in them: back up the database first.
    """
    from core import migrate

    if not yes:
        click.confirm(
            f"Downgrade the schema to {_describe_target(revision)}? Tables and their data may be dropped",
            abort=True,
            err=True,
        )

    async def go(database: Database) -> tuple[str | None, str | None]:
        before = await migrate.current(database)
        await migrate.downgrade(database, revision)
        return before, await migrate.current(database)

    before, after = _run_migration(go)
    if before == after:
        click.echo(f"Already at {after or 'base'}.")
    else:
        click.echo(f"Downgraded {before or 'base'} → {after or 'base'}.")


@db.command()
def current() -> None:
    """Show the schema revision of the database and whether it is up to date."""
    from core import migrate

    async def go(database: Database) -> tuple[str | None, str]:
        return await migrate.current(database), safe_database_url(database.settings)

    have, url = run_with_database(go)
    want = migrate.head_revision()
    status = "up to date" if have == want else f"out of date: this Clasp needs {want}; run `clasp db upgrade`"
    click.echo(f"{have or 'base (empty)'} ({status})")
    click.echo(f"database: {url}")


def _run_migration(fn):  # type: ignore[no-untyped-def]
    from alembic.util import CommandError

    try:
        return run_with_database(fn)
    except CommandError as exc:
        # Alembic's message names the bad revision ("Can't locate revision identified by 'x'").
        raise CliError(str(exc).strip().splitlines()[0]) from None
