"""client search indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 16:00:00

What ``core.search`` needs to answer in milliseconds at a million clients on PostgreSQL:

- the pg_trgm and unaccent extensions (both "trusted" since PostgreSQL 13: a database owner may
  create them without being a superuser);
- ``clasp_fold(text)``: lower-case without accents. unaccent() itself is only STABLE (it reads the
  search path), so it cannot appear in an index; calling it with its dictionary named explicitly is
  IMMUTABLE, and this SQL wrapper says so. Every name is schema-qualified so a dump restores;
- ``clasp_name_key(first, last)``: " " + the folded name with punctuation turned into spaces, so a
  word start is " " + its letters;
- a trigram GIN index on ``clasp_name_key(first_name, last_name)`` (any word prefix, any order);
- a trigram GIN index on email values (part of an address);
- a btree on ``reverse(value)`` of phones (the last digits of a number are a prefix of it);
- on both backends, a btree on (last_name, first_name, id) for the panel's alphabetical list.

SQLite gets the same functions from ``core.db`` (Python, registered on every connection) and needs
no index built on them: at a store's scale it scans.
"""
from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _schema_of_extension(name: str) -> str:
    return op.get_bind().execute(
        text("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = :n"),
        {"n": name},
    ).scalar_one()


def upgrade() -> None:
    op.create_index('ix_client_name_order', 'client', ['last_name', 'first_name', 'id'])
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    here = op.get_bind().execute(text("SELECT current_schema()")).scalar_one()
    unaccent = _schema_of_extension('unaccent')
    trgm = _schema_of_extension('pg_trgm')
    op.execute(f"""
        CREATE FUNCTION "{here}".clasp_fold(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$ SELECT lower("{unaccent}".unaccent('"{unaccent}".unaccent'::regdictionary, $1)) $$
    """)
    op.execute(f"""
        CREATE FUNCTION "{here}".clasp_name_key(text, text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT ' ' || btrim(regexp_replace(
            "{here}".clasp_fold(coalesce($1, '') || ' ' || coalesce($2, '')), '[-[:space:]''’.,]+', ' ', 'g')) $$
    """)
    op.execute(f"""
        CREATE INDEX ix_client_search_name ON client
        USING gin ("{here}".clasp_name_key(first_name, last_name) "{trgm}".gin_trgm_ops)
    """)
    op.execute(f"""
        CREATE INDEX ix_client_contact_email_trgm ON client_contact
        USING gin (value "{trgm}".gin_trgm_ops) WHERE kind = 'email'
    """)
    op.execute("""
        CREATE INDEX ix_client_contact_phone_reversed ON client_contact
        (reverse(value) text_pattern_ops) WHERE kind = 'phone'
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_client_contact_phone_reversed")
        op.execute("DROP INDEX IF EXISTS ix_client_contact_email_trgm")
        op.execute("DROP INDEX IF EXISTS ix_client_search_name")
        op.execute("DROP FUNCTION IF EXISTS clasp_name_key(text, text)")
        op.execute("DROP FUNCTION IF EXISTS clasp_fold(text)")
        op.execute("DROP EXTENSION IF EXISTS unaccent")
        op.execute("DROP EXTENSION IF EXISTS pg_trgm")
    op.drop_index('ix_client_name_order', table_name='client')
