"""Clusters of clients linked by shared contact values, found in SQL from the changed records only.

A cluster is a connected component of the graph whose nodes are live clients and whose edges are
shared matchable contact values (the match keys, minus junk and stop-listed values). It is walked by
a recursive CTE from each seed (a client the page touched that shares a value with another live
client; one query finds them), bounded by the cluster-size
cap, so neither the whole table nor a pathological component (a shop phone nobody stop-listed
shared by thousands) is ever loaded. Then every client of a small enough cluster is merged into its
oldest member, except pairs a person has unmerged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from sqlalchemy import bindparam, func, or_, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.identity.merge import merge_clients
from core.identity.settings import IdentitySettings
from core.models import ClientContact, ClientMerge, ExternalRef
from core.sync.bulk import pg_driver

_COMPONENT = text(
    """
    WITH RECURSIVE reach(client_id) AS (
        SELECT CAST(:seed AS BIGINT)
        UNION
        SELECT c2.client_id
        FROM reach
        JOIN client_contact c1 ON c1.client_id = reach.client_id
        JOIN client_contact c2 ON c2.kind = c1.kind AND c2.value = c1.value AND c2.client_id <> c1.client_id
        JOIN client k ON k.id = c2.client_id
        WHERE c1.kind IN :kinds AND c1.value NOT IN :stop
          AND c1.unusable = :no AND c2.unusable = :no AND k.merged_into_id IS NULL
    )
    SELECT client_id FROM reach LIMIT :limit
    """
).bindparams(bindparam("kinds", expanding=True), bindparam("stop", expanding=True))


_LINKED = text(
    """
    SELECT DISTINCT c1.client_id
    FROM client_contact c1
    JOIN client_contact c2 ON c2.kind = c1.kind AND c2.value = c1.value AND c2.client_id <> c1.client_id
    JOIN client k ON k.id = c2.client_id
    WHERE c1.client_id IN :ids AND c1.kind IN :kinds AND c1.value NOT IN :stop
      AND c1.unusable = :no AND c2.unusable = :no AND k.merged_into_id IS NULL
    """
).bindparams(bindparam("ids", expanding=True), bindparam("kinds", expanding=True), bindparam("stop", expanding=True))


# PostgreSQL: client by client, then value by value, each an index probe. During a backfill the
# statistics describe a far smaller table, and the join above was planned as a walk over every contact
# of the kinds: a page cost O(table). OFFSET 0 keeps the subqueries from being flattened into joins.
_LINKED_PG = """
    SELECT DISTINCT c1.client_id
    FROM unnest($1::bigint[]) AS i(id)
    CROSS JOIN LATERAL (
        SELECT client_id, kind, value FROM client_contact
        WHERE client_id = i.id AND kind = ANY($2::text[]) AND value <> ALL($3::text[]) AND NOT unusable OFFSET 0
    ) AS c1
    CROSS JOIN LATERAL (
        SELECT 1 FROM client_contact c2 JOIN client k ON k.id = c2.client_id
        WHERE c2.kind = c1.kind AND c2.value = c1.value AND c2.client_id <> c1.client_id
          AND NOT c2.unusable AND k.merged_into_id IS NULL
        LIMIT 1
    ) AS other
"""


async def linked_clients(
    session: AsyncSession, ids: Iterable[int], *, kinds: Iterable[str], stop: Iterable[str]
) -> list[int]:
    """Which of ``ids`` share a matchable value with another live client: the seeds worth walking."""
    ids = sorted(ids)
    if not ids:
        return []
    if session.bind.dialect.name == "postgresql":
        found = await (await pg_driver(await session.connection())).fetch(_LINKED_PG, ids, list(kinds), [*stop, ""])
        return sorted(int(r[0]) for r in found)
    rows = await session.exec(  # type: ignore[call-overload]
        _LINKED, params={"ids": ids, "kinds": list(kinds), "stop": [*stop, ""], "no": False}
    )
    return sorted(int(r[0]) for r in rows.all())


async def component(
    session: AsyncSession, seed: int, *, kinds: Iterable[str], stop: Iterable[str], limit: int
) -> set[int]:
    """The ids of the clients linked to ``seed`` (itself included), at most ``limit`` of them."""
    rows = await session.exec(  # type: ignore[call-overload]
        _COMPONENT,
        params={"seed": seed, "kinds": list(kinds), "stop": [*stop, ""], "no": False, "limit": limit},
    )
    return {int(r[0]) for r in rows.all()}


async def blocked_pairs(session: AsyncSession, ids: Iterable[int]) -> set[frozenset[int]]:
    """Pairs of clients a person unmerged: automatic resolution must not merge them again."""
    ids = sorted(ids)
    rows = (
        await session.exec(
            select(ClientMerge.survivor_id, ClientMerge.absorbed_id).where(
                col(ClientMerge.undone_at).is_not(None),
                or_(col(ClientMerge.survivor_id).in_(ids), col(ClientMerge.absorbed_id).in_(ids)),
            )
        )
    ).all()
    return {frozenset((int(a), int(b))) for a, b in rows}


async def resolve_clusters(
    session: AsyncSession,
    seeds: Iterable[int],
    *,
    settings: IdentitySettings,
    types: Mapping[int, str],
    stop: Iterable[str],
    origin: str,
) -> dict[int, int]:
    """Merge the clusters around ``seeds``; returns {absorbed id: survivor id} for the merges made."""
    stop = list(stop)
    cap = settings.cluster_size_cap
    done: set[int] = set()
    merged_into: dict[int, int] = {}
    for seed in sorted(set(seeds)):
        if seed in done:
            continue
        members = await component(session, seed, kinds=settings.match_keys, stop=stop, limit=cap + 1)
        done |= members
        if len(members) < 2 or len(members) > cap:
            continue  # alone, or too big to merge automatically (the duplicates report lists it)
        ref_count = (
            await session.exec(
                select(func.count())
                .select_from(ExternalRef)
                .where(ExternalRef.object_type == "client", col(ExternalRef.unified_id).in_(sorted(members)))
            )
        ).one()
        if int(ref_count) > cap:
            continue
        values: dict[int, set[tuple[str, str]]] = defaultdict(set)
        for client_id, kind, value in (
            await session.exec(
                select(ClientContact.client_id, ClientContact.kind, ClientContact.value).where(
                    col(ClientContact.client_id).in_(sorted(members)), col(ClientContact.unusable).is_(False)
                )
            )
        ).all():
            if kind in settings.match_keys and value not in stop:
                values[int(client_id)].add((kind, value))
        blocked = await blocked_pairs(session, members)
        survivor = min(members)
        group = {survivor}
        group_values = set(values[survivor])
        pending = sorted(members - group)
        # Repeat until stable: a member may link to the group only through another member.
        progress = True
        while pending and progress:
            progress = False
            for other in list(pending):
                shared = group_values & values[other]
                if not shared or any(frozenset((other, g)) in blocked for g in group):
                    continue
                reason = "rule:" + "+".join(sorted({kind for kind, _ in shared}))
                await merge_clients(
                    session,
                    survivor,
                    other,
                    actor="system",
                    reason=reason,
                    origin=origin,
                    settings=settings,
                    types=types,
                )
                merged_into[other] = survivor
                group.add(other)
                group_values |= values[other]
                pending.remove(other)
                progress = True
    return merged_into


async def resolve_existing(session: AsyncSession, *, origin: str = "system", limit: int = 10_000) -> dict[int, int]:
    """Apply the current rules to clients already stored (after the settings changed, say: a higher cap,
    ``on_match`` back to ``update``). Walks only clients that share a matchable value with another
    live client, at most ``limit`` of them per call; returns {absorbed id: survivor id}."""
    from core.identity.ingest import load_stop_list
    from core.identity.merge import connector_types, identity_lock
    from core.identity.settings import load_identity_settings

    await identity_lock(session)
    settings = await load_identity_settings(session)
    if settings.on_match != "update" or not settings.match_keys:
        return {}
    stop, _ = await load_stop_list(session, settings)
    shared = (
        select(ClientContact.kind, ClientContact.value)
        .where(col(ClientContact.unusable).is_(False), col(ClientContact.kind).in_(settings.match_keys))
        .group_by(ClientContact.kind, ClientContact.value)
        .having(func.count(func.distinct(ClientContact.client_id)) > 1)
        .subquery()
    )
    seeds = (
        await session.exec(
            select(func.min(ClientContact.client_id))
            .join(shared, (shared.c.kind == ClientContact.kind) & (shared.c.value == ClientContact.value))
            .where(col(ClientContact.value).not_in(stop.values() or [""]))
            .group_by(ClientContact.kind, ClientContact.value)
            .limit(limit)
        )
    ).all()
    return await resolve_clusters(
        session,
        [int(s) for s in seeds],
        settings=settings,
        types=await connector_types(session),
        stop=stop.values(),
        origin=origin,
    )
