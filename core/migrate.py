"""Schema migrations (Alembic) driven from Clasp: upgrade, downgrade, current, and the start-up check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

import migrations
from core.db import Database


class SchemaOutOfDate(Exception):
    pass


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class ForeignKeyViolation(RuntimeError):
    pass


async def _with_connection(db: Database, fn, *args):  # type: ignore[no-untyped-def]
    if db.dialect != "sqlite":
        async with db.engine.begin() as conn:
            return await conn.run_sync(fn, *args)
    # SQLite alters a table by copying it into a new one and dropping the old (Alembic's batch mode).
    # With foreign keys on, that DROP fires every ON DELETE CASCADE / SET NULL pointing at the table:
    # rebuilding `client` would delete every contact and unlink every sale. SQLite's documented
    # procedure is to switch them off outside the transaction, migrate, then check them.
    async with db.engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            result = await conn.run_sync(fn, *args)
            broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).fetchall()
            if broken:
                raise ForeignKeyViolation(f"the migration left rows pointing at nothing: {broken[:10]}")
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
        finally:
            # Outside any transaction again (a PRAGMA inside one is a no-op), so the pooled
            # connection goes back with foreign keys enforced.
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        return result


def _upgrade(conn: Connection, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def _downgrade(conn: Connection, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, target)


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def upgrade(db: Database, target: str = "head") -> None:
    await _with_connection(db, _upgrade, target)


async def downgrade(db: Database, target: str = "-1") -> None:
    await _with_connection(db, _downgrade, target)


async def current(db: Database) -> str | None:
    return await _with_connection(db, _current)


async def ensure_up_to_date(db: Database, *, auto_upgrade: bool = False) -> None:
    """Refuse to run on an out-of-date schema; the embedded default may upgrade itself."""
    have, want = await current(db), head_revision()
    if have == want:
        return
    if auto_upgrade:
        await upgrade(db)
        return
    raise SchemaOutOfDate(
        f"the database schema is at {have or 'nothing (empty database)'} but this Clasp needs {want}; "
        "run `clasp db upgrade` first"
    )
