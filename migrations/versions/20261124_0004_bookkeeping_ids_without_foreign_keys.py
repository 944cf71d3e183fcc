"""bookkeeping ids without foreign keys

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 08:00:29

``external_ref.connector_id`` and ``change_feed.origin_connector_id`` are written with every ingested
record, and PostgreSQL checked their foreign keys row by row: about a fifth of its work per sale.
Removing a connector now deletes its references itself (``core.connectors.remove_connector``); feed
rows keep the id of the connector they came from.
"""
from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('change_feed', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_change_feed_origin_connector_id_connector'), type_='foreignkey')

    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_external_ref_connector_id_connector'), type_='foreignkey')


def downgrade() -> None:
    # What the foreign keys would have done to rows of connectors removed since.
    op.execute("DELETE FROM external_ref WHERE connector_id NOT IN (SELECT id FROM connector)")
    op.execute("UPDATE change_feed SET origin_connector_id = NULL"
               " WHERE origin_connector_id IS NOT NULL AND origin_connector_id NOT IN (SELECT id FROM connector)")
    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_external_ref_connector_id_connector'), 'connector',
                                    ['connector_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('change_feed', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_change_feed_origin_connector_id_connector'), 'connector',
                                    ['origin_connector_id'], ['id'], ondelete='SET NULL')
