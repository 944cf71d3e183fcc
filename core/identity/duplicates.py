"""The duplicates report: likely duplicates the rules did not merge, for a person to review.

Meant for the one-time clean-up before go-live and for the clusters identity resolution would not
touch. Each group says why it is listed:

- ``shared_email`` / ``shared_phone``: live clients sharing a matchable value (kept apart by the
  cluster-size cap, by ``on_match="create"``, or because the key is not a match key);
- ``shared_junk``: clients sharing a placeholder or store value — usually different people, listed
  so staff can fix the POS records;
- ``name_birthday``: same name (ignoring case and spacing) and same birthday;
- ``email_typo``: the same email local part at domains one or two keystrokes apart
  (``jane.doe@gmail.com`` / ``jane.doe@gmial.com``).

Pairs a person unmerged are not listed again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.identity.clusters import blocked_pairs
from core.models import Client, ClientContact

Reason = Literal["shared_email", "shared_phone", "shared_junk", "name_birthday", "email_typo"]


@dataclass
class DuplicateGroup:
    reason: Reason
    key: str  # the shared value, or "first last YYYY-MM-DD", or the email local part
    client_ids: list[int]


def _live():  # type: ignore[no-untyped-def]
    return col(Client.merged_into_id).is_(None)


async def duplicates_report(session: AsyncSession, limit: int = 100) -> list[DuplicateGroup]:
    """Up to ``limit`` groups of likely duplicates, most members first within each reason."""
    groups: list[DuplicateGroup] = []
    groups += await _shared_values(session, limit)
    groups += await _name_birthday(session, limit)
    groups += await _email_typos(session, limit)
    members = {i for g in groups for i in g.client_ids}
    blocked = await blocked_pairs(session, members) if members else set()
    kept = [g for g in groups if not (len(g.client_ids) == 2 and frozenset(g.client_ids) in blocked)]
    return kept[:limit]


async def _shared_values(session: AsyncSession, limit: int) -> list[DuplicateGroup]:
    count = func.count(func.distinct(ClientContact.client_id))
    shared = (
        select(ClientContact.kind, ClientContact.value, ClientContact.unusable)
        .join(Client, col(Client.id) == col(ClientContact.client_id))
        .where(_live())
        .group_by(ClientContact.kind, ClientContact.value, ClientContact.unusable)
        .having(count > 1)
        .order_by(count.desc(), ClientContact.value)
        .limit(limit)
    )
    keys = [(k, v, bool(u)) for k, v, u in (await session.exec(shared)).all()]
    if not keys:
        return []
    found: dict[tuple[str, str, bool], set[int]] = defaultdict(set)
    rows = (
        await session.exec(
            select(ClientContact.kind, ClientContact.value, ClientContact.unusable, ClientContact.client_id)
            .join(Client, col(Client.id) == col(ClientContact.client_id))
            .where(_live(), col(ClientContact.value).in_(sorted({v for _, v, _ in keys})))
        )
    ).all()
    for kind, value, unusable, client_id in rows:
        found[(kind, value, bool(unusable))].add(int(client_id))
    out = []
    for kind, value, junk in keys:
        reason: Reason = "shared_junk" if junk else ("shared_email" if kind == "email" else "shared_phone")
        out.append(DuplicateGroup(reason, value, sorted(found[(kind, value, junk)])))
    return out


async def _name_birthday(session: AsyncSession, limit: int) -> list[DuplicateGroup]:
    first, last = func.lower(Client.first_name), func.lower(Client.last_name)
    groups = (
        select(first, last, Client.birthday)
        .where(_live(), col(Client.birthday).is_not(None), Client.first_name != "", Client.last_name != "")
        .group_by(first, last, Client.birthday)
        .having(func.count() > 1)
        .order_by(func.count().desc())
        .limit(limit)
    )
    keys = {(f, la, b) for f, la, b in (await session.exec(groups)).all()}
    if not keys:
        return []
    birthdays = sorted({b for _, _, b in keys})
    found: dict[tuple[str, str, date], list[int]] = defaultdict(list)
    rows = (
        await session.exec(
            select(Client.id, Client.first_name, Client.last_name, Client.birthday)
            .where(_live(), col(Client.birthday).in_(birthdays))
            .order_by(Client.id)
        )
    ).all()
    for client_id, f, la, b in rows:
        key = (f.lower(), la.lower(), b)
        if key in keys:
            found[key].append(int(client_id))
    return [
        DuplicateGroup("name_birthday", f"{f} {la} {b.isoformat()}", ids)
        for (f, la, b), ids in sorted(found.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]


async def _email_typos(session: AsyncSession, limit: int) -> list[DuplicateGroup]:
    if session.bind.dialect.name == "postgresql":
        local = func.split_part(ClientContact.value, "@", 1)
    else:
        local = func.substr(ClientContact.value, 1, func.instr(ClientContact.value, "@") - 1)
    candidates = (
        select(local.label("local"))
        .join(Client, col(Client.id) == col(ClientContact.client_id))
        .where(_live(), ClientContact.kind == "email", col(ClientContact.unusable).is_(False), func.length(local) >= 4)
        .group_by(local)
        .having(
            func.count(func.distinct(ClientContact.value)) > 1, func.count(func.distinct(ClientContact.client_id)) > 1
        )
        .limit(limit * 20)
    )
    locals_ = [r for r in (await session.exec(candidates)).all()]
    if not locals_:
        return []
    rows = (
        await session.exec(
            select(local, ClientContact.value, ClientContact.client_id)
            .join(Client, col(Client.id) == col(ClientContact.client_id))
            .where(_live(), ClientContact.kind == "email", local.in_(locals_))
        )
    ).all()
    by_local: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for loc, value, client_id in rows:
        by_local[loc][value.rpartition("@")[2]].add(int(client_id))
    out: list[DuplicateGroup] = []
    for loc in sorted(by_local):
        domains = sorted(by_local[loc])
        ids: set[int] = set()
        for i, a in enumerate(domains):
            for b in domains[i + 1 :]:
                if _close(a, b) and by_local[loc][a] != by_local[loc][b]:
                    ids |= by_local[loc][a] | by_local[loc][b]
        if len(ids) > 1:
            out.append(DuplicateGroup("email_typo", loc, sorted(ids)))
        if len(out) >= limit:
            break
    return out


def _close(a: str, b: str) -> bool:
    """Domains at most two edits apart (insert, delete, substitute, swap neighbours)."""
    if abs(len(a) - len(b)) > 2:
        return False
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)] <= 2
