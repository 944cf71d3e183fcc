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
        stmt2 = select(*cols).where(table.c.automation_id == automation.id).order_by(table.c.id.desc()).limit(limit)
        for r in (await (await _conn(session)).execute(stmt2)).mappings():
            out.recent.append({**dict(r), "type": "text" if model is Outreach else "task"})
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
