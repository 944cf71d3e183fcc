"""What every command shares: settings, loaded plugins, the runtime, and the acting OS user.

Settings and plugins are loaded once, before the command line is parsed (plugins may add commands).
A failure there is remembered rather than raised, so ``clasp --help`` and the ``db`` commands still
work; a command that needs the broken piece reports it then, in one line.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db import Database
from core.plugins import Plugins
from core.runtime import Runtime, create_runtime
from core.settings import Settings

T = TypeVar("T")


class CliError(click.ClickException):
    """A problem the person at the keyboard can fix; shown as one line, exit status 1."""


@dataclass
class CliState:
    settings_value: Settings | None = None
    settings_error: str | None = None
    plugins_value: Plugins | None = None
    plugins_error: str | None = None
    debug: bool = False

    @property
    def settings(self) -> Settings:
        if self.settings_value is None:
            raise CliError(self.settings_error or "settings are not loaded")
        return self.settings_value

    @property
    def plugins(self) -> Plugins:
        if self.plugins_value is None:
            raise CliError(self.plugins_error or "plugins are not loaded")
        return self.plugins_value


def get_state() -> CliState:
    return click.get_current_context().find_object(CliState) or CliState()


pass_state = click.make_pass_decorator(CliState, ensure=True)


def actor() -> str:
    """The audit actor for changes made from the command line."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (some containers): still say it came from the CLI
        user = "unknown"
    return f"cli:{user}"


def is_embedded_database(settings: Settings) -> bool:
    # Only the embedded SQLite file upgrades itself: a shared server is upgraded on purpose, once,
    # by whoever deploys, never by whichever process happens to start first.
    return not settings.database_url


def safe_database_url(settings: Settings) -> str:
    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


async def check_database(db: Database) -> None:
    """Fail with one clear line when the database cannot be reached."""
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        text_ = str(getattr(exc, "orig", None) or exc).strip()
        reason = text_.splitlines()[0] if text_ else type(exc).__name__
        raise CliError(f"cannot reach the database at {safe_database_url(db.settings)}: {reason}") from exc


async def ensure_schema(db: Database) -> None:
    from core import migrate

    embedded = is_embedded_database(db.settings)
    before = await migrate.current(db) if embedded else None
    try:
        await migrate.ensure_up_to_date(db, auto_upgrade=embedded)
    except migrate.SchemaOutOfDate as exc:
        raise CliError(str(exc)) from None
    if embedded and before != migrate.head_revision():
        click.echo(f"Upgraded the embedded database schema {before or 'base'} → {migrate.head_revision()}.", err=True)


@asynccontextmanager
async def open_runtime(state: CliState, *, check_schema: bool = True) -> AsyncIterator[Runtime]:
    """A runtime on a reachable, up-to-date database; closed (with any Redis pool) on exit."""
    rt = create_runtime(state.settings, plugins=state.plugins)
    try:
        await check_database(rt.db)
        if check_schema:
            await ensure_schema(rt.db)
        yield rt
    finally:
        if rt.redis is not None:
            await rt.redis.aclose()
            rt.redis = None
        await rt.close()


def run_with_runtime(fn: Callable[[Runtime], Awaitable[T]], *, check_schema: bool = True) -> T:
    """Run ``fn(rt)`` in a fresh event loop with a runtime for this command."""
    state = get_state()

    async def go() -> T:
        async with open_runtime(state, check_schema=check_schema) as rt:
            return await fn(rt)

    return asyncio.run(go())


def run_with_database(fn: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``fn(db)`` with a bare database (no plugins needed): the ``db`` commands."""
    state = get_state()

    async def go() -> T:
        db = Database(state.settings)
        try:
            await check_database(db)
            return await fn(db)
        finally:
            await db.dispose()

    return asyncio.run(go())


def parse_pairs(values: tuple[str, ...] | list[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` pairs from a repeated option; a malformed one is a one-line error."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"{option} expects KEY=VALUE, got {item!r}")
        if key in out:
            raise CliError(f"{option} {key} is given twice")
        out[key] = value
    return out


def json_default(value: Any) -> Any:
    """For json.dumps of rows holding datetimes and dates."""
    from datetime import date, datetime

    from core.export import iso_date, iso_datetime

    if isinstance(value, datetime):
        return iso_datetime(value)
    if isinstance(value, date):
        return iso_date(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
