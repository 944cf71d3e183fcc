"""unified schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 02:03:12.450493
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql
import core.models.base

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_setting',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_app_setting'))
    )
    op.create_table('automation',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scope', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('template', sa.Text(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('send', 'task')", name=op.f('ck_automation_action')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_automation')),
    sa.UniqueConstraint('name', name=op.f('uq_automation_name'))
    )
    op.create_table('connector',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('secrets', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('state_message', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('lease_expires_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_sync_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('pos', 'messaging', 'catalog', 'crm')", name=op.f('ck_connector_kind')),
    sa.CheckConstraint("state IN ('new', 'ok', 'error', 'needs_auth')", name=op.f('ck_connector_state')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector')),
    sa.UniqueConstraint('name', name=op.f('uq_connector_name'))
    )
    op.create_table('feed_consumer',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_consumer')),
    sa.UniqueConstraint('name', name=op.f('uq_feed_consumer_name'))
    )
    op.create_table('location',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('outreach_mode', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('quiet_hours_start', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('quiet_hours_end', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("outreach_mode IN ('own', 'store')", name=op.f('ck_location_outreach_mode')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_location'))
    )
    op.create_table('product',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sku', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('vendor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('price_minor', sa.Integer(), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
    sa.Column('image_missing', sa.Boolean(), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product'))
    )
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_product_sku'), ['sku'], unique=False)

    op.create_table('web_session',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('expires_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_web_session'))
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_expires_at'), ['expires_at'], unique=False)

    op.create_table('associate',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('first_name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('last_name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_associate_location_id_location')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_associate'))
    )
    with op.batch_alter_table('associate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_associate_location_id'), ['location_id'], unique=False)

    op.create_table('change_feed',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=False),
    sa.Column('op', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('changes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('origin_connector_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("op IN ('insert', 'update', 'delete', 'merge', 'unmerge')", name=op.f('ck_change_feed_op')),
    sa.ForeignKeyConstraint(['origin_connector_id'], ['connector.id'], name=op.f('fk_change_feed_origin_connector_id_connector'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_feed'))
    )
    with op.batch_alter_table('change_feed', schema=None) as batch_op:
        batch_op.create_index('ix_change_feed_entity', ['entity', 'entity_id'], unique=False)

    op.create_table('checkpoint',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('connector_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stream', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('state', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connector_id'], ['connector.id'], name=op.f('fk_checkpoint_connector_id_connector'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoint')),
    sa.UniqueConstraint('connector_id', 'stream', name=op.f('uq_checkpoint_connector_id_stream'))
    )
    op.create_table('external_ref',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('connector_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('object_type', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('unified_id', sa.Integer(), nullable=False),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('remote_updated_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('synced_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("object_type IN ('location', 'associate', 'client', 'product', 'sale', 'sale_line', 'outreach')", name=op.f('ck_external_ref_object_type')),
    sa.ForeignKeyConstraint(['connector_id'], ['connector.id'], name=op.f('fk_external_ref_connector_id_connector'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_external_ref')),
    sa.UniqueConstraint('connector_id', 'object_type', 'external_id', name=op.f('uq_external_ref_connector_id_object_type_external_id'))
    )
    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.create_index('ix_external_ref_unified', ['object_type', 'unified_id'], unique=False)

    op.create_table('product_image',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_product_image_product_id_product'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_image')),
    sa.UniqueConstraint('product_id', 'url', name=op.f('uq_product_image_product_id_url'))
    )
    with op.batch_alter_table('product_image', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_product_image_product_id'), ['product_id'], unique=False)

    op.create_table('sync_error',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('connector_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('stream', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('replayed_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('open', 'replayed', 'dismissed')", name=op.f('ck_sync_error_state')),
    sa.ForeignKeyConstraint(['connector_id'], ['connector.id'], name=op.f('fk_sync_error_connector_id_connector'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_error'))
    )
    with op.batch_alter_table('sync_error', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_error_connector_id'), ['connector_id'], unique=False)
        batch_op.create_index('ix_sync_error_state', ['state', 'created_at'], unique=False)

    op.create_table('sync_run',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('connector_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('trigger', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('stream', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('progress', sa.Float(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('stats', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('started_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'interrupted')", name=op.f('ck_sync_run_status')),
    sa.ForeignKeyConstraint(['connector_id'], ['connector.id'], name=op.f('fk_sync_run_connector_id_connector'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_run'))
    )
    with op.batch_alter_table('sync_run', schema=None) as batch_op:
        batch_op.create_index('ix_sync_run_connector_started', ['connector_id', 'started_at'], unique=False)

    op.create_table('client',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('first_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('last_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('anniversary', sa.Date(), nullable=True),
    sa.Column('address', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('home_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('owner_associate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('merged_into_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('provenance', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['home_location_id'], ['location.id'], name=op.f('fk_client_home_location_id_location'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['merged_into_id'], ['client.id'], name=op.f('fk_client_merged_into_id_client')),
    sa.ForeignKeyConstraint(['owner_associate_id'], ['associate.id'], name=op.f('fk_client_owner_associate_id_associate'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_home_location_id'), ['home_location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_merged_into_id'), ['merged_into_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_owner_associate_id'), ['owner_associate_id'], unique=False)

    op.create_table('user_account',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('associate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('owner', 'manager', 'associate')", name=op.f('ck_user_account_role')),
    sa.ForeignKeyConstraint(['associate_id'], ['associate.id'], name=op.f('fk_user_account_associate_id_associate'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('email', name=op.f('uq_user_account_email'))
    )
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_account_associate_id'), ['associate_id'], unique=False)

    op.create_table('api_token',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('scopes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_api_token_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_user_id'), ['user_id'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('target_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('target_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('ip', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['actor_user_id'], ['user_account.id'], name=op.f('fk_audit_log_actor_user_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_action_at', ['action', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('client_contact',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('raw', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('unusable', sa.Boolean(), nullable=False),
    sa.Column('source_connector_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('email', 'phone')", name=op.f('ck_client_contact_kind')),
    sa.ForeignKeyConstraint(['client_id'], ['client.id'], name=op.f('fk_client_contact_client_id_client'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_connector_id'], ['connector.id'], name=op.f('fk_client_contact_source_connector_id_connector'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_contact')),
    sa.UniqueConstraint('client_id', 'kind', 'value', name=op.f('uq_client_contact_client_id_kind_value'))
    )
    with op.batch_alter_table('client_contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_contact_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_client_contact_kind_value', ['kind', 'value'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_contact_source_connector_id'), ['source_connector_id'], unique=False)

    op.create_table('client_merge',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('survivor_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('absorbed_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('snapshot', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('undone_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['absorbed_id'], ['client.id'], name=op.f('fk_client_merge_absorbed_id_client'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['survivor_id'], ['client.id'], name=op.f('fk_client_merge_survivor_id_client'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_merge'))
    )
    with op.batch_alter_table('client_merge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_merge_absorbed_id'), ['absorbed_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_merge_survivor_id'), ['survivor_id'], unique=False)

    op.create_table('consent',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('recorded_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("channel IN ('sms', 'email', 'call')", name=op.f('ck_consent_channel')),
    sa.CheckConstraint("status IN ('opted_in', 'opted_out', 'unknown')", name=op.f('ck_consent_status')),
    sa.ForeignKeyConstraint(['client_id'], ['client.id'], name=op.f('fk_consent_client_id_client'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent'))
    )
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.create_index('ix_consent_client_channel', ['client_id', 'channel', 'recorded_at'], unique=False)

    op.create_table('outreach',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('associate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('connector_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('automation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('direction', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=15), nullable=False),
    sa.Column('to_address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('from_address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('media_urls', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('occasion_key', sa.String(length=200), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('state_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('provider_status', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('due_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('read_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("channel IN ('sms', 'mms', 'email', 'call')", name=op.f('ck_outreach_channel')),
    sa.CheckConstraint("direction IN ('outbound', 'inbound')", name=op.f('ck_outreach_direction')),
    sa.CheckConstraint("kind IN ('marketing', 'transactional')", name=op.f('ck_outreach_kind')),
    sa.CheckConstraint("state IN ('pending', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'skipped', 'review', 'received')", name=op.f('ck_outreach_state')),
    sa.ForeignKeyConstraint(['associate_id'], ['associate.id'], name=op.f('fk_outreach_associate_id_associate'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['automation_id'], ['automation.id'], name=op.f('fk_outreach_automation_id_automation'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['client_id'], ['client.id'], name=op.f('fk_outreach_client_id_client'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['connector_id'], ['connector.id'], name=op.f('fk_outreach_connector_id_connector'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_outreach_location_id_location'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outreach')),
    sa.UniqueConstraint('occasion_key', name=op.f('uq_outreach_occasion_key')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('outreach', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outreach_associate_id'), ['associate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outreach_automation_id'), ['automation_id'], unique=False)
        batch_op.create_index('ix_outreach_client_created', ['client_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outreach_connector_id'), ['connector_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outreach_location_id'), ['location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outreach_provider_id'), ['provider_id'], unique=False)
        batch_op.create_index('ix_outreach_state_due', ['state', 'due_at'], unique=False)

    op.create_table('sale',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('associate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('subtotal_minor', sa.Integer(), nullable=False),
    sa.Column('tax_minor', sa.Integer(), nullable=False),
    sa.Column('total_minor', sa.Integer(), nullable=False),
    sa.Column('occurred_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("channel IN ('store', 'ecom')", name=op.f('ck_sale_channel')),
    sa.CheckConstraint("status IN ('completed', 'voided', 'layaway', 'quote', 'open')", name=op.f('ck_sale_status')),
    sa.ForeignKeyConstraint(['associate_id'], ['associate.id'], name=op.f('fk_sale_associate_id_associate'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['client_id'], ['client.id'], name=op.f('fk_sale_client_id_client'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_sale_location_id_location')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sale')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('sale', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sale_associate_id'), ['associate_id'], unique=False)
        batch_op.create_index('ix_sale_client_occurred', ['client_id', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sale_location_id'), ['location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sale_occurred_at'), ['occurred_at'], unique=False)

    op.create_table('task',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('associate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('automation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('occasion_key', sa.String(length=200), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('due_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('snoozed_until', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('call', 'text', 'email', 'visit', 'other')", name=op.f('ck_task_kind')),
    sa.CheckConstraint("state IN ('open', 'done', 'snoozed', 'cancelled')", name=op.f('ck_task_state')),
    sa.ForeignKeyConstraint(['associate_id'], ['associate.id'], name=op.f('fk_task_associate_id_associate'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['automation_id'], ['automation.id'], name=op.f('fk_task_automation_id_automation'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['client_id'], ['client.id'], name=op.f('fk_task_client_id_client'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_task_location_id_location'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task')),
    sa.UniqueConstraint('occasion_key', name=op.f('uq_task_occasion_key'))
    )
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.create_index('ix_task_associate_due', ['associate_id', 'state', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_automation_id'), ['automation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_location_id'), ['location_id'], unique=False)

    op.create_table('user_location',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_user_location_location_id_location'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_user_location_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_location')),
    sa.UniqueConstraint('user_id', 'location_id', name=op.f('uq_user_location_user_id_location_id'))
    )
    with op.batch_alter_table('user_location', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_location_location_id'), ['location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_location_user_id'), ['user_id'], unique=False)

    op.create_table('attribution',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sale_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('outreach_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('task_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('associate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('outreach_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sale_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('revenue_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('computed_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['associate_id'], ['associate.id'], name=op.f('fk_attribution_associate_id_associate'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['outreach_id'], ['outreach.id'], name=op.f('fk_attribution_outreach_id_outreach'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outreach_location_id'], ['location.id'], name=op.f('fk_attribution_outreach_location_id_location'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sale_id'], ['sale.id'], name=op.f('fk_attribution_sale_id_sale'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sale_location_id'], ['location.id'], name=op.f('fk_attribution_sale_location_id_location'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_attribution_task_id_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attribution')),
    sa.UniqueConstraint('sale_id', 'model', 'outreach_id', name=op.f('uq_attribution_sale_id_model_outreach_id'))
    )
    with op.batch_alter_table('attribution', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attribution_associate_id'), ['associate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_outreach_id'), ['outreach_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_outreach_location_id'), ['outreach_location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_sale_id'), ['sale_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_sale_location_id'), ['sale_location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_task_id'), ['task_id'], unique=False)

    op.create_table('sale_line',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sale_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sku', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price_minor', sa.Integer(), nullable=False),
    sa.Column('total_minor', sa.Integer(), nullable=False),
    sa.Column('parent_line_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['parent_line_id'], ['sale_line.id'], name=op.f('fk_sale_line_parent_line_id_sale_line'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], name=op.f('fk_sale_line_product_id_product'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sale_id'], ['sale.id'], name=op.f('fk_sale_line_sale_id_sale'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sale_line'))
    )
    with op.batch_alter_table('sale_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sale_line_parent_line_id'), ['parent_line_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sale_line_product_id'), ['product_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sale_line_sale_id'), ['sale_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sale_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sale_line_sale_id'))
        batch_op.drop_index(batch_op.f('ix_sale_line_product_id'))
        batch_op.drop_index(batch_op.f('ix_sale_line_parent_line_id'))

    op.drop_table('sale_line')
    with op.batch_alter_table('attribution', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attribution_task_id'))
        batch_op.drop_index(batch_op.f('ix_attribution_sale_location_id'))
        batch_op.drop_index(batch_op.f('ix_attribution_sale_id'))
        batch_op.drop_index(batch_op.f('ix_attribution_outreach_location_id'))
        batch_op.drop_index(batch_op.f('ix_attribution_outreach_id'))
        batch_op.drop_index(batch_op.f('ix_attribution_associate_id'))

    op.drop_table('attribution')
    with op.batch_alter_table('user_location', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_location_user_id'))
        batch_op.drop_index(batch_op.f('ix_user_location_location_id'))

    op.drop_table('user_location')
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_location_id'))
        batch_op.drop_index(batch_op.f('ix_task_automation_id'))
        batch_op.drop_index('ix_task_associate_due')

    op.drop_table('task')
    with op.batch_alter_table('sale', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sale_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_sale_location_id'))
        batch_op.drop_index('ix_sale_client_occurred')
        batch_op.drop_index(batch_op.f('ix_sale_associate_id'))

    op.drop_table('sale')
    with op.batch_alter_table('outreach', schema=None) as batch_op:
        batch_op.drop_index('ix_outreach_state_due')
        batch_op.drop_index(batch_op.f('ix_outreach_provider_id'))
        batch_op.drop_index(batch_op.f('ix_outreach_location_id'))
        batch_op.drop_index(batch_op.f('ix_outreach_connector_id'))
        batch_op.drop_index('ix_outreach_client_created')
        batch_op.drop_index(batch_op.f('ix_outreach_automation_id'))
        batch_op.drop_index(batch_op.f('ix_outreach_associate_id'))

    op.drop_table('outreach')
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_client_channel')

    op.drop_table('consent')
    with op.batch_alter_table('client_merge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_merge_survivor_id'))
        batch_op.drop_index(batch_op.f('ix_client_merge_absorbed_id'))

    op.drop_table('client_merge')
    with op.batch_alter_table('client_contact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_contact_source_connector_id'))
        batch_op.drop_index('ix_client_contact_kind_value')
        batch_op.drop_index(batch_op.f('ix_client_contact_client_id'))

    op.drop_table('client_contact')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index('ix_audit_log_action_at')

    op.drop_table('audit_log')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_user_id'))

    op.drop_table('api_token')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_account_associate_id'))

    op.drop_table('user_account')
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_owner_associate_id'))
        batch_op.drop_index(batch_op.f('ix_client_merged_into_id'))
        batch_op.drop_index(batch_op.f('ix_client_home_location_id'))

    op.drop_table('client')
    with op.batch_alter_table('sync_run', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_run_connector_started')

    op.drop_table('sync_run')
    with op.batch_alter_table('sync_error', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_error_state')
        batch_op.drop_index(batch_op.f('ix_sync_error_connector_id'))

    op.drop_table('sync_error')
    with op.batch_alter_table('product_image', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_image_product_id'))

    op.drop_table('product_image')
    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.drop_index('ix_external_ref_unified')

    op.drop_table('external_ref')
    op.drop_table('checkpoint')
    with op.batch_alter_table('change_feed', schema=None) as batch_op:
        batch_op.drop_index('ix_change_feed_entity')

    op.drop_table('change_feed')
    with op.batch_alter_table('associate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_associate_location_id'))

    op.drop_table('associate')
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_expires_at'))

    op.drop_table('web_session')
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_sku'))

    op.drop_table('product')
    op.drop_table('location')
    op.drop_table('feed_consumer')
    op.drop_table('connector')
    op.drop_table('automation')
    op.drop_table('app_setting')
