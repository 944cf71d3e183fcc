"""client profile: preferences, tags, and where the home store came from

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:00:00

``client.preferences`` (sizes and tastes kept in Clasp), ``client.tags`` and
``client.home_location_source`` ("pos", "derived" or "manual"). Home stores that exist already came
from a POS or from a person; they are marked "pos" so the derivation rule fills only the empty ones.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preferences', JSON, nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('tags', JSON, nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('home_location_source', sa.String(length=10), nullable=True))
        batch_op.create_check_constraint(
            'home_location_source', "home_location_source IN ('pos', 'derived', 'manual')")
    op.execute("UPDATE client SET home_location_source = 'pos' WHERE home_location_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_constraint('home_location_source', type_='check')
        batch_op.drop_column('home_location_source')
        batch_op.drop_column('tags')
        batch_op.drop_column('preferences')
