"""The Today page's data: an associate's follow-ups grouped today / overdue / upcoming / done, with
the client context needed to act on each, plus completing, snoozing and managers' completion figures.

"Today" is the local day of the task's location (the automations default timezone for a task
without one). Who sees which task follows the location's outreach mode, as ``core.access`` does for
clients: an associate sees the tasks assigned to them, and in a "store" (communal book) location every
task of that location; a manager sees their locations' tasks; an owner sees all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import false, or_, select, true
from sqlalchemy.sql import ColumnElement
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import Principal
from core.attribution.touches import touch_changed
from core.automations import context as ctx_mod
from core.automations.store import AutomationError, default_timezone
from core.automations.store import conn as _conn
from core.models import Associate, ClientContact, Location, Task, utcnow
from core.timezones import zone

task_t = Task.__table__  # type: ignore[attr-defined]
location_t = Location.__table__  # type: ignore[attr-defined]
GROUPS = ("today", "overdue", "upcoming", "done")


def task_filter(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause limiting ``task`` rows to what the principal may see and act on."""
    if principal.is_owner:
        return true()
    if not principal.location_ids:
        return false()
    locs = list(principal.location_ids)
    if principal.role == "manager":
        return task_t.c.location_id.in_(locs)
    store_mode = select(location_t.c.id).where(location_t.c.id.in_(locs), location_t.c.outreach_mode == "store")
    mine = task_t.c.associate_id == principal.associate_id if principal.associate_id is not None else false()
    return or_(mine, task_t.c.location_id.in_(store_mode))


@dataclass
class TaskView:
    """One task as the Today page shows it."""

    id: int
    title: str
    body: str | None
    kind: str
    state: str
    due_at: datetime
    snoozed_until: datetime | None
    done_at: datetime | None
    automation_id: int | None
    associate: dict[str, Any] | None
    location: dict[str, Any] | None
    client: dict[str, Any] | None  # names, birthday, anniversary, note, phone
    last_purchase: dict[str, Any] | None
    group: str = "today"


@dataclass
class TodayPage:
    today: list[TaskView] = field(default_factory=list)
    overdue: list[TaskView] = field(default_factory=list)
    upcoming: list[TaskView] = field(default_factory=list)
    done: list[TaskView] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {g: len(getattr(self, g)) for g in GROUPS}


def _local_day(at: datetime, tz_name: str) -> date:
    return at.astimezone(zone(tz_name)).date()


def group_of(task: Any, now: datetime, tz_name: str) -> str | None:
    """Which Today group a task belongs in at ``now`` (None: not shown)."""
    today = _local_day(now, tz_name)
    if task.state == "done":
        return "done" if task.done_at is not None and _local_day(task.done_at, tz_name) == today else None
    if task.state == "cancelled":
        return None
    due = task.due_at
    if task.state == "snoozed" and task.snoozed_until is not None:
        if task.snoozed_until > now:
            return "upcoming"
        due = task.snoozed_until
    day = _local_day(due, tz_name)
    if day < today:
        return "overdue"
    return "today" if day == today else "upcoming"


async def today(
    session: AsyncSession, principal: Principal, now: datetime | None = None, *, limit: int = 500
) -> TodayPage:
    """The principal's Today page at ``now``: each group ordered by due time (oldest first)."""
    now = now or utcnow()
    tz_default = await default_timezone(session)
    locations = await ctx_mod.load_locations(session)
    # Done tasks of the last two days at most can be "done today" in some timezone.
    shown = or_(task_t.c.state.in_(("open", "snoozed")), task_t.c.done_at >= now - timedelta(days=2))
    stmt = (
        orm_select(Task)
        .where(task_filter(principal), shown)  # type: ignore[arg-type]
        .order_by(task_t.c.due_at, task_t.c.id)
        .limit(limit)
    )
    tasks = list((await session.exec(stmt)).all())
    clients = await ctx_mod.load_clients(session, (t.client_id for t in tasks if t.client_id is not None))
    purchases = await ctx_mod.last_purchases(session, clients.keys(), locations)
    associates = await ctx_mod.load_associates(session, (t.associate_id for t in tasks))
    phones = await _phones(session, list(clients))
    page = TodayPage()
    for t in tasks:
        tz_name = locations[t.location_id]["timezone"] if t.location_id in locations else tz_default
        group = group_of(t, now, tz_name)
        if group is None:
            continue
        client = clients.get(t.client_id) if t.client_id is not None else None
        if client is not None:
            client = {**client, "phone": phones.get(client["id"])}
        view = TaskView(
            id=t.id,  # type: ignore[arg-type]
            title=t.title,
            body=t.body,
            kind=t.kind,
            state=t.state,
            due_at=t.due_at,
            snoozed_until=t.snoozed_until,
            done_at=t.done_at,
            automation_id=t.automation_id,
            associate=associates.get(t.associate_id) if t.associate_id is not None else None,
            location=locations.get(t.location_id) if t.location_id is not None else None,
            client=client,
            last_purchase=purchases.get(t.client_id) if t.client_id is not None else None,
            group=group,
        )
        getattr(page, group).append(view)
    page.done.sort(key=lambda v: v.done_at or now, reverse=True)
    page.upcoming.sort(key=lambda v: v.snoozed_until or v.due_at)
    return page


async def _phones(session: AsyncSession, client_ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    if not client_ids:
        return out
    contact_t = ClientContact.__table__  # type: ignore[attr-defined]
    stmt = (
        select(contact_t.c.client_id, contact_t.c.value)
        .where(contact_t.c.client_id.in_(client_ids), contact_t.c.kind == "phone", contact_t.c.unusable.is_(False))
        .order_by(contact_t.c.client_id, contact_t.c.is_primary.desc(), contact_t.c.created_at.desc())
    )
    for cid, value in (await (await _conn(session)).execute(stmt)).all():
        out.setdefault(int(cid), value)
    return out


async def _visible_task(session: AsyncSession, principal: Principal, task_id: int) -> Task:
    stmt = orm_select(Task).where(task_t.c.id == task_id, task_filter(principal)).with_for_update()  # type: ignore[arg-type]
    task = (await session.exec(stmt)).first()
    if task is None:
        raise AutomationError(f"no task {task_id} on your Today page")
    return task


async def complete_task(
    session: AsyncSession, principal: Principal, task_id: int, *, now: datetime | None = None, note: str | None = None
) -> Task:
    """Mark a follow-up done (in the caller's transaction; audited)."""
    now = now or utcnow()
    task = await _visible_task(session, principal, task_id)
    if task.state not in ("open", "snoozed"):
        raise AutomationError(f"task {task_id} is {task.state}; only open or snoozed tasks can be completed")
    task.state = "done"
    task.done_at = now
    task.snoozed_until = None
    session.add(task)
    if task.kind in ("call", "text"):
        await touch_changed(session, entity="task", entity_id=task.id, client_id=task.client_id, at=now,
                            state="done", origin=principal.email or "system")
    await audit.record(
        session,
        "task.complete",
        actor=principal.email or "system",
        actor_user_id=principal.user_id,
        target_type="task",
        target_id=task_id,
        details={"note": note} if note else {},
    )
    return task


async def snooze_task(
    session: AsyncSession, principal: Principal, task_id: int, until: datetime, *, now: datetime | None = None
) -> Task:
    """Hide a follow-up until ``until`` (it then comes back as due); audited."""
    now = now or utcnow()
    if until.tzinfo is None:
        raise AutomationError("snooze until must be timezone-aware")
    if until <= now:
        raise AutomationError("snooze until a moment in the future")
    task = await _visible_task(session, principal, task_id)
    if task.state not in ("open", "snoozed"):
        raise AutomationError(f"task {task_id} is {task.state}; only open or snoozed tasks can be snoozed")
    task.state = "snoozed"
    task.snoozed_until = until.astimezone(UTC)
    session.add(task)
    await audit.record(
        session,
        "task.snooze",
        actor=principal.email or "system",
        actor_user_id=principal.user_id,
        target_type="task",
        target_id=task_id,
        details={"until": until.isoformat()},
    )
    return task


async def dismiss_task(session: AsyncSession, principal: Principal, task_id: int, *, reason: str | None = None) -> Task:
    """Cancel a follow-up that no longer makes sense (audited; it never comes back)."""
    task = await _visible_task(session, principal, task_id)
    if task.state not in ("open", "snoozed"):
        raise AutomationError(f"task {task_id} is {task.state}")
    task.state = "cancelled"
    session.add(task)
    await audit.record(
        session,
        "task.dismiss",
        actor=principal.email or "system",
        actor_user_id=principal.user_id,
        target_type="task",
        target_id=task_id,
        details={"reason": reason} if reason else {},
    )
    return task


@dataclass
class Completion:
    associate_id: int | None
    associate: str
    location_id: int | None
    due: int = 0  # tasks due that local day
    done: int = 0  # of those, completed (any time)
    open: int = 0  # of those, still open or snoozed
    overdue: int = 0  # all tasks still open from before that day

    @property
    def rate(self) -> float | None:
        return None if not self.due else self.done / self.due


async def manager_completion(session: AsyncSession, principal: Principal, day: date) -> list[Completion]:
    """Per associate in the principal's scope: tasks due on ``day`` (local), done, still open, overdue."""
    tz_default = await default_timezone(session)
    locations = await ctx_mod.load_locations(session)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    end = start + timedelta(days=3)
    stmt = orm_select(Task).where(
        task_filter(principal),  # type: ignore[arg-type]
        task_t.c.state != "cancelled",
        or_(task_t.c.due_at.between(start, end), task_t.c.state.in_(("open", "snoozed"))),
    )
    tasks = list((await session.exec(stmt)).all())
    associate_t = Associate.__table__  # type: ignore[attr-defined]
    ids = {t.associate_id for t in tasks if t.associate_id is not None}
    names = (
        {
            int(r.id): (" ".join(p for p in (r.first_name, r.last_name) if p) or f"associate {r.id}", r.location_id)
            for r in (await (await _conn(session)).execute(select(associate_t).where(associate_t.c.id.in_(ids)))).all()
        }
        if ids
        else {}
    )
    rows: dict[int | None, Completion] = {}
    for t in tasks:
        name, loc = names.get(t.associate_id, ("Unassigned", t.location_id)) if t.associate_id else ("Unassigned", None)
        row = rows.setdefault(t.associate_id, Completion(t.associate_id, name, loc))
        tz_name = locations[t.location_id]["timezone"] if t.location_id in locations else tz_default
        due_day = _local_day(t.due_at, tz_name)
        if due_day == day:
            row.due += 1
            if t.state == "done":
                row.done += 1
            else:
                row.open += 1
        elif due_day < day and t.state in ("open", "snoozed"):
            row.overdue += 1
    return sorted(rows.values(), key=lambda r: (r.associate_id is None, r.associate.lower()))
