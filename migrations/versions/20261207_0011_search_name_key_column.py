"""client search: the folded name stored, so a common name is found without refolding every match

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 21:30:00

PostgreSQL only (SQLite scans at a store's scale and needs none of this):

- ``client.name_key``, a stored generated column ``clasp_name_key(first_name, last_name)``.
  PostgreSQL computes it on every write, so no code path can forget it; the ORM model does not
  declare it (nothing reads it but ``core.search`` on PostgreSQL). Adding it rewrites the client
  table once (about a minute at a million clients).
- The trigram index moves from the expression to the column. A bitmap scan rechecks every row it
  fetches; on the expression that meant unaccent and a regular expression per row, which is what
  made "isabella" (a hundred thousand matches in a million) take a second.
- ``ix_client_name_order`` (the alphabetical book) carries ``name_key`` and the columns every
  search filters on. A query matching thousands walks this index in name order and stops after a
  page, reading the index only, however common the name.
"""
from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

INCLUDED = "name_key, merged_into_id, archived, home_location_id"


def _schemas() -> tuple[str, str]:
    bind = op.get_bind()
    here = bind.execute(text("SELECT current_schema()")).scalar_one()
    trgm = bind.execute(
        text("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
             "WHERE e.extname = 'pg_trgm'")
    ).scalar_one()
    return here, trgm


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    here, trgm = _schemas()
    op.execute(f"""
        ALTER TABLE client ADD COLUMN name_key text
        GENERATED ALWAYS AS ("{here}".clasp_name_key(first_name, last_name)) STORED
    """)
    op.execute("DROP INDEX IF EXISTS ix_client_search_name")
    op.execute(f'CREATE INDEX ix_client_search_name ON client USING gin (name_key "{trgm}".gin_trgm_ops)')
    op.execute("DROP INDEX IF EXISTS ix_client_name_order")
    op.execute(f"CREATE INDEX ix_client_name_order ON client (last_name, first_name, id) INCLUDE ({INCLUDED})")
    op.execute("ANALYZE client")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    here, trgm = _schemas()
    op.execute("DROP INDEX IF EXISTS ix_client_name_order")
    op.execute("DROP INDEX IF EXISTS ix_client_search_name")
    op.execute("ALTER TABLE client DROP COLUMN name_key")
    op.execute(f"""
        CREATE INDEX ix_client_search_name ON client
        USING gin ("{here}".clasp_name_key(first_name, last_name) "{trgm}".gin_trgm_ops)
    """)
    op.execute("CREATE INDEX ix_client_name_order ON client (last_name, first_name, id)")
