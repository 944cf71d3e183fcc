"""Clients go through identity resolution (``core.identity.ingest_clients``), not a plain upsert.

Identity owns client references (and their payload hashes: it skips records that did not change);
the engine makes sure home locations exist, hands the page over in the page transaction, and turns
identity's warnings (a value dropped as invalid) into error-queue rows.
"""

from __future__ import annotations

from core.sync import refs as refs_mod
from core.sync.context import CREATED, UNCHANGED, UPDATED, Item, Outcome, UpsertContext
from core.sync.upsert_org import ensure_locations


async def upsert_clients(ux: UpsertContext, items: list[Item]) -> dict[int, Outcome]:
    from core.identity import ingest_clients  # late: identity is a sibling package with its own imports

    outcomes: dict[int, Outcome] = {}
    await ensure_locations(ux, {i.record.home_location_external_id: None for i in items
                                if i.record.home_location_external_id})
    # Identity also uses this connector's locations for the phone default region, so pass them all.
    location_ids = await refs_mod.all_of_type(ux.conn, ux.connector_id, "location")
    # Feed rows collected so far precede identity's own, which it adds through the ORM session.
    await ux.feed.flush(ux.conn)
    results = await ingest_clients(
        ux.session,
        connector_id=ux.connector_id,
        records=[i.record for i in items],
        location_ids=location_ids,
        origin=ux.origin,
    )
    by_ext = {r.external_id: r for r in results}
    for item in items:
        result = by_ext.get(item.external_id)
        if result is None:
            outcomes[item.index] = Outcome.failed("identity resolution returned no result for this record",
                                                  kind="ingest")
            continue
        status = CREATED if result.created else UPDATED if result.changed else UNCHANGED
        outcomes[item.index] = Outcome(status, warnings=list(getattr(result, "warnings", []) or []))
    return outcomes
