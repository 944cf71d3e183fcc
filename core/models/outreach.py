"""Outreach (the outbox and conversation log), Today tasks, automations and attribution credit."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.base import IdType, fk, id_field, in_check, json_field, ts

OUTREACH_CHANNELS = ("sms", "mms", "email", "call")
OUTREACH_DIRECTIONS = ("outbound", "inbound")
OUTREACH_KINDS = ("marketing", "transactional")
# pending → sending → sent → delivered | undelivered | failed; skipped by a send rule; review when the
# provider's outcome is unknown (parked for a person, never blindly re-sent); received for inbound.
OUTREACH_STATES = (
    "pending",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "skipped",
    "review",
    "received",
)
TASK_STATES = ("open", "done", "snoozed", "cancelled")
TASK_KINDS = ("call", "text", "email", "visit", "other")
AUTOMATION_ACTIONS = ("send", "task")


class Outreach(SQLModel, table=True):
    __tablename__ = "outreach"
    __table_args__ = (
        CheckConstraint(in_check("channel", OUTREACH_CHANNELS), name="channel"),
        CheckConstraint(in_check("direction", OUTREACH_DIRECTIONS), name="direction"),
        CheckConstraint(in_check("kind", OUTREACH_KINDS), name="kind"),
        CheckConstraint(in_check("state", OUTREACH_STATES), name="state"),
        Index("ix_outreach_state_due", "state", "due_at"),
        Index("ix_outreach_client_created", "client_id", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = id_field()
    client_id: int | None = fk("client.id", nullable=True, ondelete="SET NULL", index=False)
    associate_id: int | None = fk("associate.id", nullable=True, ondelete="SET NULL")
    location_id: int | None = fk("location.id", nullable=True, ondelete="SET NULL")
    connector_id: int | None = fk("connector.id", nullable=True, ondelete="SET NULL")
    automation_id: int | None = fk("automation.id", nullable=True, ondelete="SET NULL")
    # The Today task this text carries out (sent from its "Text" action): queueing it completed the
    # task in the same transaction, and the unique key makes a second send of the same task impossible.
    task_id: int | None = Field(
        default=None,
        sa_column=Column(IdType, ForeignKey("task.id", ondelete="SET NULL"), nullable=True, unique=True),
    )
    channel: str = Field(default="sms", max_length=10)
    direction: str = Field(default="outbound", max_length=10)
    kind: str = Field(default="marketing", max_length=15)
    to_address: str | None = Field(default=None, max_length=320)
    from_address: str | None = Field(default=None, max_length=320)
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    media_urls: list[str] = json_field(default_factory=list)
    # client × automation × occasion (e.g. "birthday:2027"): an occasion fires at most once.
    occasion_key: str | None = Field(default=None, sa_column=Column(String(200), unique=True, nullable=True))
    state: str = Field(default="pending", max_length=12)
    state_reason: str | None = Field(default=None, max_length=500)
    provider_id: str | None = Field(default=None, max_length=100, index=True)
    provider_status: str | None = Field(default=None, max_length=40)
    error_code: str | None = Field(default=None, max_length=40)
    attempts: int = 0
    due_at: datetime = ts()
    claimed_at: datetime | None = ts(nullable=True, default_now=False)
    sent_at: datetime | None = ts(nullable=True, default_now=False)
    delivered_at: datetime | None = ts(nullable=True, default_now=False)
    read_at: datetime | None = ts(nullable=True, default_now=False)
    created_at: datetime = ts()
    updated_at: datetime = ts()


class Task(SQLModel, table=True):
    """A follow-up on an associate's Today page."""

    __tablename__ = "task"
    __table_args__ = (
        CheckConstraint(in_check("state", TASK_STATES), name="state"),
        CheckConstraint(in_check("kind", TASK_KINDS), name="kind"),
        Index("ix_task_associate_due", "associate_id", "state", "due_at"),
    )

    id: int | None = id_field()
    client_id: int | None = fk("client.id", nullable=True, ondelete="CASCADE", index=False)
    associate_id: int | None = fk("associate.id", nullable=True, ondelete="SET NULL", index=False)
    location_id: int | None = fk("location.id", nullable=True, ondelete="SET NULL")
    automation_id: int | None = fk("automation.id", nullable=True, ondelete="SET NULL")
    kind: str = Field(default="text", max_length=10)
    title: str = Field(max_length=300)
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    occasion_key: str | None = Field(default=None, sa_column=Column(String(200), unique=True, nullable=True))
    state: str = Field(default="open", max_length=10)
    due_at: datetime = ts()
    snoozed_until: datetime | None = ts(nullable=True, default_now=False)
    done_at: datetime | None = ts(nullable=True, default_now=False)
    created_at: datetime = ts()


class Automation(SQLModel, table=True):
    __tablename__ = "automation"
    __table_args__ = (CheckConstraint(in_check("action", AUTOMATION_ACTIONS), name="action"),)

    id: int | None = id_field()
    type: str = Field(max_length=100)
    name: str = Field(sa_column=Column(String(200), unique=True, nullable=False))
    # {"location_ids": null} means every location.
    scope: dict[str, Any] = json_field()
    settings: dict[str, Any] = json_field()
    template: str = Field(default="", sa_column=Column(Text, nullable=False))
    action: str = Field(default="task", max_length=10)
    enabled: bool = False
    created_at: datetime = ts()
    updated_at: datetime = ts()


class Attribution(SQLModel, table=True):
    """Credit for a sale given to one touch (a delivered text or a completed Today task) by one
    attribution model. A (sale, model) pair's rows are replaced together whenever the sale is
    recomputed; their weights sum to 1 and their ``revenue_minor`` to the sale's net revenue."""

    __tablename__ = "attribution"
    __table_args__ = (
        UniqueConstraint("sale_id", "model", "touch"),
        CheckConstraint("(outreach_id IS NULL) <> (task_id IS NULL)", name="one_touch"),
        Index("ix_attribution_model_sale_at", "model", "sale_at"),
        Index("ix_attribution_model_associate_sale_at", "model", "associate_id", "sale_at"),
    )

    id: int | None = id_field()
    sale_id: int = fk("sale.id", ondelete="CASCADE")
    model: str = Field(max_length=100)
    # "outreach:<id>" or "task:<id>": one key for either kind of touch, so uniqueness holds for both.
    touch: str = Field(max_length=40)
    outreach_id: int | None = fk("outreach.id", nullable=True, ondelete="CASCADE")
    task_id: int | None = fk("task.id", nullable=True, ondelete="CASCADE")
    client_id: int | None = fk("client.id", nullable=True, ondelete="SET NULL")
    associate_id: int | None = fk("associate.id", nullable=True, ondelete="SET NULL", index=False)
    outreach_location_id: int | None = fk("location.id", nullable=True, ondelete="SET NULL")
    sale_location_id: int | None = fk("location.id", nullable=True, ondelete="SET NULL")
    touch_at: datetime = ts()
    sale_at: datetime = ts()
    # The sale's calendar day where it was rung up: the leaderboard counts a client once per such day.
    sale_day: date = Field(sa_column=Column(Date, nullable=False))
    weight: float = 1.0
    # This credit's share of the sale's net revenue (pre-tax lines, less refunds of them).
    revenue_minor: int = 0
    currency: str = Field(min_length=3, max_length=3)
    computed_at: datetime = ts()
