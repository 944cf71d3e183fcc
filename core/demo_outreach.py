"""The demo chain's recent clienteling: texts, replies and calls in the weeks before its sales.

The point-of-sale sandbox generates years of sales, but outreach lives in Clasp, so a fresh demo
would have sales and no outreach to credit them to. After the first backfill the demo writes the
last ``days`` of clienteling as Clasp would have recorded it: for about half the recent sales with a
client, a delivered text (some answered) or a completed call/text task from one to twenty days
before, mostly by an associate of the store where the client then bought and sometimes from another
store (cross-store credit), for some of them after a colleague's earlier text (touches competing
for one sale); and as many texts that led to no sale, a few of them undelivered.
Then the attribution consumer's full pass credits the sales, exactly as it would for real outreach.

Deterministic for a seed, and written once: the ``demo`` app setting remembers it was done.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from core import app_settings
from core.attribution.jobs import recompute_all
from core.demo import SETTING_KEY
from core.models import Associate, Client, ClientContact, Outreach, Sale, Task, utcnow
from core.runtime import Runtime

DONE_KEY = "outreach_history"

TEXTS = (
    "Hi {first}, the piece you tried on is back in stock. Shall I set it aside for you?",
    "Hi {first}, our new bridal collection arrived this week. I'd love to show it to you.",
    "Hi {first}, your watch is serviced and ready whenever suits you.",
    "Hi {first}, a little reminder: complimentary cleaning for your rings this month.",
    "Hi {first}, we have the matching earrings to your pendant now.",
)
REPLIES = ("That sounds lovely, I'll come by Saturday.", "Yes please, hold it for me!", "Thank you! See you soon.")


@dataclass
class HistoryResult:
    texts: int = 0
    replies: int = 0
    tasks: int = 0
    credited: int = 0
    skipped: bool = False


async def _done(rt: Runtime) -> bool:
    async with rt.db.session() as session:
        return bool((await app_settings.read(session, SETTING_KEY)).get(DONE_KEY))


async def generate_outreach_history(rt: Runtime, *, days: int = 90, seed: int = 7) -> HistoryResult:
    """Write the recent outreach once (see the module docstring) and credit the sales."""
    if await _done(rt):
        return HistoryResult(skipped=True)
    rng = random.Random(seed)
    now = utcnow()
    since = now - timedelta(days=days)
    result = HistoryResult()
    async with rt.db.transaction() as session:
        conn = await session.connection()
        staff: dict[int, list[int]] = defaultdict(list)
        for aid, loc in (await conn.execute(select(Associate.id, Associate.location_id)
                                            .where(Associate.active.is_(True)))).all():  # type: ignore[attr-defined]
            if loc is not None:
                staff[int(loc)].append(int(aid))
        if not staff:
            return HistoryResult(skipped=True)
        locations = sorted(staff)
        sales = (await conn.execute(
            select(Sale.client_id, Sale.location_id, Sale.occurred_at)
            .where(Sale.status == "completed", Sale.client_id.is_not(None), Sale.occurred_at >= since)  # type: ignore[union-attr,operator]
            .order_by(Sale.occurred_at)  # type: ignore[arg-type]
        )).all()
        phones = {int(c): v for c, v in (await conn.execute(
            select(ClientContact.client_id, ClientContact.value)
            .where(ClientContact.kind == "phone", ClientContact.is_primary.is_(True))  # type: ignore[attr-defined]
        )).all()}
        names = (await conn.execute(select(Client.id, Client.first_name))).all()
        first_names = {int(c): n or "there" for c, n in names}
        texts: list[dict[str, Any]] = []
        tasks: list[dict[str, Any]] = []

        def text(client: int, assoc: int, loc: int, at: datetime, state: str = "delivered") -> None:
            body = rng.choice(TEXTS).format(first=first_names.get(client, "there"))
            texts.append({
                "client_id": client, "associate_id": assoc, "location_id": loc, "channel": "sms",
                "direction": "outbound", "kind": "marketing", "to_address": phones.get(client), "body": body,
                "state": state, "due_at": at - timedelta(minutes=1), "sent_at": at - timedelta(seconds=4),
                "delivered_at": at if state == "delivered" else None, "provider_status": state,
                "error_code": "30006" if state == "undelivered" else None, "attempts": 1,
                "created_at": at - timedelta(minutes=1), "updated_at": at, "media_urls": [],
            })

        touched: set[int] = set()
        for client_id, sale_loc, sale_at in sales:
            client, sale_loc = int(client_id), int(sale_loc)
            if client in touched or rng.random() > 0.5:
                continue
            touched.add(client)
            at = sale_at - timedelta(hours=rng.uniform(2, 20 * 24))
            if at < since:
                continue
            loc = sale_loc if rng.random() < 0.75 or len(locations) == 1 else rng.choice(
                [x for x in locations if x != sale_loc])
            assoc = rng.choice(staff.get(loc) or staff[locations[0]])
            if rng.random() < 0.3:
                # A colleague (perhaps at another store) reached out a few days earlier: two touches
                # compete for the sale, which the engagement-weighted model shares.
                earlier_loc = rng.choice(locations)
                earlier = at - timedelta(hours=rng.uniform(24, 8 * 24))
                if earlier >= since:
                    text(client, rng.choice(staff[earlier_loc]), earlier_loc, earlier)
                    result.texts += 1
            if rng.random() < 0.65:
                text(client, assoc, loc, at)
                result.texts += 1
                if rng.random() < 0.35 and at + timedelta(hours=1) < sale_at:
                    reply_at = min(at + timedelta(hours=rng.uniform(1, 30)), sale_at - timedelta(minutes=30))
                    texts.append({
                        "client_id": client, "associate_id": assoc, "location_id": loc,
                        "channel": "sms", "direction": "inbound", "kind": "transactional",
                        "from_address": phones.get(client), "body": rng.choice(REPLIES), "state": "received",
                        "provider_status": "received", "due_at": reply_at, "sent_at": reply_at,
                        "read_at": reply_at + timedelta(minutes=20), "attempts": 0, "created_at": reply_at,
                        "updated_at": reply_at, "media_urls": [],
                    })
                    result.replies += 1
            else:
                kind = "call" if rng.random() < 0.7 else "text"
                tasks.append({
                    "client_id": client, "associate_id": assoc, "location_id": loc, "kind": kind,
                    "title": f"{'Call' if kind == 'call' else 'Text'} {first_names.get(client, 'client')}",
                    "state": "done", "due_at": at - timedelta(hours=3), "done_at": at,
                    "created_at": at - timedelta(days=1),
                })
                result.tasks += 1
        # Outreach that led to no sale (yet): as many again, spread over the period, a few undelivered.
        others = sorted(set(phones) - touched)
        for client in rng.sample(others, min(len(others), result.texts + result.tasks)):
            loc = rng.choice(locations)
            at = since + timedelta(seconds=rng.uniform(0, (now - since).total_seconds() - 3600))
            text(client, rng.choice(staff[loc]), loc, at, "undelivered" if rng.random() < 0.08 else "delivered")
            result.texts += 1
        if texts:
            # One executemany needs the same keys in every row.
            keys = {k for row in texts for k in row}
            rows = [{k: row.get(k) for k in keys} for row in texts]
            await conn.execute(insert(Outreach.__table__), rows)  # type: ignore[attr-defined]
        if tasks:
            await conn.execute(insert(Task.__table__), tasks)  # type: ignore[attr-defined]
        value = await app_settings.read(session, SETTING_KEY, for_update=True)
        value[DONE_KEY] = {"at": now.isoformat(), "days": days, "seed": seed}
        await app_settings.write(session, SETTING_KEY, value)
    result.credited = (await recompute_all(rt)).credited
    return result
