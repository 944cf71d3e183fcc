"""attribution credit rows

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 05:02:11.399025
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.models.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nothing wrote attribution rows before this revision, so the NOT NULL columns need no backfill.
    with op.batch_alter_table('attribution', schema=None) as batch_op:
        batch_op.add_column(sa.Column('touch', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False))
        batch_op.add_column(sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('touch_at', core.models.base.UTCDateTime(timezone=True), nullable=False))
        batch_op.add_column(sa.Column('sale_at', core.models.base.UTCDateTime(timezone=True), nullable=False))
        batch_op.add_column(sa.Column('sale_day', sa.Date(), nullable=False))
        batch_op.drop_index(batch_op.f('ix_attribution_associate_id'))
        batch_op.drop_constraint(batch_op.f('uq_attribution_sale_id_model_outreach_id'), type_='unique')
        batch_op.create_index(batch_op.f('ix_attribution_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_attribution_model_associate_sale_at', ['model', 'associate_id', 'sale_at'], unique=False)
        batch_op.create_index('ix_attribution_model_sale_at', ['model', 'sale_at'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_attribution_sale_id_model_touch'), ['sale_id', 'model', 'touch'])
        batch_op.create_foreign_key(batch_op.f('fk_attribution_client_id_client'), 'client', ['client_id'], ['id'], ondelete='SET NULL')
        batch_op.create_check_constraint(op.f('ck_attribution_one_touch'), '(outreach_id IS NULL) <> (task_id IS NULL)')


def downgrade() -> None:
    with op.batch_alter_table('attribution', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_attribution_one_touch'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_attribution_client_id_client'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_attribution_sale_id_model_touch'), type_='unique')
        batch_op.drop_index('ix_attribution_model_sale_at')
        batch_op.drop_index('ix_attribution_model_associate_sale_at')
        batch_op.drop_index(batch_op.f('ix_attribution_client_id'))
        batch_op.create_unique_constraint(batch_op.f('uq_attribution_sale_id_model_outreach_id'), ['sale_id', 'model', 'outreach_id'])
        batch_op.create_index(batch_op.f('ix_attribution_associate_id'), ['associate_id'], unique=False)
        batch_op.drop_column('sale_day')
        batch_op.drop_column('sale_at')
        batch_op.drop_column('touch_at')
        batch_op.drop_column('client_id')
        batch_op.drop_column('touch')
