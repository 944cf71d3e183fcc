"""Sales and their lines, set-based per page.

References are resolved in bulk: locations are created when unknown (a new shop), while an unknown
associate, client, product or refunded line sends the sale to the error queue as an
``unresolved_reference`` — those are retried automatically at the end of every run, so a sale that
raced ahead of its customer is stored as soon as the customer has been synced. Lines keep their POS id
(``sale_line.external_id``, unique per connector) so a refund line can point at the line it refunds, in
this sale or another.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import Sale, SaleLine
from core.sync import refs as refs_mod
from core.sync.bulk import (
    PreparedRows,
    copy_rows,
    in_values,
    insert_rows,
    is_pg,
    pg_driver,
    prepare_rows,
    reserve_ids,
    update_rows,
)
from core.sync.context import CREATED, OK, UNCHANGED, UPDATED, Item, Outcome, UpsertContext
from core.sync.upsert_base import fresh_items
from core.sync.upsert_org import ensure_locations
from core.sync.validate import problems

sale_t = Sale.__table__  # type: ignore[attr-defined]
line_t = SaleLine.__table__  # type: ignore[attr-defined]
SALE_FIELDS = ("location_id", "associate_id", "client_id", "channel", "status", "currency", "subtotal_minor",
               "tax_minor", "total_minor", "occurred_at")
LINE_FIELDS = ("product_id", "sku", "name", "quantity", "unit_price_minor", "total_minor")
# Sales planned between two yields to the event loop (see _plan).
PLAN_SLICE = 100


@dataclass(slots=True)
class Plan:
    item: Item
    values: dict[str, Any]
    sale_id: int | None  # None: a new sale
    ref: refs_mod.Ref | None
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)  # line external id → values
    parents: dict[str, str] = field(default_factory=dict)  # line external id → parent line external id


@dataclass
class Refs:
    locations: dict[str, int]
    associates: dict[str, refs_mod.Ref]
    clients: dict[str, refs_mod.Ref]
    products: dict[str, refs_mod.Ref]
    lines: dict[str, tuple[int, int]]  # line external id → (line id, its sale id), for lines stored before


async def upsert_sales(ux: UpsertContext, items: list[Item]) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    found = await refs_mod.lookup(ux.conn, ux.connector_id, "sale", [i.external_id for i in items])
    todo = fresh_items(items, found, outcomes)
    if not todo:
        return outcomes
    current = await _current_sales(ux, found, todo)
    refs = await _resolve(ux, todo, found)
    plans = await _plan(todo, found, current, refs, outcomes)
    if not plans:
        return outcomes
    staged = await _stage_new(ux, [p for p in plans.values() if p.ref is None], refs, outcomes)
    await ux.before_writes()
    new_ids = await _write_sales(ux, plans, current, outcomes, staged)
    await _write_lines(ux, plans, refs, new_ids, outcomes, staged)
    return outcomes


@dataclass
class Staged:
    """The rows of a page's new sales and their lines, with their ids, built before the page may write.

    On PostgreSQL ids come from the sequences, so an overlapped page (core.sync.pipeline) has its rows
    ready when the previous page commits, and what remains between the two commits is the server's
    work. SQLite hands ids out as it inserts: nothing is staged there.
    """

    sales: PreparedRows
    refs: PreparedRows
    lines: PreparedRows
    line_by_ext: dict[str, int]
    # Staged line id → the parent written with it: refunds of a line stored before or of a new sale's line.
    linked: dict[int, int]


async def _stage_new(ux: UpsertContext, new: list[Plan], refs: Refs, outcomes: dict[int, Outcome]) -> Staged | None:
    sale_ids = await reserve_ids(ux.conn, sale_t, len(new))
    line_ids = await reserve_ids(ux.conn, line_t, sum(len(p.lines) for p in new))
    if sale_ids is None or line_ids is None:
        return None
    ref_rows = _created(ux, new, sale_ids, outcomes)
    lines: list[dict[str, Any]] = []
    line_by_ext: dict[str, int] = {}
    linked: dict[int, int] = {}
    lid_iter = iter(line_ids)
    for plan in new:
        for ext, values in plan.lines.items():
            line_by_ext[ext] = next(lid_iter)
            lines.append(_new_line(values, plan, ext))
    # Refunds whose line already has an id; the others (a new line of a sale stored before) are linked
    # after the inserts, by _link_parents.
    n = 0
    for plan in new:
        for ext in plan.lines:
            parent_ext = plan.parents.get(ext)
            if parent_ext is not None:
                stored = refs.lines.get(parent_ext)
                parent = stored[0] if stored is not None else line_by_ext.get(parent_ext)
                if parent is not None:
                    lines[n]["parent_line_id"] = parent
                    linked[line_ids[n]] = parent
            n += 1
    return Staged(
        prepare_rows(sale_t, [p.values for p in new], ids=sale_ids, constants=_stamps(ux)),
        prepare_rows(refs_mod.ref_t, ref_rows, constants=refs_mod.ref_constants(ux.connector_id, "sale", ux.now)),
        prepare_rows(line_t, lines, ids=line_ids, constants={"connector_id": ux.connector_id}),
        line_by_ext, linked,
    )


def _created(
    ux: UpsertContext, new: list[Plan], sale_ids: list[int], outcomes: dict[int, Outcome]
) -> list[dict[str, Any]]:
    """New sales get their ids: their feed rows and outcomes, and the rows of their references."""
    ref_rows = []
    for plan, sale_id in zip(new, sale_ids, strict=True):
        plan.sale_id = sale_id
        rec = plan.item.record
        ref_rows.append({"external_id": rec.external_id, "unified_id": sale_id, "payload_hash": plan.item.hash,
                         "remote_updated_at": rec.updated_at})
        ux.feed.add("sale", sale_id, "insert", {**plan.values, "lines": len(plan.lines)}, ux.now)
        outcomes[plan.item.index] = OK[CREATED]
    return ref_rows


def _new_line(values: dict[str, Any], plan: Plan, ext: str) -> dict[str, Any]:
    """A line to insert (the connector comes as a constant of the insert); its parent is linked later
    unless it is known already."""
    return {**values, "sale_id": plan.sale_id, "parent_line_id": None, "external_id": ext}


def _stamps(ux: UpsertContext) -> dict[str, Any]:
    return {"created_at": ux.now, "updated_at": ux.now}


async def _current_sales(ux: UpsertContext, found: dict[str, refs_mod.Ref], todo: list[Item]) -> dict[int, Any]:
    ids = sorted({found[i.external_id].unified_id for i in todo if i.external_id in found})
    current: dict[int, Any] = {}
    for part in refs_mod.chunks(ids):
        rows = await ux.conn.execute(select(sale_t).where(in_values(ux.conn, sale_t.c.id, list(part))))
        current.update({row.id: row._mapping for row in rows})
    orphans = [i for i in todo if i.external_id in found and found[i.external_id].unified_id not in current]
    if orphans:
        # Deleted in Clasp but still in the source: drop the dangling references and store it anew.
        await ux.before_writes()
        await ux.conn.execute(delete(refs_mod.ref_t).where(
            refs_mod.ref_t.c.id.in_([found[i.external_id].id for i in orphans])))
        for i in orphans:
            del found[i.external_id]
        # Their lines, with their POS ids, went with them (ON DELETE CASCADE).
    return current


async def _resolve(ux: UpsertContext, todo: list[Item], found: dict[str, refs_mod.Ref]) -> Refs:
    recs = [i.record for i in todo]
    cid = ux.connector_id
    locations = await ensure_locations(ux, {r.location_external_id: r.currency for r in recs})
    associates = await ux.ref_cache.lookup(ux.conn, cid, "associate", [r.associate_external_id for r in recs])
    clients = await refs_mod.lookup(ux.conn, cid, "client", [r.client_external_id for r in recs])
    products = await ux.ref_cache.lookup(
        ux.conn, cid, "product", [ln.product_external_id for r in recs for ln in r.lines])
    # Lines of sales stored before (to update them) and refunded lines. A new sale's own line ids are
    # not looked up: they cannot exist unless another sale claims them, which the unique reference
    # index turns into an error for that one sale (see ingest's record-by-record isolation).
    line_ids = [ln.external_id for i in todo if i.external_id in found for ln in i.record.lines]
    line_ids += [ln.parent_line_external_id for r in recs for ln in r.lines]
    lines = await lookup_lines(ux.conn, cid, line_ids)
    return Refs(locations, associates, clients, products, lines)


async def lookup_lines(
    conn: AsyncConnection, connector_id: int, external_ids: list[str | None]
) -> dict[str, tuple[int, int]]:
    """Stored lines by POS id: external id → (line id, sale id)."""
    wanted = sorted({e for e in external_ids if e is not None})
    found: dict[str, tuple[int, int]] = {}
    if not wanted:
        return found
    if is_pg(conn):
        # One probe of the unique key per id, whatever the statistics say (see refs.lookup).
        rows = await (await pg_driver(conn)).fetch(
            "SELECT k.ext, l.id, l.sale_id FROM unnest($1::text[]) AS k(ext) CROSS JOIN LATERAL ("
            "SELECT id, sale_id FROM sale_line WHERE connector_id = $2 AND external_id = k.ext LIMIT 1) AS l",
            wanted, connector_id,
        )
        return {ext: (lid, sid) for ext, lid, sid in rows}
    for part in refs_mod.chunks(wanted):
        rows = await conn.execute(select(line_t.c.external_id, line_t.c.id, line_t.c.sale_id).where(
            line_t.c.connector_id == connector_id, line_t.c.external_id.in_(part)))
        found.update({ext: (lid, sid) for ext, lid, sid in rows})
    return found


async def _plan(
    todo: list[Item], found: dict[str, refs_mod.Ref], current: dict[int, Any], refs: Refs,
    outcomes: dict[int, Outcome],
) -> dict[int, Plan]:
    plans: dict[int, Plan] = {}
    associates, clients, products, locations = refs.associates, refs.clients, refs.products, refs.locations
    stored_lines = refs.lines
    for n, item in enumerate(todo):
        if n % PLAN_SLICE == PLAN_SLICE - 1:
            # Planning runs beside the previous page's writes (core.sync.pipeline): let the loop send
            # them their next statement now and then rather than after the whole page.
            await asyncio.sleep(0)
        rec = item.record
        ref = found.get(rec.external_id)
        sale_id = ref.unified_id if ref is not None else None
        reasons: list[str] = []
        unresolved: dict[str, list[str]] = defaultdict(list)
        associate = associates.get(rec.associate_external_id) if rec.associate_external_id else None
        if rec.associate_external_id and associate is None:
            unresolved["associate"].append(rec.associate_external_id)
        client = clients.get(rec.client_external_id) if rec.client_external_id else None
        if rec.client_external_id and client is None:
            unresolved["client"].append(rec.client_external_id)
        values = {
            "location_id": locations[rec.location_external_id],
            "associate_id": associate.unified_id if associate is not None else None,
            "client_id": client.unified_id if client is not None else None,
            "channel": rec.channel,
            "status": rec.status,
            "currency": rec.currency.upper(),
            "subtotal_minor": rec.subtotal_minor,
            "tax_minor": rec.tax_minor,
            "total_minor": rec.total_minor,
            "occurred_at": rec.occurred_at,
        }
        if rec.occurred_at.tzinfo is None:
            reasons.append("sale occurred_at has no timezone")
        reasons += problems(sale_t, values, "sale")
        plan = Plan(item, values, sale_id, ref, {}, {})
        for line in rec.lines:
            ext = line.external_id
            if ext in plan.lines:
                reasons.append(f"line id {ext!r} appears twice in the sale")
                continue
            stored = stored_lines.get(ext)
            if stored is not None and stored[1] != sale_id:
                reasons.append(f"line id {ext!r} already belongs to another sale")
            product = products.get(line.product_external_id) if line.product_external_id else None
            if line.product_external_id and product is None:
                unresolved["product"].append(line.product_external_id)
            lvalues = {
                "product_id": product.unified_id if product is not None else None,
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
                "total_minor": line.total_minor,
            }
            reasons += problems(line_t, lvalues, f"line {ext}")
            plan.lines[ext] = lvalues
            if line.parent_line_external_id:
                plan.parents[ext] = line.parent_line_external_id
        if reasons:
            outcomes[item.index] = Outcome.failed("; ".join(reasons))
        elif unresolved:
            outcomes[item.index] = Outcome.failed(_unresolved_reason(unresolved), "unresolved_reference",
                                                  dict(unresolved))
        else:
            plans[item.index] = plan
    # A refund may point at a line stored earlier or at a line of a sale in this page; drop sales whose
    # refunded line is neither (repeat: dropping one sale can orphan a refund of its lines).
    while True:
        in_page = {ext for plan in plans.values() for ext in plan.lines}
        missing = {
            idx: sorted({p for p in plan.parents.values() if p not in refs.lines and p not in in_page})
            for idx, plan in plans.items()
        }
        missing = {idx: m for idx, m in missing.items() if m}
        if not missing:
            return plans
        for idx, parents in missing.items():
            outcomes[idx] = Outcome.failed(_unresolved_reason({"sale_line": parents}), "unresolved_reference",
                                           {"sale_line": parents})
            del plans[idx]


def _unresolved_reason(unresolved: dict[str, list[str]]) -> str:
    parts = [f"unknown {kind.replace('_', ' ')} {', '.join(repr(e) for e in sorted(set(exts)))}"
             for kind, exts in unresolved.items()]
    return "; ".join(parts) + " (retried after every sync)"


async def _write_sales(
    ux: UpsertContext, plans: dict[int, Plan], current: dict[int, Any], outcomes: dict[int, Outcome],
    staged: Staged | None,
) -> dict[int, int]:
    new = [p for p in plans.values() if p.ref is None]
    if staged is not None:
        await copy_rows(ux.conn, staged.sales)
        await copy_rows(ux.conn, staged.refs)
    elif new:
        ids = await insert_rows(ux.conn, sale_t, [p.values for p in new], want_ids=True, constants=_stamps(ux))
        await refs_mod.insert_refs(ux.conn, _created(ux, new, ids, outcomes),
                                   refs_mod.ref_constants(ux.connector_id, "sale", ux.now))
    updates, touches = [], []
    for plan in plans.values():
        if plan.ref is None:
            continue
        assert plan.sale_id is not None
        row = current[plan.sale_id]
        diff = {k: v for k, v in plan.values.items() if row[k] != v}
        touches.append({"id": plan.ref.id, "payload_hash": plan.item.hash,
                        "remote_updated_at": plan.item.record.updated_at, "synced_at": ux.now})
        outcomes[plan.item.index] = OK[UPDATED if diff else UNCHANGED]
        if diff:
            updates.append({"id": plan.sale_id, **{k: plan.values[k] for k in SALE_FIELDS}, "updated_at": ux.now})
            ux.feed.add("sale", plan.sale_id, "update", diff, ux.now)
    await update_rows(ux.conn, sale_t, updates)
    await refs_mod.touch_refs(ux.conn, touches)
    return {p.item.index: p.sale_id for p in new if p.sale_id is not None}


async def _write_lines(
    ux: UpsertContext, plans: dict[int, Plan], refs: Refs, new_ids: dict[int, int], outcomes: dict[int, Outcome],
    staged: Staged | None,
) -> None:
    existing_sales = [p for idx, p in plans.items() if idx not in new_ids]
    current = await _current_lines(ux, [p.sale_id for p in existing_sales if p.sale_id])
    inserts: list[tuple[str, dict[str, Any]]] = []
    updates: list[dict[str, Any]] = []
    removed: list[int] = []
    line_ids: dict[str, int] = {ext: lid for ext, (lid, _) in refs.lines.items()}
    linked: dict[int, int] = {}
    if staged is not None:
        await copy_rows(ux.conn, staged.lines)
        line_ids.update(staged.line_by_ext)
        linked = staged.linked
    for idx, plan in plans.items():
        if staged is not None and idx in new_ids:
            continue
        have = current.get(plan.sale_id, {}) if idx not in new_ids else {}
        have_by_ext = {row["external_id"]: row for row in have.values() if row["connector_id"] == ux.connector_id}
        lines_changed = False
        for ext, values in plan.lines.items():
            row = have_by_ext.get(ext)
            if row is None:
                inserts.append((ext, _new_line(values, plan, ext)))
                lines_changed = True
            elif any(row[k] != values[k] for k in LINE_FIELDS):
                updates.append({"id": row["id"], **{k: values[k] for k in LINE_FIELDS}})
                lines_changed = True
        gone = [lid for lid, row in have.items()
                if row["connector_id"] != ux.connector_id or row["external_id"] not in plan.lines]
        removed += gone
        if (gone or lines_changed) and idx not in new_ids:
            ux.feed.add("sale", plan.sale_id, "update", {"lines": len(plan.lines)}, ux.now)
            outcomes[idx] = OK[UPDATED]
    if removed:
        for part in refs_mod.chunks(removed):
            await ux.conn.execute(delete(line_t).where(line_t.c.id.in_(part)))
    await update_rows(ux.conn, line_t, updates)
    if inserts:
        ids = await insert_rows(ux.conn, line_t, [values for _, values in inserts], want_ids=True,
                                constants={"connector_id": ux.connector_id})
        for (ext, _), lid in zip(inserts, ids, strict=True):
            line_ids[ext] = lid
    await _link_parents(ux, plans, line_ids, current, linked)


async def _current_lines(ux: UpsertContext, sale_ids: list[int]) -> dict[int, dict[int, Any]]:
    current: dict[int, dict[int, Any]] = defaultdict(dict)
    for part in refs_mod.chunks(sorted(set(sale_ids))):
        rows = await ux.conn.execute(select(line_t).where(in_values(ux.conn, line_t.c.sale_id, list(part))))
        for row in rows:
            current[row.sale_id][row.id] = row._mapping
    return current


async def _link_parents(
    ux: UpsertContext, plans: dict[int, Plan], line_ids: dict[str, int], current: dict[int, dict[int, Any]],
    linked: dict[int, int],
) -> None:
    """Point refund lines at the line they refund, once every line of the page has an id.

    ``linked``: new lines that were inserted with their parent already."""
    old_parent: dict[int, int | None] = {lid: row["parent_line_id"] for lines in current.values()
                                         for lid, row in lines.items()}
    old_parent.update(linked)
    links = []
    for plan in plans.values():
        if plan.ref is None and not plan.parents:
            continue  # a new sale that refunds nothing: its lines were inserted without a parent
        for ext in plan.lines:
            lid = line_ids[ext]
            parent_ext = plan.parents.get(ext)
            parent = line_ids.get(parent_ext) if parent_ext else None
            if old_parent.get(lid) != parent:
                links.append({"id": lid, "parent_line_id": parent})
    await update_rows(ux.conn, line_t, links)


def page_keys(items: list[Item]) -> set[str]:
    """What a page of sales touches that another page could touch too: its sales and its lines,
    including the lines it refunds. (A location it would have to create makes the page wait instead:
    see ``ensure_locations``.)"""
    keys: set[str] = set()
    for item in items:
        rec = item.record
        keys.add("sale:" + rec.external_id)
        for line in rec.lines:
            keys.add("line:" + line.external_id)
            if line.parent_line_external_id:
                keys.add("line:" + line.parent_line_external_id)
    return keys
