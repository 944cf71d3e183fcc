"""Today and conversations: the outreach row a Today task's text became

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 16:00:00

``outreach.task_id`` links a text sent from a Today task's "Text" action to that task: queueing it
completes the task in the same transaction, and the unique key means one task sends one text.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('outreach', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task_id', ID, nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_outreach_task_id_task'), 'task', ['task_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_unique_constraint(batch_op.f('uq_outreach_task_id'), ['task_id'])


def downgrade() -> None:
    with op.batch_alter_table('outreach', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_outreach_task_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_outreach_task_id_task'), type_='foreignkey')
        batch_op.drop_column('task_id')
