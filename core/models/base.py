"""Column types and helpers shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, ForeignKey, Integer, MetaData, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# Named constraints make Alembic migrations deterministic, and batch mode on SQLite needs them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

# BIGINT ids on PostgreSQL; SQLite only auto-increments an "INTEGER PRIMARY KEY".
IdType = BigInteger().with_variant(Integer(), "sqlite")
JsonType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every backend.

    SQLite has no timezone type, so values come back naive; this puts UTC back. Naive datetimes are
    refused on the way in: a naive time is a bug (whose local time was it?).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Clasp stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def id_field() -> Any:
    return Field(default=None, sa_column=Column(IdType, primary_key=True, autoincrement=True))


def fk(target: str, *, nullable: bool = False, ondelete: str | None = None, index: bool = True) -> Any:
    """A foreign key column typed like the ids it points at."""
    return Field(
        default=None,
        sa_column=Column(IdType, ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index),
    )


def ref_id(*, nullable: bool = False) -> Any:
    """An id column that points at another table's row without a foreign key.

    For bookkeeping columns written with every ingested record (``external_ref.connector_id``,
    ``sale_line.connector_id``, ``change_feed.origin_connector_id``): PostgreSQL checks a foreign key
    row by row, and these checks were a fifth of the server's work per ingested sale. The writers hold
    the connector's row lock while they write (the sync lease), so the row cannot vanish under them,
    and removing a connector deletes its references itself (``core.connectors.remove_connector``).
    """
    return Field(default=None, sa_column=Column(IdType, nullable=nullable))


def ts(*, nullable: bool = False, index: bool = False, default_now: bool = True) -> Any:
    if default_now:
        return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def json_field(*, default_factory: Any = dict, nullable: bool = False) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JsonType, nullable=nullable))


def in_check(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"
