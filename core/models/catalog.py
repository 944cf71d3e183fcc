"""Products and their images."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.base import fk, id_field, ts


class Product(SQLModel, table=True):
    __tablename__ = "product"

    id: int | None = id_field()
    sku: str | None = Field(default=None, max_length=120, index=True)
    name: str = Field(default="", max_length=300)
    vendor: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    price_minor: int | None = None
    currency: str | None = Field(default=None, max_length=3)
    # Flagged when the source has no usable image, so the panel can list items for a manual fix.
    image_missing: bool = False
    archived: bool = False
    created_at: datetime = ts()
    updated_at: datetime = ts()


class ProductImage(SQLModel, table=True):
    __tablename__ = "product_image"
    __table_args__ = (UniqueConstraint("product_id", "url"),)

    id: int | None = id_field()
    product_id: int = fk("product.id", ondelete="CASCADE")
    url: str = Field(max_length=2000)
    position: int = 0
