"""partial index on refunded lines

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 05:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only refund lines have a parent: a partial index skips the NULL entry every other line paid for.
    with op.batch_alter_table('sale_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sale_line_parent_line_id'))
        batch_op.create_index('ix_sale_line_parent_line_id', ['parent_line_id'], unique=False,
                              postgresql_where=sa.text('parent_line_id IS NOT NULL'),
                              sqlite_where=sa.text('parent_line_id IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('sale_line', schema=None) as batch_op:
        batch_op.drop_index('ix_sale_line_parent_line_id')
        batch_op.create_index(batch_op.f('ix_sale_line_parent_line_id'), ['parent_line_id'], unique=False)
