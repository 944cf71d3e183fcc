"""indexes for scoped roles' queries

A manager's or associate's scope (core.access) reads "the clients who bought at these locations" from
the sales of those locations: (location_id, client_id) answers it from the index alone. Their sales
list is one location's sales newest first: (location_id, occurred_at) walks it in order instead of
sorting every sale of the store (the row id, last in every SQLite index entry and the list's tie-break,
keeps the order total).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 16:00:00
"""
from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_sale_location_client', 'sale', ['location_id', 'client_id'])
    op.create_index('ix_sale_location_occurred', 'sale', ['location_id', 'occurred_at'])


def downgrade() -> None:
    op.drop_index('ix_sale_location_occurred', table_name='sale')
    op.drop_index('ix_sale_location_client', table_name='sale')
