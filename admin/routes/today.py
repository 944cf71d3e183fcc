"""The Today page: an associate's follow-ups (today, overdue, upcoming, done) with the client's
context and one-tap actions (text, call, done, snooze); managers and owners also see completion.

Scope comes from ``core.automations.today`` (which follows ``core.access``): a task outside the
signed-in person's scope is "not found" to them, for reads and for actions alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response

from admin.render import flash, is_htmx, redirect, render, runtime_of
from core.access import Principal
from core.automations.store import AutomationError, default_timezone
from core.automations.today import GROUPS, complete_task, manager_completion, snooze_task, today
from core.models import Location, Task, utcnow
from core.timezones import zone

GROUP_LABELS = {"overdue": "Overdue", "today": "Due today", "upcoming": "Upcoming", "done": "Done today"}
# Overdue first: on the floor the oldest promise to a client matters most.
GROUP_ORDER = ("overdue", "today", "upcoming", "done")
SNOOZE_DAYS = {"1": "Tomorrow", "3": "In 3 days", "7": "Next week"}
SNOOZE_HOUR = time(9, 0)  # a snoozed follow-up comes back at the start of a local business day


def text_link(view: Any) -> str | None:
    if view.client is None:
        return None
    url = f"/admin/clients/{view.client['id']}/messages"
    return f"{url}?{urlencode({'body': view.body})}" if view.body else url


async def _context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    principal: Principal = request.state.principal
    now = utcnow()
    async with runtime_of(request).db.session() as session:
        page = await today(session, principal, now)
        completion = None
        if principal.role in ("owner", "manager"):
            # "Today" for the completion table is the local day of the manager's own store.
            home = await session.get(Location, min(principal.location_ids)) if principal.location_ids else None
            tz_name = home.timezone if home and home.timezone else await default_timezone(session)
            completion = await manager_completion(session, principal, now.astimezone(zone(tz_name)).date())
    groups = [(g, GROUP_LABELS[g], getattr(page, g)) for g in GROUP_ORDER]
    return {
        "groups": groups,
        "counts": page.counts(),
        "completion": completion,
        "snooze_choices": SNOOZE_DAYS,
        "text_link": text_link,
        "total": sum(page.counts()[g] for g in GROUPS if g != "done"),
    }


@get("/today", name="admin:today")
async def today_page(request: Request[Any, Any, Any]) -> Response[Any]:
    return render(request, "today/page.html", await _context(request))


async def _after(request: Request[Any, Any, Any], message: str) -> Response[Any]:
    if is_htmx(request):
        ctx = await _context(request)
        return render(request, "today/_tasks.html", {**ctx, "notice": message}, fragment=True)
    flash(request, message)
    return redirect(request, "/admin/today")


@post("/today/{task_id:int}/done")
async def done(request: Request[Any, Any, Any], task_id: FromPath[int]) -> Response[Any]:
    try:
        async with runtime_of(request).db.transaction() as session:
            task = await complete_task(session, request.state.principal, task_id)
            title = task.title
    except AutomationError as exc:
        raise NotFoundException(str(exc)) from exc
    return await _after(request, f"Done: {title}")


@post("/today/{task_id:int}/snooze")
async def snooze(request: Request[Any, Any, Any], task_id: FromPath[int]) -> Response[Any]:
    form = await request.form()
    days = str(form.get("days") or "1")
    if days not in SNOOZE_DAYS:
        days = "1"
    now = utcnow()
    try:
        async with runtime_of(request).db.transaction() as session:
            row = await session.get(Task, task_id)
            location = await session.get(Location, row.location_id) if row and row.location_id else None
            tz = zone(location.timezone if location and location.timezone else await default_timezone(session))
            local_day = now.astimezone(tz).date() + timedelta(days=int(days))
            until = datetime.combine(local_day, SNOOZE_HOUR, tzinfo=tz).astimezone(UTC)
            task = await snooze_task(session, request.state.principal, task_id, until, now=now)
            title = task.title
    except AutomationError as exc:
        raise NotFoundException(str(exc)) from exc
    return await _after(request, f"Snoozed until {SNOOZE_DAYS[days].lower()}: {title}")


route_handlers = [today_page, done, snooze]
