"""Sales and sale lines. Money is integer minor units with the sale's ISO currency."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, Index, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.models.base import fk, id_field, in_check, ref_id, ts

SALE_CHANNELS = ("store", "ecom")
# Only "completed" counts as revenue; layaways and quotes are open commitments, voids never happened.
SALE_STATUSES = ("completed", "voided", "layaway", "quote", "open")


class Sale(SQLModel, table=True):
    __tablename__ = "sale"
    __table_args__ = (
        CheckConstraint(in_check("channel", SALE_CHANNELS), name="channel"),
        CheckConstraint(in_check("status", SALE_STATUSES), name="status"),
        Index("ix_sale_client_occurred", "client_id", "occurred_at"),
        # A store's clients answered from the index alone (core.access scopes), and its sales newest first.
        Index("ix_sale_location_client", "location_id", "client_id"),
        Index("ix_sale_location_occurred", "location_id", "occurred_at"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = id_field()
    location_id: int = fk("location.id")
    associate_id: int | None = fk("associate.id", nullable=True, ondelete="SET NULL")
    # Null for walk-in sales with no customer attached.
    client_id: int | None = fk("client.id", nullable=True, ondelete="SET NULL", index=False)
    channel: str = Field(default="store", max_length=10)
    status: str = Field(max_length=12)
    currency: str = Field(min_length=3, max_length=3)
    subtotal_minor: int = 0
    tax_minor: int = 0
    total_minor: int = 0
    occurred_at: datetime = ts(index=True)
    created_at: datetime = ts()
    updated_at: datetime = ts()


class SaleLine(SQLModel, table=True):
    __tablename__ = "sale_line"
    __table_args__ = (
        # Almost every line refunds nothing: index only the ones that do. The self-referencing foreign
        # key's ON DELETE SET NULL lookup (parent_line_id = $1) still uses it, and each ingested line
        # no longer pays for an entry of NULL.
        Index("ix_sale_line_parent_line_id", "parent_line_id",
              postgresql_where=text("parent_line_id IS NOT NULL"), sqlite_where=text("parent_line_id IS NOT NULL")),
        # A line's id in its POS, unique per connector like an external reference (a refund names the
        # line it returns by it). Kept on the line rather than in external_ref: two fewer rows, six
        # fewer index entries and two fewer round trips per ingested sale.
        UniqueConstraint("connector_id", "external_id"),
    )

    id: int | None = id_field()
    sale_id: int = fk("sale.id", ondelete="CASCADE")
    product_id: int | None = fk("product.id", nullable=True, ondelete="SET NULL")
    sku: str | None = Field(default=None, max_length=120)
    name: str = Field(default="", max_length=300)
    # Negative for returned pieces; a return line points at the line it refunds.
    quantity: int = 1
    unit_price_minor: int = 0
    total_minor: int = 0
    parent_line_id: int | None = fk("sale_line.id", nullable=True, ondelete="SET NULL", index=False)
    # The connector the line came from (no foreign key, see ref_id) and its id there; both null for a
    # line that came from no connector.
    connector_id: int | None = ref_id(nullable=True)
    external_id: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
