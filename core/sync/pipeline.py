"""Overlapping a page's transaction with the next one's (PostgreSQL only).

A page spends about half its time in Python (decoding, planning, encoding rows) and half waiting for
the server to store its rows; the server runs in other processes, on the other core. So while page N
writes and commits, page N+1 already runs its lookups, plans, and builds its rows (new ids come from
the sequences, which is not a write) in a second transaction. It starts writing the moment N has
committed, without waiting for N's progress report:

- N+1 writes only once N has committed, and only after taking the connector's row lock first, like
  every page transaction and every replay of the error queue. Pages therefore still commit one by one,
  in order, each with its checkpoint (a crash leaves a prefix of the pages committed), and if N fails,
  N+1 rolls back without having written anything.
- N+1's reads ran before N committed, so they are only trusted when N cannot have changed what they
  read: the two pages share no sale, line or refunded line (``page_keys``; otherwise N+1 waits for N
  to commit, as every page used to), and a write N+1 could not foresee (creating a location, which N
  may be creating too) makes it stop (``MustWait``) and run again once N has committed.
- Nothing else may have written under the lock between N and N+1: N+1 checks that the connector
  row's ``xmin`` is still N's transaction id once it holds the lock. If a replay came in between,
  N+1 is rolled back and done again the ordinary way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.ext.asyncio import AsyncConnection

from core.plugin import Stream
from core.sync import lease
from core.sync.context import Item, MustWait
from core.sync.ingest import Decoded, guess_external_id
from core.sync.upsert_sales import page_keys as sale_page_keys

# Object types whose pages may overlap, with what a page of them touches.
PAGE_KEYS: dict[str, Callable[[list[Item]], set[str]]] = {"sale": sale_page_keys}


class Interleaved(MustWait):
    """Another transaction wrote under the connector's lock between the previous page and this one."""


def keys_of(stream: Stream, payloads: Sequence[Any], decoded: Decoded) -> set[str] | None:
    """What the page touches, or None when its pages must not overlap."""
    keys_fn = PAGE_KEYS.get(stream.object_type)
    if keys_fn is None:
        return None
    outcomes, items = decoded
    keys = keys_fn(items)
    for index, outcome in enumerate(outcomes):
        if outcome is not None:  # failed to decode: its error-queue row is found by its id, or its payload
            keys.add(f"{stream.object_type}:{guess_external_id(stream, payloads[index]) or '?'}")
    return keys


async def renew(conn: AsyncConnection, connector_id: int, owner: str, seconds: float,
                after: str | None = None) -> str:
    """Renew the lease (as ``lease.renew``) and return this transaction's id.

    ``after``: the id of the previous page's transaction; raise :class:`Interleaved` unless it was the
    last to write the connector row. One statement, as this sits between two pages' writes: the
    UPDATE waits for the row lock and then checks ``xmin`` on the row as it is once the lock is held
    (READ COMMITTED re-reads it), so nothing can come in after the check.
    """
    xmin = literal_column("xmin::text")
    stmt = lease.renewal(connector_id, owner, seconds).returning(xmin)
    if after is not None:
        stmt = stmt.where(xmin == after)
    row = (await conn.execute(stmt)).first()
    if row is not None:
        return str(row[0])
    if after is not None:
        # Which condition failed: another transaction wrote the row, or the lease is gone.
        owner_now, _ = await lease.holder(conn, connector_id)
        if owner_now == owner:
            raise Interleaved()
    raise lease.lost(connector_id)
