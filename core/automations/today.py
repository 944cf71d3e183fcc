"""The Today page's data: an associate's follow-ups grouped today / overdue / upcoming / done, with
the client context needed to act on each, plus completing, snoozing and managers' completion figures.

"Today" is the local day of the task's location (the automations default timezone for a task
without one). Who sees which task follows the location's outreach mode, as ``core.access`` does for
clients: an associate sees the tasks assigned to them, and in a "store" (communal book) location every
task of that location; a manager sees their locations' tasks; an owner sees all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, false, func, literal, or_, select, true
from sqlalchemy.sql import ColumnElement
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import Principal
from core.attribution.touches import touch_changed
from core.automations import context as ctx_mod
from core.automations.store import AutomationError, default_timezone
from core.automations.store import conn as _conn
from core.models import Associate, Automation, Location, Task, utcnow
from core.outreach import textable
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


# How many tasks each group shows before "show more", and how many more each press adds. Overdue is
# capped hardest: a backlog of a hundred old promises must not push today's work off the screen.
CAPS = {"overdue": 10, "today": 10, "upcoming": 5, "done": 5}
MORE = 20
MAX_SHOWN = 200


@dataclass(frozen=True)
class Filters:
    """What the Today page is narrowed to (each None: everything in scope)."""

    kind: str | None = None  # task.kind: call, text, ...
    automation_id: int | None = None  # 0: tasks no automation created
    location_id: int | None = None
    associate_id: int | None = None  # 0: unassigned

    def where(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.kind:
            out.append(task_t.c.kind == self.kind)
        if self.automation_id is not None:
            a = task_t.c.automation_id
            out.append(a.is_(None) if self.automation_id == 0 else a == self.automation_id)
        if self.location_id is not None:
            out.append(task_t.c.location_id == self.location_id)
        if self.associate_id is not None:
            p = task_t.c.associate_id
            out.append(p.is_(None) if self.associate_id == 0 else p == self.associate_id)
        return out


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
    timezone: str = "UTC"
    effective_due: datetime | None = None  # when it counts as due (see effective_due())
    text_to: str | None = None  # the number a text goes to; None: no Text action
    call_to: str | None = None
    no_text_reason: str | None = None
    overdue_days: int = 0
    birthday_soon: bool = False  # within two weeks of the store's today: worth mentioning on the card


@dataclass
class TodayPage:
    today: list[TaskView] = field(default_factory=list)
    overdue: list[TaskView] = field(default_factory=list)
    upcoming: list[TaskView] = field(default_factory=list)
    done: list[TaskView] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    offsets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    # An associate-role account with no POS associate behind it: nothing can be assigned to them.
    unlinked: bool = False

    def counts(self) -> dict[str, int]:
        return {g: self.totals.get(g, 0) for g in GROUPS}

    def remaining(self, group: str) -> int:
        return max(0, self.totals.get(group, 0) - self.offsets.get(group, 0) - len(getattr(self, group)))


def _local_day(at: datetime, tz_name: str) -> date:
    return at.astimezone(zone(tz_name)).date()


def _days_to(birthday: date, now: datetime, tz_name: str) -> int:
    """Days from the store's today to the next time ``birthday``'s month and day come round."""
    today = _local_day(now, tz_name)
    for year in (today.year, today.year + 1):
        try:
            nxt = birthday.replace(year=year)
        except ValueError:  # Feb 29 in a common year
            nxt = date(year, 2, 28)
        if nxt >= today:
            return (nxt - today).days
    return 366


def effective_due(task: Any, now: datetime | None = None, *, snoozes: bool = True) -> datetime:
    """When a task counts as due: a snoozed one when its snooze ends; otherwise its due moment, but
    never before the task existed. An automation enabled today (or catching up after downtime) creates
    tasks for occasions that fell due days ago; they are today's work, not yesterday's failure.
    (Looking at a ``now`` before the task was created, it counts from its due moment.)"""
    if snoozes and task.state == "snoozed" and task.snoozed_until is not None:
        return task.snoozed_until
    created = getattr(task, "created_at", None)
    if created is None or (now is not None and created > now):
        return task.due_at
    return max(task.due_at, created)


def group_of(task: Any, now: datetime, tz_name: str) -> str | None:
    """Which Today group a task belongs in at ``now`` (None: not shown). The same rule as the SQL
    in :func:`today`, for one task in Python."""
    today = _local_day(now, tz_name)
    if task.state == "done":
        return "done" if task.done_at is not None and _local_day(task.done_at, tz_name) == today else None
    if task.state == "cancelled":
        return None
    if task.state == "snoozed" and task.snoozed_until is not None and task.snoozed_until > now:
        return "upcoming"
    day = _local_day(effective_due(task, now), tz_name)
    if day < today:
        return "overdue"
    return "today" if day == today else "upcoming"


def _effective_due_sql(now: datetime) -> ColumnElement[Any]:
    return case(
        (and_(task_t.c.state == "snoozed", task_t.c.snoozed_until.is_not(None)), task_t.c.snoozed_until),
        (task_t.c.created_at > literal(now, task_t.c.due_at.type), task_t.c.due_at),
        (task_t.c.due_at >= task_t.c.created_at, task_t.c.due_at),
        else_=task_t.c.created_at,
    )


def _by_location(values: dict[int, datetime], default: datetime) -> ColumnElement[Any]:
    """A per-row value chosen by the task's location (each store's local midnight, in UTC)."""
    kind = task_t.c.due_at.type
    if not values:
        return literal(default, kind)
    whens = [(task_t.c.location_id == lid, literal(v, kind)) for lid, v in sorted(values.items())]
    return case(*whens, else_=literal(default, kind))


def _day_bounds(now: datetime, tz_name: str) -> tuple[datetime, datetime]:
    tz = zone(tz_name)
    day = now.astimezone(tz).date()
    start = datetime.combine(day, time(0, 0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz).astimezone(UTC)
    return start, end


def _group_sql(locations: dict[int, dict[str, Any]], tz_default: str, now: datetime) -> tuple[Any, Any]:
    """(the group a row is in, the WHERE clause of rows shown at all), in each store's local day."""
    bounds = {lid: _day_bounds(now, loc["timezone"] or tz_default) for lid, loc in locations.items()}
    d_start, d_end = _day_bounds(now, tz_default)
    start = _by_location({k: v[0] for k, v in bounds.items()}, d_start)
    end = _by_location({k: v[1] for k, v in bounds.items()}, d_end)
    eff = _effective_due_sql(now)
    now_lit = literal(now, task_t.c.due_at.type)
    until = task_t.c.snoozed_until
    snoozed_ahead = and_(task_t.c.state == "snoozed", until.is_not(None), until > now_lit)
    group = case(
        (task_t.c.state == "done", "done"),
        (snoozed_ahead, "upcoming"),
        (eff < start, "overdue"),
        (eff < end, "today"),
        else_="upcoming",
    )
    shown = or_(
        task_t.c.state.in_(("open", "snoozed")),
        and_(task_t.c.state == "done", task_t.c.done_at >= start, task_t.c.done_at < end),
    )
    return group, shown


async def today(
    session: AsyncSession,
    principal: Principal,
    now: datetime | None = None,
    *,
    filters: Filters | None = None,
    limits: Mapping[str, int] | None = None,
    offsets: Mapping[str, int] | None = None,
    groups: Sequence[str] = GROUPS,
) -> TodayPage:
    """The principal's Today page at ``now``: per group its total and one page of tasks (``limits``,
    default :data:`CAPS`, from ``offsets``), overdue and today oldest first, upcoming soonest first,
    done newest first. "Today" is each task's store's local day."""
    now = now or utcnow()
    filters = filters or Filters()
    tz_default = await default_timezone(session)
    locations = await ctx_mod.load_locations(session)
    group, shown = _group_sql(locations, tz_default, now)
    where = [task_filter(principal), shown, *filters.where()]
    page = TodayPage(unlinked=principal.role == "associate" and principal.associate_id is None)
    conn = await _conn(session)
    inner = select(group.label("g")).where(*where).subquery()
    for g, n in (await conn.execute(select(inner.c.g, func.count()).group_by(inner.c.g))).all():
        page.totals[str(g)] = int(n)
    tasks: list[tuple[str, Task]] = []
    for g in groups:
        limit = min(MAX_SHOWN, max(0, int((limits or CAPS).get(g, CAPS[g]))))
        offset = max(0, int((offsets or {}).get(g, 0)))
        page.offsets[g] = offset
        if not limit or not page.totals.get(g):
            continue
        order = (task_t.c.done_at.desc(), task_t.c.id.desc()) if g == "done" else (_effective_due_sql(now), task_t.c.id)
        stmt = orm_select(Task).where(*where, group == g).order_by(*order).offset(offset).limit(limit)  # type: ignore[arg-type]
        tasks.extend((g, t) for t in (await session.exec(stmt)).all())
    client_ids = [t.client_id for _, t in tasks if t.client_id is not None]
    clients = await ctx_mod.load_clients(session, client_ids)
    purchases = await ctx_mod.last_purchases(session, clients.keys(), locations)
    associates = await ctx_mod.load_associates(session, (t.associate_id for _, t in tasks))
    numbers = await textable.numbers_for(session, list(clients))
    for g, t in tasks:
        tz_name = (locations[t.location_id]["timezone"] if t.location_id in locations else None) or tz_default
        client = clients.get(t.client_id) if t.client_id is not None else None
        nums = numbers.get(t.client_id) if t.client_id is not None else None
        text_to = nums.text_to if nums is not None else None
        call_to = nums.call if nums is not None else None
        if client is not None:
            client = {**client, "phone": call_to}
        reason = None
        if client is None:
            reason = "no client on this follow-up"
        elif not nums or not nums.phones:
            reason = "no phone on file"
        elif text_to is None:
            refused = all(p.unusable for p in nums.phones)
            reason = "the number cannot take texts" if refused else "landline only"
        eff = effective_due(t, now)
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
            group=g,
            timezone=tz_name,
            effective_due=eff,
            text_to=text_to,
            call_to=call_to,
            no_text_reason=reason,
            overdue_days=(_local_day(now, tz_name) - _local_day(eff, tz_name)).days if g == "overdue" else 0,
            birthday_soon=bool(client and client.get("birthday") and _days_to(client["birthday"], now, tz_name) <= 14),
        )
        getattr(page, g).append(view)
    return page


@dataclass(frozen=True)
class FilterChoices:
    kinds: list[str]
    automations: list[tuple[int, str]]  # (id, name); 0: added by hand
    locations: list[tuple[int, str]]
    associates: list[tuple[int, str]]  # 0: unassigned


async def filter_choices(session: AsyncSession, principal: Principal) -> FilterChoices:
    """What the principal may narrow their Today page to: only values among tasks they can see
    (open or snoozed), only stores and associates in their scope."""
    conn = await _conn(session)
    base = [task_filter(principal), task_t.c.state.in_(("open", "snoozed"))]
    rows = (
        await conn.execute(
            select(task_t.c.kind, task_t.c.automation_id, task_t.c.location_id, task_t.c.associate_id)
            .where(*base)
            .distinct()
        )
    ).all()
    kinds = sorted({str(r[0]) for r in rows})
    automation_ids = {r[1] for r in rows}
    location_ids = {r[2] for r in rows if r[2] is not None}
    associate_ids = {r[3] for r in rows}
    automation_t = Automation.__table__  # type: ignore[attr-defined]
    names = {
        int(i): str(n)
        for i, n in (
            await conn.execute(
                select(automation_t.c.id, automation_t.c.name).where(
                    automation_t.c.id.in_([a for a in automation_ids if a is not None])
                )
            )
        ).all()
    }
    automations = sorted(names.items(), key=lambda kv: kv[1])
    if None in automation_ids:
        automations.append((0, "added by hand"))
    locations = [
        (int(i), str(n))
        for i, n in (
            await conn.execute(select(location_t.c.id, location_t.c.name).where(location_t.c.id.in_(location_ids)))
        ).all()
    ]
    people: list[tuple[int, str]] = []
    if principal.role != "associate":
        found = await ctx_mod.load_associates(session, (a for a in associate_ids if a is not None))
        people = sorted(
            ((i, a["full_name"] or f"associate {i}") for i, a in found.items()), key=lambda kv: kv[1].lower()
        )
        if None in associate_ids:
            people.append((0, "Unassigned"))
    return FilterChoices(kinds=kinds, automations=automations, locations=sorted(locations, key=lambda kv: kv[1]),
                         associates=people)


async def visible_task(session: AsyncSession, principal: Principal, task_id: int) -> Task:
    """The task, locked, if the principal may act on it (else :class:`AutomationError`, as for a missing one)."""
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
    task = await visible_task(session, principal, task_id)
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
    task = await visible_task(session, principal, task_id)
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
    task = await visible_task(session, principal, task_id)
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


async def manager_completion(
    session: AsyncSession, principal: Principal, day: date, *, now: datetime | None = None
) -> list[Completion]:
    """Per associate in the principal's scope: tasks due on ``day`` (local), done, still open, overdue."""
    # Tasks created after the end of ``day`` everywhere count from their due moment (see effective_due).
    ref = now or datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) + timedelta(hours=14)
    tz_default = await default_timezone(session)
    locations = await ctx_mod.load_locations(session)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    end = start + timedelta(days=3)
    stmt = orm_select(Task).where(
        task_filter(principal),  # type: ignore[arg-type]
        task_t.c.state != "cancelled",
        or_(
            task_t.c.due_at.between(start, end),
            task_t.c.created_at.between(start, end),
            task_t.c.state.in_(("open", "snoozed")),
        ),
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
        due_day = _local_day(effective_due(t, ref, snoozes=False), tz_name)
        if due_day == day:
            row.due += 1
            if t.state == "done":
                row.done += 1
            else:
                row.open += 1
        elif due_day < day and t.state in ("open", "snoozed"):
            row.overdue += 1
    return sorted(rows.values(), key=lambda r: (r.associate_id is None, r.associate.lower()))
