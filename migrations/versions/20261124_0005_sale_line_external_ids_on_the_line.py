"""sale line external ids on the line

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 08:20:00

A sale line's POS id moves from an ``external_ref`` row of type ``sale_line`` to two columns of the
line itself (``connector_id``, ``external_id``), unique together as the reference was. Existing
references are copied onto their lines and then deleted; the downgrade puts them back.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sale_line', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connector_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.add_column(sa.Column('external_id', sa.String(length=255), nullable=True))
    op.execute(
        "UPDATE sale_line SET connector_id = (SELECT r.connector_id FROM external_ref r"
        " WHERE r.object_type = 'sale_line' AND r.unified_id = sale_line.id),"
        " external_id = (SELECT r.external_id FROM external_ref r"
        " WHERE r.object_type = 'sale_line' AND r.unified_id = sale_line.id)"
        " WHERE EXISTS (SELECT 1 FROM external_ref r WHERE r.object_type = 'sale_line' AND r.unified_id = sale_line.id)"
    )
    op.execute("DELETE FROM external_ref WHERE object_type = 'sale_line'")
    with op.batch_alter_table('sale_line', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_sale_line_connector_id_external_id'),
                                          ['connector_id', 'external_id'])


def downgrade() -> None:
    op.execute(
        "INSERT INTO external_ref (connector_id, object_type, external_id, unified_id, payload_hash, synced_at)"
        " SELECT connector_id, 'sale_line', external_id, id, NULL, CURRENT_TIMESTAMP FROM sale_line"
        " WHERE connector_id IS NOT NULL AND external_id IS NOT NULL"
    )
    with op.batch_alter_table('sale_line', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_sale_line_connector_id_external_id'), type_='unique')
        batch_op.drop_column('external_id')
        batch_op.drop_column('connector_id')
