"""Locations and associates. Locations also appear by themselves when any record names a new shop."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from core.models import Associate, Location
from core.sync import refs as refs_mod
from core.sync.bulk import insert_rows
from core.sync.context import Item, Outcome, UpsertContext
from core.sync.upsert_base import upsert_simple

location_t = Location.__table__  # type: ignore[attr-defined]
associate_t = Associate.__table__  # type: ignore[attr-defined]


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def upsert_locations(ux: UpsertContext, items: list[Item]) -> dict[int, Outcome]:
    async def to_values(item: Item) -> dict[str, Any] | Outcome:
        rec = item.record
        if not valid_timezone(rec.timezone):
            return Outcome.failed(f"unknown timezone {rec.timezone!r}")
        return {
            "name": rec.name,
            "timezone": rec.timezone,
            "currency": rec.currency.upper(),
            "country": rec.country.upper(),
            "phone": rec.phone,
        }

    applied = await upsert_simple(ux, items, object_type="location", table=location_t, to_values=to_values,
                                  what="location")
    return applied.outcomes


async def ensure_locations(ux: UpsertContext, wanted: dict[str, str | None]) -> dict[str, int]:
    """Unified ids of these location external ids, creating a location for any shop not seen before.

    ``wanted`` maps external id → a currency hint (e.g. a sale's currency). A location created here
    has a placeholder name and the timezone/country of this connector's other locations; the
    locations stream fills in the real details (its reference has no payload hash, so it is applied).
    """
    wanted = {k: v for k, v in wanted.items() if k}
    if not wanted:
        return {}
    found = await refs_mod.lookup(ux.conn, ux.connector_id, "location", wanted)
    out = {ext: ref.unified_id for ext, ref in found.items()}
    missing = sorted(set(wanted) - set(found))
    if not missing:
        return out
    ux.alone()
    await ux.before_writes()
    timezone, country, currency = await _connector_defaults(ux)
    rows = [
        {
            "name": f"Location {ext}"[:200],
            "timezone": timezone,
            "currency": (wanted[ext] or currency).upper(),
            "country": country,
            "phone": None,
            "outreach_mode": "own",
            "quiet_hours_start": "09:00",
            "quiet_hours_end": "20:00",
            "active": True,
            "created_at": ux.now,
            "updated_at": ux.now,
        }
        for ext in missing
    ]
    ids = await insert_rows(ux.conn, location_t, rows, want_ids=True)
    ref_rows = []
    for ext, row, unified in zip(missing, rows, ids, strict=True):
        out[ext] = unified
        ref_rows.append(refs_mod.new_ref(ux.connector_id, "location", ext, unified, None, None, ux.now))
        ux.feed.add("location", unified, "insert", {k: row[k] for k in ("name", "timezone", "currency", "country")},
                    ux.now)
    await refs_mod.insert_refs(ux.conn, ref_rows)
    return out


async def _connector_defaults(ux: UpsertContext) -> tuple[str, str, str]:
    ref_t = refs_mod.ref_t
    row = (
        await ux.conn.execute(
            select(location_t.c.timezone, location_t.c.country, location_t.c.currency)
            .join(ref_t, (ref_t.c.unified_id == location_t.c.id) & (ref_t.c.object_type == "location"))
            .where(ref_t.c.connector_id == ux.connector_id, ref_t.c.payload_hash.is_not(None))
            .order_by(location_t.c.id)
            .limit(1)
        )
    ).first()
    if row is None:
        return "UTC", "US", "USD"
    return row[0], row[1], row[2]


async def upsert_associates(ux: UpsertContext, items: list[Item]) -> dict[int, Outcome]:
    locations = await ensure_locations(
        ux, {i.record.location_external_id: None for i in items if i.record.location_external_id}
    )

    async def to_values(item: Item) -> dict[str, Any] | Outcome:
        rec = item.record
        return {
            "first_name": rec.first_name,
            "last_name": rec.last_name,
            "email": rec.email.strip().lower() if rec.email else None,
            "location_id": locations.get(rec.location_external_id) if rec.location_external_id else None,
            "active": rec.active,
        }

    applied = await upsert_simple(ux, items, object_type="associate", table=associate_t, to_values=to_values,
                                  what="associate")
    return applied.outcomes
