"""Locations, associates, panel users and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, LargeBinary, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.base import fk, id_field, in_check, json_field, ts

OUTREACH_MODES = ("own", "store")
ROLES = ("owner", "manager", "associate")


class Location(SQLModel, table=True):
    """A store (or web shop). Its timezone drives local rules such as birthdays and quiet hours."""

    __tablename__ = "location"
    __table_args__ = (CheckConstraint(in_check("outreach_mode", OUTREACH_MODES), name="outreach_mode"),)

    id: int | None = id_field()
    name: str = Field(max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    currency: str = Field(default="USD", min_length=3, max_length=3)
    country: str = Field(default="US", min_length=2, max_length=2)
    # "own": associates see their own clients; "store": the whole store book is communal.
    outreach_mode: str = Field(default="own", max_length=10)
    quiet_hours_start: str = Field(default="09:00", max_length=5)
    quiet_hours_end: str = Field(default="20:00", max_length=5)
    phone: str | None = Field(default=None, max_length=32)
    active: bool = True
    created_at: datetime = ts()
    updated_at: datetime = ts()


class Associate(SQLModel, table=True):
    """A salesperson at a location, as known to the POS (an employee) or created in Clasp."""

    __tablename__ = "associate"

    id: int | None = id_field()
    location_id: int | None = fk("location.id", nullable=True)
    first_name: str = Field(default="", max_length=120)
    last_name: str = Field(default="", max_length=120)
    email: str | None = Field(default=None, max_length=320)
    active: bool = True
    created_at: datetime = ts()
    updated_at: datetime = ts()


class User(SQLModel, table=True):
    """Someone who signs in to the admin panel or owns API tokens."""

    __tablename__ = "user_account"
    __table_args__ = (CheckConstraint(in_check("role", ROLES), name="role"),)

    id: int | None = id_field()
    email: str = Field(sa_column=Column(String(320), unique=True, nullable=False))
    name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=20)
    # An associate user sees the clients of this associate record (their own book).
    associate_id: int | None = fk("associate.id", nullable=True, ondelete="SET NULL")
    active: bool = True
    created_at: datetime = ts()
    last_login_at: datetime | None = ts(nullable=True, default_now=False)


class UserLocation(SQLModel, table=True):
    """The locations a manager or associate is scoped to (owners see everything)."""

    __tablename__ = "user_location"
    __table_args__ = (UniqueConstraint("user_id", "location_id"),)

    id: int | None = id_field()
    user_id: int = fk("user_account.id", ondelete="CASCADE")
    location_id: int = fk("location.id", ondelete="CASCADE")


class ApiToken(SQLModel, table=True):
    """A bearer token for the JSON API; it acts with its user's role and location scope."""

    __tablename__ = "api_token"

    id: int | None = id_field()
    user_id: int = fk("user_account.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    # Only a hash is stored; the prefix lets a person recognise a token in lists.
    token_hash: str = Field(sa_column=Column(String(128), unique=True, nullable=False))
    prefix: str = Field(max_length=16)
    scopes: list[str] = json_field(default_factory=list)
    created_at: datetime = ts()
    last_used_at: datetime | None = ts(nullable=True, default_now=False)
    revoked_at: datetime | None = ts(nullable=True, default_now=False)


class WebSession(SQLModel, table=True):
    """Server-side admin sessions live in the database so every web process sees them."""

    __tablename__ = "web_session"

    key: str = Field(sa_column=Column(String(128), primary_key=True))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    expires_at: datetime | None = ts(nullable=True, index=True, default_now=False)
