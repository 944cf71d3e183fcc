"""consent ledger: purpose, source kind, who recorded it and the wording shown

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 16:00:00

Every consent row gains a purpose (``marketing``/``transactional``), a source kind, who recorded it,
the wording shown, and the connector that supplied it; ``mail`` (post) joins the channels.

Backfill: until now one row per channel governed every text, and the only writers were STOP/START
keywords (``source`` ``sms:WORD``) and the provider refusing an unsubscribed number (``connector:N:…``).
Existing rows become ``marketing`` rows of kind ``keyword``/``provider`` (else ``legacy``), and each
opt-out is copied as a ``transactional`` opt-out too, since it stopped every text before. The
downgrade drops what the old schema cannot hold (transactional and ``mail`` rows).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OLD_CHANNELS = "channel IN ('sms', 'email', 'call')"
NEW_CHANNELS = "channel IN ('sms', 'email', 'call', 'mail')"
PURPOSES = "purpose IN ('marketing', 'transactional')"
SOURCE_KINDS = "source_kind IN ('pos_flag', 'in_store', 'web_form', 'keyword', 'import', 'provider', 'legacy')"


def upgrade() -> None:
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=20), nullable=False, server_default='marketing'))
        batch_op.add_column(sa.Column('source_kind', sa.String(length=20), nullable=False, server_default='legacy'))
        batch_op.add_column(sa.Column('recorded_by', sa.String(length=320), nullable=False, server_default='system'))
        batch_op.add_column(sa.Column('wording', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('connector_id', ID, nullable=True))
        batch_op.add_column(sa.Column('overrides_opt_out', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE consent SET source_kind = 'keyword', wording = substr(source, 5) WHERE source LIKE 'sms:%'")
    op.execute("UPDATE consent SET source_kind = 'provider' WHERE source LIKE 'connector:%'")
    op.execute(
        "INSERT INTO consent (client_id, channel, purpose, status, source_kind, source, recorded_by, wording,"
        " overrides_opt_out, note, recorded_at)"
        " SELECT client_id, channel, 'transactional', status, source_kind, source, recorded_by, wording,"
        " overrides_opt_out, note, recorded_at FROM consent WHERE status = 'opted_out' AND purpose = 'marketing'"
    )
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_client_channel')
        batch_op.drop_constraint(batch_op.f('ck_consent_channel'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_consent_channel'), NEW_CHANNELS)
        batch_op.create_check_constraint(batch_op.f('ck_consent_purpose'), PURPOSES)
        batch_op.create_check_constraint(batch_op.f('ck_consent_source_kind'), SOURCE_KINDS)
        batch_op.create_foreign_key(batch_op.f('fk_consent_connector_id_connector'), 'connector',
                                    ['connector_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_consent_client_channel_purpose', ['client_id', 'channel', 'purpose', 'recorded_at'],
                              unique=False)
        batch_op.create_index('ix_consent_connector_client', ['connector_id', 'client_id'], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM consent WHERE purpose <> 'marketing' OR channel = 'mail'")
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_connector_client')
        batch_op.drop_index('ix_consent_client_channel_purpose')
        batch_op.drop_constraint(batch_op.f('fk_consent_connector_id_connector'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('ck_consent_source_kind'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_consent_purpose'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_consent_channel'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_consent_channel'), OLD_CHANNELS)
        batch_op.drop_column('overrides_opt_out')
        batch_op.drop_column('connector_id')
        batch_op.drop_column('wording')
        batch_op.drop_column('recorded_by')
        batch_op.drop_column('source_kind')
        batch_op.drop_column('purpose')
        batch_op.create_index('ix_consent_client_channel', ['client_id', 'channel', 'recorded_at'], unique=False)
