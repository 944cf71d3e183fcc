"""The Today page: an associate's follow-ups (overdue, today, upcoming, done) with the client's
context and one-tap actions (text, call, done, snooze); managers and owners also see completion.

Each group shows a page of tasks (overdue capped hardest) and a count; "Show more" fetches the next
page of that group with htmx (a plain link that shows more without JavaScript). Filters (type,
automation, store, associate) only offer what the signed-in person may see. An action is offered only
where it can work: "Text" needs a number that can take texts, "Call" a phone number.

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
from core.automations.today import (
    CAPS,
    GROUPS,
    MAX_SHOWN,
    MORE,
    Filters,
    complete_task,
    filter_choices,
    manager_completion,
    snooze_task,
    today,
)
from core.models import Location, Task, utcnow
from core.outreach.textable import display as display_phone
from core.timelabels import local_date, local_label
from core.timezones import zone

GROUP_LABELS = {"overdue": "Overdue", "today": "Due today", "upcoming": "Upcoming", "done": "Done today"}
# Today's work first, then the (capped) backlog: a hundred old follow-ups must not push today's
# birthdays and thank-yous off the first screen.
GROUP_ORDER = ("today", "overdue", "upcoming", "done")
SNOOZE_DAYS = {"1": "Tomorrow", "3": "In 3 days", "7": "Next week"}
SNOOZE_HOUR = time(9, 0)  # a snoozed follow-up comes back at the start of a local business day
KIND_LABELS = {"call": "Calls", "text": "Texts", "email": "Emails", "visit": "Visits", "other": "Other"}
FILTER_KEYS = ("kind", "automation", "location", "associate")


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def filters_of(request: Request[Any, Any, Any]) -> tuple[Filters, dict[str, str]]:
    """The filters in the query string, and the same as query parameters for links and forms."""
    q = request.query_params
    kind = str(q.get("kind") or "")
    f = Filters(
        kind=kind if kind in KIND_LABELS else None,
        automation_id=_int(q.get("automation")),
        location_id=_int(q.get("location")),
        associate_id=_int(q.get("associate")) if request.state.principal.role != "associate" else None,
    )
    params = {
        k: str(v)
        for k, v in (
            ("kind", f.kind),
            ("automation", f.automation_id),
            ("location", f.location_id),
            ("associate", f.associate_id),
        )
        if v is not None
    }
    return f, params


def text_link(view: Any) -> str | None:
    """The composer, prefilled with the task's text and tied to the task (sending it completes it)."""
    if view.client is None or view.text_to is None:
        return None
    params = {"task": str(view.id)}
    if view.body:
        params["body"] = view.body
    return f"/admin/clients/{view.client['id']}/messages?{urlencode(params)}"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _shown(request: Request[Any, Any, Any]) -> dict[str, int]:
    """How many of each group to show: the caps, or more for a "show more" link without htmx."""
    out = dict(CAPS)
    for g in GROUPS:
        n = _int(request.query_params.get(f"show_{g}"))
        if n:
            out[g] = min(MAX_SHOWN, n)
    return out


def _helpers() -> dict[str, Any]:
    return {
        "text_link": text_link,
        "local_label": local_label,
        "local_date": local_date,
        "display_phone": display_phone,
        "plural": plural,
        "group_labels": GROUP_LABELS,
    }


async def _context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    principal: Principal = request.state.principal
    now = utcnow()
    filters, params = filters_of(request)
    shown = _shown(request)
    async with runtime_of(request).db.session() as session:
        page = await today(session, principal, now, filters=filters, limits=shown)
        choices = await filter_choices(session, principal)
        completion = None
        if principal.role in ("owner", "manager"):
            # "Today" for the completion table is the local day of the manager's own store.
            home = await session.get(Location, min(principal.location_ids)) if principal.location_ids else None
            tz_name = home.timezone if home and home.timezone else await default_timezone(session)
            completion = await manager_completion(session, principal, now.astimezone(zone(tz_name)).date(), now=now)
    groups = [(g, GROUP_LABELS[g], getattr(page, g)) for g in GROUP_ORDER]
    counts = page.counts()
    return {
        "page": page,
        "groups": groups,
        "counts": counts,
        "completion": completion,
        "choices": choices,
        "filters": filters,
        "params": params,
        "qs": urlencode(params),
        "filtered": bool(params),
        "shown": shown,
        "kind_labels": KIND_LABELS,
        "snooze_choices": SNOOZE_DAYS,
        "more_size": MORE,
        "total": sum(counts[g] for g in GROUPS if g != "done"),
        **_helpers(),
    }


@get("/today", name="admin:today")
async def today_page(request: Request[Any, Any, Any]) -> Response[Any]:
    ctx = await _context(request)
    if is_htmx(request) and request.headers.get("hx-target") == "today-tasks":
        return render(request, "today/_tasks.html", ctx, fragment=True)
    return render(request, "today/page.html", ctx)


@get("/today/more", name="admin:today-more")
async def today_more(request: Request[Any, Any, Any]) -> Response[Any]:
    """The next page of one group (the "Show more" button): its cards and the next button."""
    group = str(request.query_params.get("group") or "")
    if group not in GROUPS:
        raise NotFoundException("no such group")
    offset = _int(request.query_params.get("offset")) or 0
    filters, params = filters_of(request)
    async with runtime_of(request).db.session() as session:
        page = await today(
            session, request.state.principal, utcnow(), filters=filters, limits={group: MORE},
            offsets={group: offset}, groups=(group,),
        )
    ctx = {
        "page": page,
        "key": group,
        "tasks": getattr(page, group),
        "params": params,
        "qs": urlencode(params),
        "snooze_choices": SNOOZE_DAYS,
        "more_size": MORE,
        **_helpers(),
    }
    return render(request, "today/_more.html", ctx, fragment=True)


async def _after(request: Request[Any, Any, Any], message: str) -> Response[Any]:
    if is_htmx(request):
        ctx = await _context(request)
        return render(request, "today/_tasks.html", {**ctx, "notice": message}, fragment=True)
    flash(request, message)
    _, params = filters_of(request)
    return redirect(request, "/admin/today" + (f"?{urlencode(params)}" if params else ""))


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


route_handlers = [today_page, today_more, done, snooze]
