"""The set-based upsert shared by simple object types (locations, associates, products).

Per page: one reference lookup, one multi-row INSERT ... RETURNING for new rows, one executemany
UPDATE for changed rows, bulk reference and change-feed writes. Records whose payload hash did not
change are skipped before any other work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, delete, select

from core.sync import refs as refs_mod
from core.sync.bulk import in_values, insert_rows, update_rows
from core.sync.context import CREATED, OK, UNCHANGED, UPDATED, Item, Outcome, UpsertContext, is_stale
from core.sync.validate import problems

# Builds a row's column values from an item, or says why the item cannot be stored.
ToValues = Callable[[Item], Awaitable[dict[str, Any] | Outcome]]


@dataclass
class Applied:
    """What a simple upsert did, for type-specific follow-ups (e.g. product images)."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)
    created: dict[int, int] = field(default_factory=dict)  # item index → new unified id
    changed: dict[int, int] = field(default_factory=dict)  # item index → unified id whose payload changed


def fresh_items(items: list[Item], found: dict[str, refs_mod.Ref], outcomes: dict[int, Outcome]) -> list[Item]:
    """Drops items whose stored reference already has this payload (or a newer one)."""
    out = []
    for item in items:
        ref = found.get(item.external_id)
        if ref is not None and (
            ref.payload_hash == item.hash or is_stale(item.record.updated_at, ref.remote_updated_at)
        ):
            outcomes[item.index] = OK[UNCHANGED]
        else:
            out.append(item)
    return out


async def upsert_simple(
    ux: UpsertContext, items: list[Item], *, object_type: str, table: Table, to_values: ToValues, what: str
) -> Applied:
    applied = Applied()
    found = await refs_mod.lookup(ux.conn, ux.connector_id, object_type, [i.external_id for i in items])
    todo = fresh_items(items, found, applied.outcomes)
    new: list[tuple[Item, dict[str, Any]]] = []
    existing: list[tuple[Item, refs_mod.Ref, dict[str, Any]]] = []
    for item in todo:
        values = await to_values(item)
        if isinstance(values, Outcome):
            applied.outcomes[item.index] = values
            continue
        bad = problems(table, values, what)
        if bad:
            applied.outcomes[item.index] = Outcome.failed("; ".join(bad))
            continue
        ref = found.get(item.external_id)
        if ref is None:
            new.append((item, values))
        else:
            existing.append((item, ref, values))

    current: dict[int, Any] = {}
    if existing:
        current = await _current_rows(ux, table, [ref.unified_id for _, ref, _ in existing])
        orphaned = [(item, ref, values) for item, ref, values in existing if ref.unified_id not in current]
        if orphaned:
            # The unified row was deleted in Clasp but the source still has the record: create it again.
            await ux.conn.execute(delete(refs_mod.ref_t).where(refs_mod.ref_t.c.id.in_([r.id for _, r, _ in orphaned])))
            new.extend((item, values) for item, _, values in orphaned)
            existing = [e for e in existing if e[1].unified_id in current]

    if new:
        rows = [{**values, "created_at": ux.now, "updated_at": ux.now} for _, values in new]
        ids = await insert_rows(ux.conn, table, rows, want_ids=True)
        ref_rows = []
        for (item, values), unified in zip(new, ids, strict=True):
            ref_rows.append(refs_mod.new_ref(ux.connector_id, object_type, item.external_id, unified, item.hash,
                                             item.record.updated_at, ux.now))
            ux.feed.add(object_type, unified, "insert", values, ux.now)
            applied.outcomes[item.index] = OK[CREATED]
            applied.created[item.index] = unified
        await refs_mod.insert_refs(ux.conn, ref_rows)

    if existing:
        await _apply_updates(ux, existing, current, table, object_type, applied)
    return applied


async def _current_rows(ux: UpsertContext, table: Table, ids: list[int]) -> dict[int, Any]:
    current: dict[int, Any] = {}
    for part in refs_mod.chunks(sorted(set(ids))):
        rows = await ux.conn.execute(select(table).where(in_values(ux.conn, table.c.id, list(part))))
        current.update({row.id: row._mapping for row in rows})
    return current


async def _apply_updates(
    ux: UpsertContext,
    existing: list[tuple[Item, refs_mod.Ref, dict[str, Any]]],
    current: dict[int, Any],
    table: Table,
    object_type: str,
    applied: Applied,
) -> None:
    fields = list(existing[0][2])
    updates: list[dict[str, Any]] = []
    touches: list[dict[str, Any]] = []
    for item, ref, values in existing:
        row = current[ref.unified_id]
        touches.append({"id": ref.id, "payload_hash": item.hash, "remote_updated_at": item.record.updated_at,
                        "synced_at": ux.now})
        applied.changed[item.index] = ref.unified_id
        diff = {k: v for k, v in values.items() if row[k] != v}
        if diff:
            updates.append({"id": ref.unified_id, **{k: values[k] for k in fields}, "updated_at": ux.now})
            ux.feed.add(object_type, ref.unified_id, "update", diff, ux.now)
            applied.outcomes[item.index] = OK[UPDATED]
        else:
            applied.outcomes[item.index] = OK[UNCHANGED]
    await update_rows(ux.conn, table, updates)
    await refs_mod.touch_refs(ux.conn, touches)
