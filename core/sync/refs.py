"""External references in bulk: (connector, object type, external id) → unified id, per page.

One query per object type and page, never one per record. A payload hash on each reference lets
the engine skip records that did not change since they were last ingested.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import ExternalRef
from core.sync.bulk import in_values, insert_rows, pg_driver, update_rows

ref_t = ExternalRef.__table__  # type: ignore[attr-defined]

# Bumped when the engine maps records differently, so every record is re-applied once.
HASH_VERSION = "1"
# Keeps IN lists well below SQLite's bound-parameter limit and PostgreSQL's 32767.
CHUNK = 5000


def record_hash(record: BaseModel) -> str:
    return hashlib.sha256((HASH_VERSION + record.model_dump_json()).encode()).hexdigest()


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(slots=True)
class Ref:
    id: int
    unified_id: int
    payload_hash: str | None
    remote_updated_at: datetime | None


async def lookup(
    conn: AsyncConnection, connector_id: int, object_type: str, external_ids: Iterable[str | None]
) -> dict[str, Ref]:
    wanted = sorted({e for e in external_ids if e is not None})
    found: dict[str, Ref] = {}
    if not wanted:
        return found
    if conn.dialect.name == "postgresql":
        # One index probe per page key, whatever the table's size and statistics. A plain join lets
        # the planner choose, and while the statistics still describe a small table (autovacuum lags
        # behind a backfill) it hashes every reference of the type: a page then costs O(table), and a
        # 1M-sale backfill slows down page after page. LIMIT 1 (the key is unique) keeps the lateral
        # subquery from being flattened back into such a join. Straight through the driver: this runs
        # several times per page and returns thousands of rows.
        rows = await (await pg_driver(conn)).fetch(
            "SELECT k.ext, r.id, r.unified_id, r.payload_hash, r.remote_updated_at"
            " FROM unnest($1::text[]) AS k(ext) CROSS JOIN LATERAL ("
            "SELECT id, unified_id, payload_hash, remote_updated_at FROM external_ref"
            " WHERE connector_id = $2 AND object_type = $3 AND external_id = k.ext LIMIT 1) AS r",
            wanted, connector_id, object_type,
        )
        for ext, ref_id, unified, phash, remote in rows:
            found[ext] = Ref(ref_id, unified, phash, remote)
        return found
    for part in chunks(wanted):
        rows = await conn.execute(
            select(ref_t.c.external_id, ref_t.c.id, ref_t.c.unified_id, ref_t.c.payload_hash,
                   ref_t.c.remote_updated_at).where(
                ref_t.c.connector_id == connector_id,
                ref_t.c.object_type == object_type,
                in_values(conn, ref_t.c.external_id, list(part)),
            )
        )
        for ext, ref_id, unified, phash, remote in rows:
            found[ext] = Ref(ref_id, unified, phash, remote)
    return found


class RefCache:
    """References found during one sync run, for object types whose references never move.

    An associate's or product's reference is created once and keeps pointing at the same row: Clasp
    never deletes those rows, and a connector's references go only with the connector, which cannot be
    removed while it syncs. A sales page names a couple of thousand products and associates that
    earlier pages already looked up; the cache spares the server those probes. Only references that
    exist are kept (a missing one may appear later), and the foreign keys on sales and lines still
    stand behind every id taken from here.
    """

    TYPES = frozenset({"associate", "product"})

    def __init__(self) -> None:
        self.found: dict[str, dict[str, Ref]] = {t: {} for t in self.TYPES}

    async def lookup(self, conn: AsyncConnection, connector_id: int, object_type: str,
                     external_ids: Iterable[str | None]) -> dict[str, Ref]:
        known = self.found[object_type]
        wanted = {e for e in external_ids if e is not None}
        out = {e: known[e] for e in wanted if e in known}
        missing = [e for e in wanted if e not in known]
        if missing:
            fresh = await lookup(conn, connector_id, object_type, missing)
            known.update(fresh)
            out.update(fresh)
        return out


async def all_of_type(conn: AsyncConnection, connector_id: int, object_type: str) -> dict[str, int]:
    rows = await conn.execute(
        select(ref_t.c.external_id, ref_t.c.unified_id).where(
            ref_t.c.connector_id == connector_id, ref_t.c.object_type == object_type
        )
    )
    return {ext: unified for ext, unified in rows}


async def insert_refs(conn: AsyncConnection, rows: list[dict[str, Any]],
                      constants: dict[str, Any] | None = None) -> None:
    """Plain INSERT, not ON CONFLICT: a concurrent duplicate must fail its transaction, not orphan a row.

    ``constants``: columns shared by every row (see :func:`ref_constants`), so big pages need not
    repeat them in each row."""
    await insert_rows(conn, ref_t, rows, constants=constants)


def ref_constants(connector_id: int, object_type: str, now: datetime) -> dict[str, Any]:
    return {"connector_id": connector_id, "object_type": object_type, "synced_at": now}


def new_ref(connector_id: int, object_type: str, external_id: str, unified_id: int, payload_hash: str | None,
            remote_updated_at: datetime | None, now: datetime) -> dict[str, Any]:
    return {
        "connector_id": connector_id,
        "object_type": object_type,
        "external_id": external_id,
        "unified_id": unified_id,
        "payload_hash": payload_hash,
        "remote_updated_at": remote_updated_at,
        "synced_at": now,
    }


async def touch_refs(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Store the new payload hash and remote time of references whose record was re-applied.

    Each row: ``id`` (of the reference), ``payload_hash``, ``remote_updated_at``, ``synced_at``.
    """
    await update_rows(conn, ref_t, rows)
