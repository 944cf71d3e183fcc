"""A benchmark's own PostgreSQL database on this machine's server, at the schema's head."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from core import migrate
from core.db import Database
from core.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432"


async def bench_database(dbname: str, data_dir: str, *, keep: bool) -> tuple[Settings, bool]:
    """Settings for database ``dbname``, created and migrated afresh unless ``keep`` and it exists;
    returns them and whether it existed (so its generated data can be reused)."""
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        exists = bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname))
        if exists and not keep:
            await admin.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
            exists = False
        if not exists:
            await admin.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await admin.close()
    settings = Settings(database_url=f"{PG}/{dbname}", data_dir=Path(data_dir), redis_url="redis://127.0.0.1:6379/14")
    if not exists:
        db = Database(settings)
        await migrate.upgrade(db)
        await db.dispose()
    return settings, exists
