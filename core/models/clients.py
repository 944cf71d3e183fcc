"""The unified client (golden record), its contacts, consent ledger and external references."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.base import fk, id_field, in_check, json_field, ref_id, ts

CONTACT_KINDS = ("email", "phone")
# Consent is kept per channel (``mail`` is post: catalogs, lookbooks) and purpose: ``marketing``
# (promotions, automations, newsletters: needs an explicit opt-in) or ``transactional`` (repair ready,
# order updates, replies in a conversation: sent unless the client opted out).
CONSENT_CHANNELS = ("sms", "email", "call", "mail")
CONSENT_PURPOSES = ("marketing", "transactional")
CONSENT_STATUSES = ("opted_in", "opted_out", "unknown")
# Where a ledger row's evidence came from. ``provider``: the messaging provider refused a number
# (it saw a STOP we did not); ``legacy``: rows written before the ledger had a source kind.
CONSENT_SOURCE_KINDS = ("pos_flag", "in_store", "web_form", "keyword", "import", "provider", "legacy")
HOME_LOCATION_SOURCES = ("pos", "derived", "manual")
OBJECT_TYPES = ("location", "associate", "client", "product", "sale", "sale_line", "outreach")


class Client(SQLModel, table=True):
    """One person across every location: the survivor of identity resolution."""

    __tablename__ = "client"
    # Never reuse a deleted client's id on SQLite: integrations key on it.
    __table_args__ = (
        CheckConstraint(in_check("home_location_source", HOME_LOCATION_SOURCES), name="home_location_source"),
        # The panel's alphabetical book. On PostgreSQL migration 0011 rebuilds it with INCLUDE
        # (name_key, ...) for the search's walk; the stored name_key column and the trigram and
        # unaccent indexes are PostgreSQL-only, kept in migrations 0008 and 0011.
        Index("ix_client_name_order", "last_name", "first_name", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = id_field()
    first_name: str = Field(default="", max_length=200)
    last_name: str = Field(default="", max_length=200)
    birthday: date | None = None
    anniversary: date | None = None
    address: dict[str, Any] = json_field()
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    custom_fields: dict[str, Any] = json_field()
    # Jewelry preferences and sizes kept in Clasp ({"ring_size": "6.5", "metal": "Yellow gold", ...});
    # POS custom fields fill what is absent here, an edit in Clasp wins.
    preferences: dict[str, Any] = json_field()
    tags: list[str] = json_field(default_factory=list)
    home_location_id: int | None = fk("location.id", nullable=True, ondelete="SET NULL")
    # Where home_location_id came from: "pos" (the POS names one), "derived" (core's rule over the
    # client's sales), "manual" (a person chose it; never recomputed). Null: no home store yet.
    home_location_source: str | None = Field(default=None, max_length=10)
    owner_associate_id: int | None = fk("associate.id", nullable=True, ondelete="SET NULL")
    # Set on a client absorbed by a merge; the row stays so an unmerge can restore it exactly.
    merged_into_id: int | None = fk("client.id", nullable=True)
    # Per-field provenance for survivorship: {"first_name": {"source": "connector:3", "at": "..."}}.
    provenance: dict[str, Any] = json_field()
    archived: bool = False
    created_at: datetime = ts()
    updated_at: datetime = ts()


class ClientContact(SQLModel, table=True):
    """One email address or phone number of a client, normalised (lower-case email, E.164 phone)."""

    __tablename__ = "client_contact"
    __table_args__ = (
        CheckConstraint(in_check("kind", CONTACT_KINDS), name="kind"),
        UniqueConstraint("client_id", "kind", "value"),
        Index("ix_client_contact_kind_value", "kind", "value"),
    )

    id: int | None = id_field()
    client_id: int = fk("client.id", ondelete="CASCADE")
    kind: str = Field(max_length=10)
    value: str = Field(max_length=320)
    raw: str | None = Field(default=None, max_length=320)
    label: str | None = Field(default=None, max_length=40)
    is_primary: bool = False
    # Set when the messaging provider says the number cannot receive texts (e.g. Twilio 21211).
    unusable: bool = False
    source_connector_id: int | None = fk("connector.id", nullable=True, ondelete="SET NULL")
    created_at: datetime = ts()


class ExternalRef(SQLModel, table=True):
    """Binds a record in an external system to its unified row: (connector, type, external id) → id."""

    __tablename__ = "external_ref"
    __table_args__ = (
        CheckConstraint(in_check("object_type", OBJECT_TYPES), name="object_type"),
        UniqueConstraint("connector_id", "object_type", "external_id"),
        Index("ix_external_ref_unified", "object_type", "unified_id"),
    )

    id: int | None = id_field()
    # No foreign key: see ref_id. The unique key below starts with it, so a connector's refs are found fast.
    connector_id: int = ref_id()
    object_type: str = Field(max_length=20)
    external_id: str = Field(sa_column=Column(String(255), nullable=False))
    unified_id: int
    # Hash of the last payload seen, so unchanged records are not re-resolved.
    payload_hash: str | None = Field(default=None, max_length=64)
    remote_updated_at: datetime | None = ts(nullable=True, default_now=False)
    synced_at: datetime = ts()


class Consent(SQLModel, table=True):
    """Append-only consent ledger, one row per event and (channel, purpose).

    The current status is the latest row, with two guards (``core.outreach.consent.resolve``): a STOP
    (``keyword``/``provider`` opt-out) is lifted only by the client texting START again, and a POS
    opt-in does not lift an opt-out a person recorded unless its connector's policy said it may
    (``overrides_opt_out``).
    """

    __tablename__ = "consent"
    __table_args__ = (
        CheckConstraint(in_check("channel", CONSENT_CHANNELS), name="channel"),
        CheckConstraint(in_check("status", CONSENT_STATUSES), name="status"),
        CheckConstraint(in_check("purpose", CONSENT_PURPOSES), name="purpose"),
        CheckConstraint(in_check("source_kind", CONSENT_SOURCE_KINDS), name="source_kind"),
        Index("ix_consent_client_channel_purpose", "client_id", "channel", "purpose", "recorded_at"),
        Index("ix_consent_connector_client", "connector_id", "client_id"),
    )

    id: int | None = id_field()
    client_id: int = fk("client.id", ondelete="CASCADE", index=False)
    channel: str = Field(max_length=10)
    purpose: str = Field(default="marketing", max_length=20)
    status: str = Field(max_length=12)
    source_kind: str = Field(default="legacy", max_length=20)
    # Detail of the source: "Lightspeed noEmail", "sms:STOP", "import:optins.csv:12", a form name.
    source: str = Field(max_length=100)
    # A user's email, "connector:N" or "system".
    recorded_by: str = Field(default="system", max_length=320)
    # The exact words the client saw or said when consenting (or the POS policy's stated wording).
    wording: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    connector_id: int | None = fk("connector.id", nullable=True, ondelete="SET NULL", index=False)
    # Set on POS evidence whose connector policy lets an opt-in lift an opt-out recorded by a person.
    overrides_opt_out: bool = Field(default=False)
    note: str | None = Field(default=None, max_length=500)
    recorded_at: datetime = ts()


class ClientMerge(SQLModel, table=True):
    """A merge of one client into another, with a snapshot that lets an unmerge restore exactly."""

    __tablename__ = "client_merge"

    id: int | None = id_field()
    survivor_id: int = fk("client.id", ondelete="CASCADE")
    absorbed_id: int = fk("client.id", ondelete="CASCADE")
    # "rule:email", "rule:phone", "manual:user:3", ...
    reason: str = Field(max_length=200)
    # Everything the merge changed: both clients' fields, moved contacts/refs/sales/outreach ids.
    snapshot: dict[str, Any] = json_field()
    actor: str = Field(default="system", max_length=320)
    created_at: datetime = ts()
    undone_at: datetime | None = ts(nullable=True, default_now=False)
