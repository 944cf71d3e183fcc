"""Connector pages: installed types, add / configure (forms generated from settings models),
enable / disable, test connection, sync now, and the live sync status fragment."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Response
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from admin import forms
from admin.auth import client_ip, owner_only, owner_or_manager
from admin.health import health_for
from admin.render import flash, is_htmx, redirect, render, runtime_of
from core.audit import record
from core.connectors import ConnectorError, add_connector, context_for, masked_settings, update_settings
from core.models import Connector, SyncError, SyncRun, User, utcnow
from core.plugin import CheckResult, ConnectorType, PluginError
from core.runtime import Runtime
from core.secrets import SecretsError

log = logging.getLogger("clasp.admin")
CHECK_TIMEOUT = 30.0


def actor(request: Request[Any, Any, Any]) -> dict[str, Any]:
    user: User = request.state.user
    return {"actor": user.email, "actor_user_id": user.id, "ip": client_ip(request)}


async def load_connector(session: AsyncSession, connector_id: int, *, lock: bool = False) -> Connector:
    connector = await session.get(Connector, connector_id, with_for_update=lock)
    if connector is None:
        raise NotFoundException("no such connector")
    return connector


def ctype_of(rt: Runtime, connector: Connector) -> ConnectorType:
    ctype = rt.registry.connector_types.get(connector.type)
    if ctype is None:
        raise ClientException(f"the plugin for connector type {connector.type!r} is not installed")
    return ctype


def secrets_set(rt: Runtime, connector: Connector) -> set[str]:
    """Names of the secrets stored for this connector (their values never leave the server)."""
    secret_fields = ctype_of(rt, connector).settings_model.secret_fields()
    try:
        shown = masked_settings(rt, connector)
    except SecretsError:
        return set()
    return {k for k, v in shown.items() if v and k in secret_fields}


def types_by_kind(rt: Runtime) -> dict[str, list[ConnectorType]]:
    out: dict[str, list[ConnectorType]] = {}
    for ctype in sorted(rt.registry.connector_types.values(), key=lambda c: (c.kind, c.title or c.name)):
        out.setdefault(ctype.kind, []).append(ctype)
    return out


async def form_dict(request: Request[Any, Any, Any]) -> dict[str, Any]:
    form = await request.form()
    return {key: form.get(key) for key in form}


# ---------------------------------------------------------------------------------------------- list


@get("/connectors", guards=[owner_or_manager], name="admin:connectors")
async def connectors_page(request: Request[Any, Any, Any]) -> Response[Any]:
    rt = runtime_of(request)
    async with rt.db.session() as session:
        connectors = (await session.exec(select(Connector).order_by(Connector.name))).all()
        healths = [await health_for(rt, session, c) for c in connectors]
    return render(request, "connectors/list.html", {"healths": healths, "types": types_by_kind(rt)})


# ----------------------------------------------------------------------------------------------- add


@get("/connectors/new", guards=[owner_only])
async def new_connector_page(request: Request[Any, Any, Any], type: FromQuery[str | None] = None) -> Response[Any]:
    rt = runtime_of(request)
    if type is None:
        return render(request, "connectors/choose.html", {"types": types_by_kind(rt)})
    ctype = rt.registry.connector_types.get(type)
    if ctype is None:
        raise NotFoundException(f"no connector type named {type!r} is installed")
    fields = forms.build_form(ctype.settings_model)
    return render(request, "connectors/new.html", {"ctype": ctype, "fields": fields, "name": "", "errors": {}})


@post("/connectors/new", guards=[owner_only])
async def create_connector(request: Request[Any, Any, Any]) -> Response[Any]:
    rt = runtime_of(request)
    data = await form_dict(request)
    ctype = rt.registry.connector_types.get(str(data.get("type") or ""))
    if ctype is None:
        raise NotFoundException("no such connector type is installed")
    name = str(data.get("name") or "").strip()
    values = forms.parse_form(ctype.settings_model, data)
    _, errors = forms.validate(ctype.settings_model, values)
    if not name:
        errors["name"] = "Give the connector a name, e.g. “Downtown store POS”."
    elif len(name) > 200:
        errors["name"] = "Keep the name under 200 characters."
    connector: Connector | None = None
    if not errors:
        try:
            async with rt.db.transaction() as session:
                connector = await add_connector(rt, session, type_name=ctype.name, name=name, values=values)
                await record(
                    session,
                    "connector.create",
                    target_type="connector",
                    target_id=connector.id,
                    details={"type": ctype.name, "name": name},
                    **actor(request),
                )
        except ConnectorError as exc:
            connector = None
            if "already exists" in str(exc):
                errors["name"] = "Another connector already has this name."
            else:
                errors["__all__"] = str(exc)
    if connector is None:
        fields = forms.build_form(
            ctype.settings_model, forms.submitted_values(ctype.settings_model, values), errors=errors
        )
        context = {"ctype": ctype, "fields": fields, "name": name, "errors": errors}
        return render(request, "connectors/new.html", context, status_code=422)
    flash(request, f"Connector “{name}” added.")
    return redirect(request, f"/admin/connectors/{connector.id}")


# -------------------------------------------------------------------------------------------- detail


async def detail_context(rt: Runtime, session: AsyncSession, connector: Connector) -> dict[str, Any]:
    health = await health_for(rt, session, connector)
    assert connector.id is not None
    runs = (
        await session.exec(
            select(SyncRun).where(SyncRun.connector_id == connector.id).order_by(SyncRun.started_at.desc()).limit(10)  # type: ignore[attr-defined]
        )
    ).all()
    errors = (
        await session.exec(
            select(SyncError)
            .where(SyncError.connector_id == connector.id, SyncError.state == "open")
            .order_by(SyncError.created_at.desc())  # type: ignore[attr-defined]
            .limit(10)
        )
    ).all()
    return {"connector": connector, "health": health, "ctype": health.ctype, "runs": runs, "errors": errors}


@get("/connectors/{connector_id:int}", guards=[owner_or_manager], name="admin:connector")
async def connector_page(request: Request[Any, Any, Any], connector_id: FromPath[int]) -> Response[Any]:
    rt = runtime_of(request)
    async with rt.db.session() as session:
        connector = await load_connector(session, connector_id)
        context = await detail_context(rt, session, connector)
    ctype = context["ctype"]
    if ctype is not None and request.state.principal.is_owner:
        context["fields"] = forms.build_form(
            ctype.settings_model, dict(connector.settings or {}), secrets_set=secrets_set(rt, connector)
        )
    return render(request, "connectors/detail.html", context)


@get("/connectors/{connector_id:int}/status", guards=[owner_or_manager])
async def connector_status(request: Request[Any, Any, Any], connector_id: FromPath[int]) -> Response[Any]:
    rt = runtime_of(request)
    async with rt.db.session() as session:
        connector = await load_connector(session, connector_id)
        health = await health_for(rt, session, connector)
    return render(request, "connectors/_status.html", {"health": health, "connector": connector}, fragment=True)


# ------------------------------------------------------------------------------------------ settings


@post("/connectors/{connector_id:int}/settings", guards=[owner_only])
async def save_settings(request: Request[Any, Any, Any], connector_id: FromPath[int]) -> Response[Any]:
    rt = runtime_of(request)
    data = await form_dict(request)
    changed: list[str] = []
    async with rt.db.transaction() as session:
        connector = await load_connector(session, connector_id, lock=True)
        ctype = ctype_of(rt, connector)
        model = ctype.settings_model
        updates = forms.parse_form(model, data)
        for name in model.secret_fields():
            if data.get(f"clear__{name}") in ("on", "true", "1"):
                updates[name] = None
        before = dict(connector.settings or {})
        current = context_for(rt, connector).settings.model_dump()
        _, errors = forms.validate(model, {**current, **updates})
        if not errors:
            try:
                await update_settings(rt, session, connector, updates)
            except ConnectorError as exc:
                errors = {"__all__": str(exc)}
        if not errors:
            changed = sorted(
                k
                for k in model.model_fields
                if (k in model.secret_fields() and k in updates) or before.get(k) != connector.settings.get(k)
            )
            await record(
                session,
                "connector.settings",
                target_type="connector",
                target_id=connector.id,
                details={"changed": changed},
                **actor(request),
            )
    if errors:
        async with rt.db.session() as session:
            connector = await load_connector(session, connector_id)
            context = await detail_context(rt, session, connector)
        shown = {**dict(connector.settings or {}), **forms.submitted_values(model, updates)}
        context["fields"] = forms.build_form(model, shown, secrets_set=secrets_set(rt, connector), errors=errors)
        context["form_errors"] = errors
        return render(request, "connectors/detail.html", context, status_code=422)
    flash(request, "Settings saved." if changed else "Nothing changed.", "ok" if changed else "info")
    return redirect(request, f"/admin/connectors/{connector_id}")


@post("/connectors/{connector_id:int}/enabled", guards=[owner_only])
async def set_enabled(request: Request[Any, Any, Any], connector_id: FromPath[int]) -> Response[Any]:
    rt = runtime_of(request)
    data = await form_dict(request)
    enabled = data.get("enabled") in ("true", "on", "1")
    async with rt.db.transaction() as session:
        connector = await load_connector(session, connector_id, lock=True)
        if connector.enabled != enabled:
            connector.enabled = enabled
            connector.updated_at = utcnow()
            session.add(connector)
            await record(
                session,
                "connector.enable" if enabled else "connector.disable",
                target_type="connector",
                target_id=connector.id,
                **actor(request),
            )
    flash(request, f"“{connector.name}” is {'enabled' if enabled else 'disabled'}.")
    return redirect(request, f"/admin/connectors/{connector_id}")


# ---------------------------------------------------------------------------------- check and sync


async def run_check(rt: Runtime, connector: Connector) -> CheckResult:
    ctype = ctype_of(rt, connector)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await ctype.check(context_for(rt, connector))
    except TimeoutError:
        return CheckResult(ok=False, message=f"No answer within {CHECK_TIMEOUT:.0f} seconds.")
    except PluginError as exc:
        return CheckResult(ok=False, message=str(exc))
    except Exception as exc:  # a plugin bug must show as a failed check, not a 500 page
        log.exception("connection check of connector %s crashed", connector.id)
        return CheckResult(ok=False, message=f"The check crashed: {type(exc).__name__}: {exc}")


@post("/connectors/{connector_id:int}/check", guards=[owner_or_manager])
async def check_connection(request: Request[Any, Any, Any], connector_id: FromPath[int]) -> Response[Any]:
    rt = runtime_of(request)
    async with rt.db.session() as session:
        connector = await load_connector(session, connector_id)
    result = await run_check(rt, connector)
    async with rt.db.transaction() as session:
        await record(
            session,
            "connector.check",
            target_type="connector",
            target_id=connector_id,
            details={"ok": result.ok, "message": result.message[:500]},
            **actor(request),
        )
    if is_htmx(request):
        return render(request, "connectors/_check.html", {"result": result}, fragment=True)
    flash(request, f"Connection {'OK' if result.ok else 'failed'}: {result.message}", "ok" if result.ok else "error")
    return redirect(request, f"/admin/connectors/{connector_id}")


@post("/connectors/{connector_id:int}/sync", guards=[owner_or_manager])
async def sync_now(request: Request[Any, Any, Any], connector_id: FromPath[int]) -> Response[Any]:
    from core.jobs import enqueue_sync

    rt = runtime_of(request)
    data = await form_dict(request)
    full = data.get("full") in ("on", "true", "1")
    async with rt.db.session() as session:
        connector = await load_connector(session, connector_id)
    ctype = ctype_of(rt, connector)
    if "sync" not in ctype.capabilities:
        raise ClientException(f"{ctype.title or ctype.name} connectors do not sync")
    if not connector.enabled:
        message, kind = "Enable the connector before syncing it.", "error"
    else:
        job_id = await enqueue_sync(rt, connector_id, full=full, trigger="panel")
        async with rt.db.transaction() as session:
            await record(
                session,
                "connector.sync",
                target_type="connector",
                target_id=connector_id,
                details={"full": full, "job_id": job_id, "queued": job_id is not None},
                **actor(request),
            )
        if job_id is None:
            message, kind = "A sync is already queued for this connector.", "info"
        else:
            message, kind = ("Full backfill queued." if full else "Sync queued."), "ok"
    if is_htmx(request):
        async with rt.db.session() as session:
            health = await health_for(rt, session, connector)
        context = {"health": health, "connector": connector, "notice": message, "notice_kind": kind}
        return render(request, "connectors/_status.html", context, fragment=True)
    flash(request, message, kind)
    return redirect(request, f"/admin/connectors/{connector_id}")


route_handlers = [
    connectors_page,
    new_connector_page,
    create_connector,
    connector_page,
    connector_status,
    save_settings,
    set_enabled,
    check_connection,
    sync_now,
]
