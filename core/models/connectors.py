"""Connectors, their checkpoints, sync runs and the error queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.base import fk, id_field, in_check, json_field, ts

CONNECTOR_KINDS = ("pos", "messaging", "catalog", "crm")
CONNECTOR_STATES = ("new", "ok", "error", "needs_auth")
SYNC_RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")
SYNC_ERROR_STATES = ("open", "replayed", "dismissed")


class Connector(SQLModel, table=True):
    """A configured instance of a plugin's connector type (e.g. "Downtown Lightspeed")."""

    __tablename__ = "connector"
    __table_args__ = (
        CheckConstraint(in_check("kind", CONNECTOR_KINDS), name="kind"),
        CheckConstraint(in_check("state", CONNECTOR_STATES), name="state"),
    )

    id: int | None = id_field()
    type: str = Field(max_length=100)
    kind: str = Field(max_length=12)
    name: str = Field(sa_column=Column(String(200), unique=True, nullable=False))
    # Plain settings; secret fields live only in `secrets`, Fernet-encrypted.
    settings: dict[str, Any] = json_field()
    secrets: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    enabled: bool = True
    state: str = Field(default="new", max_length=12)
    state_message: str | None = Field(default=None, max_length=1000)
    # A sync run holds this lease; it keeps two workers from syncing one connector at once.
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = ts(nullable=True, default_now=False)
    next_sync_at: datetime | None = ts(nullable=True, default_now=False)
    last_success_at: datetime | None = ts(nullable=True, default_now=False)
    created_at: datetime = ts()
    updated_at: datetime = ts()


class Checkpoint(SQLModel, table=True):
    """Per-stream sync state, written in the same transaction as the records before it."""

    __tablename__ = "checkpoint"
    __table_args__ = (UniqueConstraint("connector_id", "stream"),)

    id: int | None = id_field()
    connector_id: int = fk("connector.id", ondelete="CASCADE", index=False)
    stream: str = Field(max_length=100)
    state: dict[str, Any] = json_field()
    updated_at: datetime = ts()


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_run"
    __table_args__ = (
        CheckConstraint(in_check("status", SYNC_RUN_STATUSES), name="status"),
        Index("ix_sync_run_connector_started", "connector_id", "started_at"),
    )

    id: int | None = id_field()
    connector_id: int = fk("connector.id", ondelete="CASCADE", index=False)
    full: bool = False
    trigger: str = Field(default="schedule", max_length=40)
    status: str = Field(default="running", max_length=12)
    stream: str | None = Field(default=None, max_length=100)
    records: int = 0
    pages: int = 0
    errors: int = 0
    # Progress of a backfill between 0 and 1 when the stream can estimate it.
    progress: float | None = None
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Per-stream counts: {"clients": {"records": 120, "pages": 2, "errors": 0}, ...}.
    stats: dict[str, Any] = json_field()
    started_at: datetime = ts()
    heartbeat_at: datetime = ts()
    finished_at: datetime | None = ts(nullable=True, default_now=False)


class SyncError(SQLModel, table=True):
    """The error queue: a record that could not be ingested, with everything needed to replay it."""

    __tablename__ = "sync_error"
    __table_args__ = (
        CheckConstraint(in_check("state", SYNC_ERROR_STATES), name="state"),
        Index("ix_sync_error_state", "state", "created_at"),
    )

    id: int | None = id_field()
    connector_id: int | None = fk("connector.id", nullable=True, ondelete="CASCADE")
    stage: str = Field(default="sync", max_length=40)
    stream: str | None = Field(default=None, max_length=100)
    external_id: str | None = Field(default=None, max_length=255)
    payload: Any = json_field(default_factory=dict)
    context: dict[str, Any] = json_field()
    reason: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default="open", max_length=12)
    attempts: int = 1
    run_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = ts()
    replayed_at: datetime | None = ts(nullable=True, default_now=False)
