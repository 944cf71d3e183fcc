"""The change feed, its consumers' checkpoints, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, String
from sqlmodel import Field, SQLModel

from core.models.base import fk, id_field, in_check, json_field, ref_id, ts

FEED_OPS = ("insert", "update", "delete", "merge", "unmerge")


class ChangeFeed(SQLModel, table=True):
    """Every change to a unified record appends one row; consumers read it in id order."""

    __tablename__ = "change_feed"
    __table_args__ = (
        CheckConstraint(in_check("op", FEED_OPS), name="op"),
        Index("ix_change_feed_entity", "entity", "entity_id"),
    )

    id: int | None = id_field()
    entity: str = Field(max_length=40)
    entity_id: int
    op: str = Field(max_length=10)
    # Changed fields with their new values.
    changes: dict[str, Any] = json_field()
    # Who made the change: "connector:<id>", "user:<id>", "api:<token id>", "system".
    origin: str = Field(max_length=100)
    # Set when the change came from a connector: that connector's writeback must not echo it back.
    # No foreign key (see ref_id): the feed is history, and a removed connector's id is never reused,
    # so its rows keep saying where they came from instead of turning into edits of unknown origin.
    origin_connector_id: int | None = ref_id(nullable=True)
    created_at: datetime = ts()


class FeedConsumer(SQLModel, table=True):
    """A change-feed consumer's checkpoint (writeback, CRM push, automations, attribution, ...)."""

    __tablename__ = "feed_consumer"

    id: int | None = id_field()
    name: str = Field(sa_column=Column(String(200), unique=True, nullable=False))
    position: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    updated_at: datetime = ts()


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_at", "action", "at"),)

    id: int | None = id_field()
    at: datetime = ts(index=True)
    actor_user_id: int | None = fk("user_account.id", nullable=True, ondelete="SET NULL", index=False)
    actor: str = Field(default="system", max_length=320)
    action: str = Field(max_length=100)
    target_type: str | None = Field(default=None, max_length=40)
    target_id: str | None = Field(default=None, max_length=100)
    details: dict[str, Any] = json_field()
    ip: str | None = Field(default=None, max_length=64)
