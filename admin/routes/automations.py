"""Automations (owners and managers): what each automation does, its settings, a live preview of
its text with a real client, a dry run ("who would get what today"), a Run now, and its history.

Automations are organisation-wide, so only owners change them (enable, disable, configure, run);
managers see them, preview them and dry-run them, with counts limited to their own stores.
Every change is audited.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from admin.auth import require_role
from admin.forms import build_form, parse_form
from admin.render import flash, redirect, render, runtime_of
from core import audit
from core.access import Principal, can_see_client
from core.automations.evaluate import evaluate
from core.automations.review import dry_run, history, preview_for_client, reach
from core.automations.store import AutomationError, configure, ensure_automations, get_automation, scope_ids, type_of
from core.automations.templates import TemplateProblem
from core.models import Automation, Client, Location, User
from core.outreach.eligibility import REASONS
from core.runtime import Runtime

owners_and_managers = require_role("owner", "manager")
owners = require_role("owner")


def _dict_fields(model: Any) -> set[str]:
    """Settings fields holding a mapping: shown and submitted as JSON text."""
    out = set()
    for name, info in model.model_fields.items():
        if typing.get_origin(info.annotation) is dict or info.annotation is dict:
            out.add(name)
    return out


def _form_values(model: Any, values: dict[str, Any]) -> dict[str, Any]:
    dicts = _dict_fields(model)
    return {k: json.dumps(v) if k in dicts and isinstance(v, dict) else v for k, v in values.items()}


async def _automation(session: AsyncSession, rt: Runtime, name: str) -> Automation:
    await ensure_automations(session, rt.registry)
    try:
        return await get_automation(session, name)
    except AutomationError as exc:
        raise NotFoundException(str(exc)) from exc


def _viewer_locations(principal: Principal) -> list[int] | None:
    """The stores whose clients a viewer's counts cover (None: all, for an owner)."""
    return None if principal.is_owner else sorted(principal.location_ids)


async def _locations(session: AsyncSession) -> list[Location]:
    return list((await session.exec(select(Location).order_by(col(Location.name)))).all())


async def _detail(
    request: Request[Any, Any, Any],
    name: str,
    *,
    errors: dict[str, str] | None = None,
    submitted: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    rt = runtime_of(request)
    async with rt.db.transaction() as session:
        automation = await _automation(session, rt, name)
        atype = type_of(rt.registry, automation)
        locations = await _locations(session)
        past = await history(session, name, limit=25)
        sample = (await session.exec(select(Client.id).order_by(col(Client.id)).limit(1))).first()
    principal: Principal = request.state.principal
    reached = await reach(rt, name, location_ids=_viewer_locations(principal))
    if not principal.is_owner:
        # Texts name clients: a manager sees what fired in their own stores only.
        past.recent = [r for r in past.recent if r["location_id"] in principal.location_ids]
        past.counts = {}
        for r in past.recent:
            past.counts[r["state"]] = past.counts.get(r["state"], 0) + 1
    values = submitted if submitted is not None else _form_values(atype.settings_model, automation.settings or {})
    form = submitted or {}
    return {
        "automation": automation,
        "atype": atype,
        "fields": build_form(atype.settings_model, values, errors=errors),
        "template": form.get("template", automation.template),
        "action": form.get("action", automation.action),
        "scope": set(form.get("location_ids", scope_ids(automation) or [])),
        "locations": locations,
        "location_names": {loc.id: loc.name for loc in locations},
        "history": past,
        "reach": reached,
        "sample_client": sample,
        "error": error,
    }


@get("/automations", name="admin:automations", guards=[owners_and_managers])
async def automations_page(request: Request[Any, Any, Any]) -> Response[Any]:
    rt = runtime_of(request)
    rows = []
    async with rt.db.transaction() as session:
        automations = await ensure_automations(session, rt.registry)
        names = {loc.id: loc.name for loc in await _locations(session)}
        for a in automations:
            past = await history(session, a.name, limit=1)
            ids = scope_ids(a)
            where = "All locations" if ids is None else ", ".join(names.get(i, f"#{i}") for i in ids)
            rows.append({"automation": a, "where": where, "fired": sum(past.counts.values())})
    principal: Principal = request.state.principal
    for row in rows:
        row["reach"] = await reach(rt, row["automation"].name, location_ids=_viewer_locations(principal))
    return render(request, "automations/list.html", {"rows": rows})


@get("/automations/{name:str}", name="admin:automation", guards=[owners_and_managers])
async def automation_page(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
    return render(request, "automations/detail.html", await _detail(request, name))


async def _audit(
    session: AsyncSession, request: Request[Any, Any, Any], action: str, a: Automation, **details: Any
) -> None:
    user: User = request.state.user
    await audit.record(
        session,
        action,
        actor=user.email,
        actor_user_id=user.id,
        target_type="automation",
        target_id=a.id,
        details={"name": a.name, **details},
    )


async def _set_enabled(request: Request[Any, Any, Any], name: str, enabled: bool) -> Response[Any]:
    rt = runtime_of(request)
    try:
        async with rt.db.transaction() as session:
            await _automation(session, rt, name)
            a = await configure(session, rt.registry, name, enabled=enabled)
            await _audit(session, request, "automation.enable" if enabled else "automation.disable", a)
    except AutomationError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"“{name}” {'enabled' if enabled else 'disabled'}.")
    return redirect(request, f"/admin/automations/{name}")


@post("/automations/{name:str}/enable", guards=[owners])
async def enable(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
    return await _set_enabled(request, name, True)


@post("/automations/{name:str}/disable", guards=[owners])
async def disable(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
    return await _set_enabled(request, name, False)


@post("/automations/{name:str}/configure", guards=[owners])
async def configure_page(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
    rt = runtime_of(request)
    form = await request.form()
    raw = {k: form.get(k) for k in form}
    async with rt.db.session() as session:
        automation = await _automation(session, rt, name)
        model = type_of(rt.registry, automation).settings_model
    values = parse_form(model, raw)
    errors: dict[str, str] = {}
    for key in _dict_fields(model) & set(values):
        try:
            values[key] = json.loads(values[key]) if isinstance(values[key], str) else values[key]
        except ValueError:
            errors[key] = 'Write it as JSON, e.g. {"rings": 6}.'
    template = str(form.get("template") or "")
    action = str(form.get("action") or "")
    picked = [int(v) for v in form.getall("location_ids", []) if str(v).isdigit()]
    submitted = {**raw, "template": template, "action": action, "location_ids": picked}
    if not errors:
        try:
            async with rt.db.transaction() as session:
                a = await configure(
                    session, rt.registry, name, settings=values, template=template, action=action,
                    location_ids=picked or None,
                )
                await _audit(session, request, "automation.configure", a, settings=a.settings, does=a.action,
                             location_ids=picked or None, template=a.template)
        except AutomationError as exc:
            message = str(exc)
            field = next((f for f in model.model_fields if message.startswith(f) or f"{f}:" in message), None)
            if field:
                errors[field] = message
            ctx = await _detail(request, name, errors=errors, submitted=submitted, error=message)
            return render(request, "automations/detail.html", ctx, status_code=422)
        flash(request, "Settings saved.")
        return redirect(request, f"/admin/automations/{name}")
    ctx = await _detail(request, name, errors=errors, submitted=submitted, error="Check the highlighted fields.")
    return render(request, "automations/detail.html", ctx, status_code=422)


@post("/automations/{name:str}/preview", guards=[owners_and_managers])
async def preview(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
    form = await request.form()
    template = form.get("template")
    raw_id = str(form.get("client_id") or "").strip()
    result: dict[str, Any] = {"preview": None, "problem": None}
    principal: Principal = request.state.principal
    if not raw_id.isdigit():
        result["problem"] = "Enter a client id to preview with."
    else:
        try:
            async with runtime_of(request).db.session() as session:
                # Managers preview with the clients they may see, like everywhere else in the panel.
                visible = await can_see_client(session, principal, int(raw_id))
            if not visible:
                raise AutomationError(f"no client with id {raw_id}")
            result["preview"] = await preview_for_client(
                runtime_of(request), name, int(raw_id), template=None if template is None else str(template)
            )
        except (TemplateProblem, AutomationError) as exc:
            result["problem"] = str(exc)
    return render(request, "automations/_preview.html", result, fragment=True)


@post("/automations/{name:str}/dry-run", guards=[owners_and_managers])
async def dry_run_page(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
    rt = runtime_of(request)
    principal: Principal = request.state.principal
    try:
        run = await dry_run(rt, name)
    except AutomationError as exc:
        raise NotFoundException(str(exc)) from exc
    async with rt.db.session() as session:
        names = {loc.id: loc.name for loc in await _locations(session)}
    per_location = [
        (names.get(loc, "No location") if loc is not None else "No location", n)
        for loc, n in sorted(run.per_location.items(), key=lambda kv: names.get(kv[0], "") if kv[0] else "")
        if principal.is_owner or loc in principal.location_ids
    ]
    samples = [s for s in run.samples if principal.is_owner or s.location_id in principal.location_ids]
    reasons = [(REASONS.get(code, code), n) for code, n in sorted(run.skip_reasons.items(), key=lambda kv: -kv[1])]
    return render(
        request,
        "automations/_dry_run.html",
        {"run": run, "per_location": per_location, "samples": samples[:10], "skip_reasons": reasons},
        fragment=True,
    )


@post("/automations/{name:str}/run", guards=[owners])
async def run_now(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
    rt = runtime_of(request)
    async with rt.db.session() as session:
        automation = await _automation(session, rt, name)
    if not automation.enabled:
        flash(request, "Enable the automation before running it.", "error")
        return redirect(request, f"/admin/automations/{name}")
    runs = await evaluate(rt, names=[name])
    async with rt.db.transaction() as session:
        await _audit(session, request, "automation.run", automation, created=runs[0].created, errors=runs[0].errors)
    flash(request, runs[0].summary() + ".", "error" if runs[0].errors else "ok")
    return redirect(request, f"/admin/automations/{name}")


route_handlers = [automations_page, automation_page, enable, disable, configure_page, preview, dry_run_page, run_now]
