"""Database engine and sessions (async SQLAlchemy 2 over aiosqlite or asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings, get_settings


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets the web process read while the worker writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    _sqlite_functions(dbapi_connection)


def _sqlite_functions(dbapi_connection) -> None:  # type: ignore[no-untyped-def]
    """SQL functions PostgreSQL has (or gets from migration 0008) that client search relies on.

    Deterministic, so SQLite may use them anywhere an expression may appear. No index is built on
    them: a SQLite file must stay writable by tools that do not register them.
    """
    from core.search import fold, name_key

    dbapi_connection.create_function("clasp_fold", 1, fold, deterministic=True)
    dbapi_connection.create_function("clasp_name_key", 2, name_key, deterministic=True)
    dbapi_connection.create_function("reverse", 1, _reverse, deterministic=True)


def _reverse(value: str | None) -> str | None:
    return value[::-1] if value is not None else None


def create_engine(settings: Settings | None = None, **kwargs: object) -> AsyncEngine:
    settings = settings or get_settings()
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        settings.ensure_data_dir()
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)  # type: ignore[arg-type]
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, pool_pre_ping=True, **kwargs)  # type: ignore[arg-type]
    return engine


class Database:
    """One engine and session factory per process; passed around, never a module global."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.engine = create_engine(self.settings)
        self.sessionmaker = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on exit, or rolls back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
