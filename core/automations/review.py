"""Looking at an automation before and after it runs: dry run, a preview with a real client, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.automations import context as ctx_mod
from core.automations.evaluate import AutomationRun, evaluate
from core.automations.store import conn as _conn
from core.automations.store import default_timezone, ensure_automations, get_automation, type_of
from core.automations.templates import render
from core.models import Automation, Outreach, Task, utcnow
from core.runtime import Runtime
from core.timezones import zone


async def dry_run(rt: Runtime, name: str, *, now: datetime | None = None) -> AutomationRun:
    """Who would get what if ``name`` ran at ``now`` — enabled or not; the real run's SQL, no writes."""
    return (await evaluate(rt, now=now, names=[name], dry_run=True))[0]


@dataclass
class Preview:
    automation: str
    client_id: int
    body: str
    title: str | None


async def preview_for_client(
    rt: Runtime, name: str, client_id: int, *, now: datetime | None = None, template: str | None = None
) -> Preview:
    """The automation's text (and task title) rendered for one real client, as if their occasion were
    today. Raises ``TemplateProblem`` with the reason when it cannot be rendered."""
    now = now or utcnow()
    async with rt.db.transaction() as session:
        await ensure_automations(session, rt.registry)
        automation = await get_automation(session, name)
        atype = type_of(rt.registry, automation)
        locations = await ctx_mod.load_locations(session)
        clients = await ctx_mod.load_clients(session, [client_id])
        if client_id not in clients:
            from core.automations.store import AutomationError

            raise AutomationError(f"no client with id {client_id}")
        client = clients[client_id]
        owner = (await ctx_mod.load_associates(session, [client["owner_associate_id"]])).get(
            client["owner_associate_id"]
        )
        purchase = (await ctx_mod.last_purchases(session, [client_id], locations)).get(client_id)
        tz_name = (
            locations[client["home_location_id"]]["timezone"]
            if client["home_location_id"] in locations
            else await default_timezone(session)
        )
    day = now.astimezone(zone(tz_name)).date()
    years = None
    for fld in ("birthday", "anniversary"):
        if atype.name == fld and client.get(fld):
            years = day.year - client[fld].year
    context: dict[str, Any] = {
        "client": client,
        "associate": owner,
        "location": locations.get(client["home_location_id"]),
        "last_purchase": purchase,
        "sale": purchase,
        "product": {"name": (purchase or {}).get("item"), "category": None, "sku": None, "vendor": None}
        if purchase
        else None,
        "occasion": {"name": atype.name, "key": "preview", "date": day, "due_at": now, "years": years, "number": 1},
    }
    source = automation.template if template is None else template
    body = render(source, context)
    title = render(atype.task_title, context) if automation.action == "task" else None
    return Preview(automation=name, client_id=client_id, body=body, title=title)


@dataclass
class History:
    automation: str
    action: str
    counts: dict[str, int] = field(default_factory=dict)  # by state
    recent: list[dict[str, Any]] = field(default_factory=list)


async def history(session: AsyncSession, name: str, *, limit: int = 50) -> History:
    """What an automation has fired: counts by state, and the latest rows (texts and tasks)."""
    automation: Automation = await get_automation(session, name)
    out = History(automation=name, action=automation.action)
    for model in (Outreach, Task):
        table = model.__table__  # type: ignore[attr-defined]
        stmt = select(table.c.state, func.count()).where(table.c.automation_id == automation.id).group_by(table.c.state)
        for state, n in (await (await _conn(session)).execute(stmt)).all():
            out.counts[state] = out.counts.get(state, 0) + int(n)
        cols = [
            table.c.id,
            table.c.client_id,
            table.c.state,
            table.c.occasion_key,
            table.c.due_at,
            table.c.created_at,
            table.c.body,
            table.c.associate_id,
            table.c.location_id,
        ]
        if model is Outreach:
            cols.append(table.c.state_reason)
        stmt2 = select(*cols).where(table.c.automation_id == automation.id).order_by(table.c.id.desc()).limit(limit)
        for r in (await (await _conn(session)).execute(stmt2)).mappings():
            out.recent.append({"state_reason": None, **dict(r), "type": "text" if model is Outreach else "task"})
    out.recent.sort(key=lambda r: r["created_at"], reverse=True)
    out.recent = out.recent[:limit]
    return out


async def replay_error(rt: Runtime, error_id: int, *, now: datetime | None = None) -> tuple[bool, str]:
    """Re-evaluate the occasions an automation error-queue row holds (after the template was fixed).

    Occasions still due fire now (once: their keys are unique); the row is marked ``replayed`` when
    none of them fails again. Occasions whose catch-up window has passed no longer fire.
    """
    from core.models import SyncError

    async with rt.db.session() as session:
        error = await session.get(SyncError, error_id)
    if error is None or error.stage != "automation":
        return False, f"no automation error {error_id}"
    payload = error.payload if isinstance(error.payload, dict) else {}
    name = payload.get("automation")
    clients = sorted({int(o["client_id"]) for o in payload.get("occasions", []) if o.get("client_id")})
    if not name or not clients:
        return False, "the error names no automation or clients"
    [run] = await evaluate(rt, names=[name], client_ids=clients, now=now)
    if run.errors:
        return False, "; ".join(run.problems) or "the template still fails"
    if not run.created:
        return False, "nothing is due any more (the occasions' catch-up window has passed); dismiss the error"
    async with rt.db.transaction() as session:
        row = await session.get(SyncError, error_id, with_for_update=True)
        if row is not None and row.state == "open":
            row.state = "replayed"
            row.replayed_at = utcnow()
            session.add(row)
    return True, f"{run.created} occasion(s) fired"


# ------------------------------------------------------------------------------------------- reach


@dataclass
class Reach:
    """How many clients an automation can text at all, and why the rest cannot (reason code → count).

    The population is the live clients whose home store is in the automation's (and the viewer's)
    scope, less those missing the date the occasion needs (``no_date``, e.g. no birthday on file).
    Each is judged by the outbox's own send rules at ``now``: a client in quiet hours is reachable
    (the text waits), counted apart in ``waiting``."""

    automation: str
    action: str
    population: int = 0
    reachable: int = 0
    waiting: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    date_field: str | None = None

    def reason_rows(self) -> list[tuple[str, str, int]]:
        from core.outreach.eligibility import REASONS

        words = {**REASONS, "no_date": f"no {self.date_field or 'date'} on file"}
        return [(code, words.get(code, code), n) for code, n in sorted(self.reasons.items(), key=lambda kv: -kv[1])]


async def _date_fields(rt: Runtime, automation: Automation, now: datetime) -> set[str]:
    """The client dates an automation's occasions need (birthday, anniversary), from its branches."""
    from datetime import timedelta

    from core.automations.occasions import OccasionSet, SqlOccasionQuery
    from core.automations.store import settings_of

    atype = type_of(rt.registry, automation)
    settings = settings_of(atype, automation)
    out: set[str] = set()
    # Date branches exist only for days whose send time has come somewhere: look across a day.
    for hours in (0, 12, 24):
        query = SqlOccasionQuery(
            now=now + timedelta(hours=hours), automation_id=automation.id or 0, locations={}, default_timezone="UTC"
        )
        try:
            occasions = atype.occasions(query, settings)
        except NotImplementedError:
            return out
        if isinstance(occasions, OccasionSet):
            out.update(b.field_name for b in occasions.branches if b.kind == "client_date" and b.field_name)
    return out


async def reach(
    rt: Runtime, name: str, *, now: datetime | None = None, location_ids: list[int] | None = None
) -> Reach:
    """Who ``name`` can text (see :class:`Reach`); ``location_ids`` narrows to a viewer's stores."""
    from sqlalchemy import and_

    from core.automations.store import scope_ids
    from core.models import Client
    from core.outreach import eligibility

    now = now or utcnow()
    async with rt.db.session() as session:
        await ensure_automations(session, rt.registry)
        automation = await get_automation(session, name)
        out = Reach(automation=name, action=automation.action)
        fields = await _date_fields(rt, automation, now)
        out.date_field = next(iter(sorted(fields)), None)
        client_t = Client.__table__  # type: ignore[attr-defined]
        where = [client_t.c.merged_into_id.is_(None), client_t.c.archived.is_(False)]
        for ids in (scope_ids(automation), location_ids):
            if ids is not None:
                where.append(client_t.c.home_location_id.in_(ids))
        conn = await _conn(session)
        has_date = and_(*(client_t.c[f].is_not(None) for f in fields)) if fields else None
        total = (await conn.execute(select(func.count()).select_from(client_t).where(*where))).scalar_one()
        out.population = int(total)
        stmt = select(client_t.c.id).where(*where)
        if has_date is not None:
            stmt = stmt.where(has_date)
        ids = [int(i) for i in (await conn.execute(stmt)).scalars().all()]
        if len(ids) < out.population:
            out.reasons["no_date"] = out.population - len(ids)
        facts = await eligibility.load_facts(session, ids, kind="marketing")
    for cid in ids:
        decision = eligibility.decide(facts[cid], kind="marketing", now=now)
        if decision.action == "send":
            out.reachable += 1
        elif decision.action == "defer":
            out.reachable += 1
            out.waiting += 1
        else:
            code = decision.code or "other"
            out.reasons[code] = out.reasons.get(code, 0) + 1
    return out
