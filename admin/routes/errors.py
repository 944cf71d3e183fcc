"""The error queue page: records Clasp could not handle, their payload and context, replay and dismiss.

Who sees what (connectors are not location-scoped, so errors cannot be either):
- owners: every error with its raw payload; Replay, "Replay all" (per connector) and Dismiss;
- managers: the list read-only (reason, stream, external id, time, context) without the raw payload,
  which can hold clients of stores outside their scope; they ask an owner to replay;
- associates: not at all.

Replays go through the function that owns the error's stage (``sync`` → ``core.errors``, ``writeback``
→ ``core.writeback``, ``crm_push`` → ``core.crm``): the same path as the original attempt, keyed on
external references, so a replay never creates a duplicate. Every replay and dismissal is audited.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Response
from sqlalchemy import func
from sqlmodel import col, select

from admin.auth import owner_only, owner_or_manager
from admin.render import flash, is_htmx, redirect, render, runtime_of
from admin.routes.connectors import actor
from core.audit import record
from core.errors import REPLAYABLE_STAGES, STATES, ReplayResult, dismiss_error, replay_all, replay_error
from core.models import Connector, SyncError
from core.runtime import Runtime

log = logging.getLogger("clasp.admin")
PAGE_SIZE = 50
PAYLOAD_MAX_CHARS = 20_000  # a pathological payload must not make the page unusable
STAGE_LABELS = {
    "sync": "sync",
    "writeback": "writeback to POS",
    "crm_push": "CRM push",
    "outbox": "outbox",
    "automation": "automation",
    "attribution": "attribution model",
}

async def replay_one(rt: Runtime, error: SyncError) -> ReplayResult:
    assert error.id is not None
    if error.stage not in REPLAYABLE_STAGES:
        fix = (error.context or {}).get("fix")
        return ReplayResult(
            error.id, False, f"{error.stage} errors are not replayed here" + (f": {fix}" if fix else "")
        )
    try:
        return await replay_error(rt, error.id)
    except Exception as exc:  # a crashing plugin must show as a failed replay, not a 500 page
        log.exception("replay of error %s crashed", error.id)
        return ReplayResult(error.id, False, f"the replay crashed: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------- the page


def pretty(value: Any) -> str:
    """The payload or context as indented JSON (escaped by the template like any other text)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > PAYLOAD_MAX_CHARS:
        return text[:PAYLOAD_MAX_CHARS] + f"\n… ({len(text) - PAYLOAD_MAX_CHARS:,} more characters)"
    return text


def _filters(connector: str, stage: str, state: str) -> tuple[list[Any], dict[str, Any]]:
    where: list[Any] = []
    chosen: dict[str, Any] = {"connector": None, "stage": "", "state": "open"}
    if state == "all":
        chosen["state"] = "all"
    elif state in STATES:
        where.append(col(SyncError.state) == state)
        chosen["state"] = state
    else:
        where.append(col(SyncError.state) == "open")
    if connector.isdigit():
        where.append(col(SyncError.connector_id) == int(connector))
        chosen["connector"] = int(connector)
    if stage:
        where.append(col(SyncError.stage) == stage)
        chosen["stage"] = stage
    return where, chosen


def item_context(request: Request[Any, Any, Any], error: SyncError, connector_name: str | None) -> dict[str, Any]:
    owner = request.state.principal.is_owner
    return {
        "e": error,
        "connector_name": connector_name,
        "payload": pretty(error.payload) if owner else None,
        "context_json": pretty(error.context) if error.context else "",
        "replayable": owner and error.state == "open" and error.stage in REPLAYABLE_STAGES,
        "can_dismiss": owner and error.state == "open",
        "stage_label": STAGE_LABELS.get(error.stage, error.stage),
    }


@get("/errors", guards=[owner_or_manager], name="admin:errors")
async def errors_page(
    request: Request[Any, Any, Any],
    connector: FromQuery[str] = "",
    stage: FromQuery[str] = "",
    error_state: Annotated[str, QueryParameter(name="state")] = "open",
    page: FromQuery[int] = 1,
) -> Response[Any]:
    page = max(1, page)
    where, chosen = _filters(connector, stage, error_state)
    async with runtime_of(request).db.session() as session:
        total = (await session.exec(select(func.count()).select_from(SyncError).where(*where))).one()
        rows = (
            await session.exec(
                select(SyncError, Connector.name)
                .outerjoin(Connector, col(Connector.id) == col(SyncError.connector_id))
                .where(*where)
                .order_by(col(SyncError.created_at).desc(), col(SyncError.id).desc())
                .offset((page - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        ).all()
        # Open errors per connector and stage: the filter menus and the "Replay all" buttons.
        open_counts = (
            await session.exec(
                select(SyncError.connector_id, SyncError.stage, func.count())
                .where(col(SyncError.state) == "open")
                .group_by(SyncError.connector_id, SyncError.stage)
            )
        ).all()
        connectors = (await session.exec(select(Connector).order_by(Connector.name))).all()
        stages = sorted(set((await session.exec(select(SyncError.stage).distinct())).all()) | set(REPLAYABLE_STAGES))
    by_connector: dict[int | None, int] = {}
    replayable_by_connector: dict[int | None, int] = {}
    for cid, stg, n in open_counts:
        by_connector[cid] = by_connector.get(cid, 0) + n
        if stg in REPLAYABLE_STAGES and (not chosen["stage"] or stg == chosen["stage"]):
            replayable_by_connector[cid] = replayable_by_connector.get(cid, 0) + n
    items = [item_context(request, e, name) for e, name in rows]
    pages = max(1, -(-total // PAGE_SIZE))
    params = f"connector={chosen['connector'] or ''}&stage={chosen['stage']}&state={chosen['state']}&"
    context = {
        "items": items,
        "total": total,
        "page": page,
        "pages": pages,
        "params": params,
        "chosen": chosen,
        "connectors": connectors,
        "stages": stages,
        "stage_labels": STAGE_LABELS,
        "states": [*STATES, "all"],
        "open_by_connector": by_connector,
        "replayable_by_connector": replayable_by_connector,
    }
    return render(request, "errors.html", context)


async def _load(request: Request[Any, Any, Any], error_id: int) -> tuple[SyncError, str | None]:
    async with runtime_of(request).db.session() as session:
        found = (
            await session.exec(
                select(SyncError, Connector.name)
                .outerjoin(Connector, col(Connector.id) == col(SyncError.connector_id))
                .where(col(SyncError.id) == error_id)
            )
        ).first()
    if found is None:
        raise NotFoundException("no such error")
    return found[0], found[1]


def _item_response(
    request: Request[Any, Any, Any], error: SyncError, connector_name: str | None, ok: bool, message: str
) -> Response[Any]:
    context = {**item_context(request, error, connector_name), "result": {"ok": ok, "message": message}}
    return render(request, "errors_item.html", context, fragment=True)


@post("/errors/{error_id:int}/replay", guards=[owner_only])
async def replay(request: Request[Any, Any, Any], error_id: FromPath[int]) -> Response[Any]:
    rt = runtime_of(request)
    error, _ = await _load(request, error_id)
    result = await replay_one(rt, error)
    async with rt.db.transaction() as session:
        await record(
            session,
            "errors.replay",
            target_type="sync_error",
            target_id=error_id,
            details={"stage": error.stage, "ok": result.ok, "message": result.message[:500]},
            **actor(request),
        )
    if is_htmx(request):
        error, name = await _load(request, error_id)
        return _item_response(request, error, name, result.ok, result.message)
    flash(
        request,
        f"Error {error_id}: {'replayed' if result.ok else 'still failing'} — {result.message}",
        "ok" if result.ok else "error",
    )
    return redirect(request, "/admin/errors")


@post("/errors/replay-all", guards=[owner_only])
async def replay_all_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Replay every open error of one connector (optionally of one stage)."""
    rt = runtime_of(request)
    form = await request.form()
    raw_connector = str(form.get("connector_id") or "")
    stage = str(form.get("stage") or "")
    if not raw_connector.isdigit():
        raise ClientException("choose the connector whose errors to replay")
    connector_id = int(raw_connector)
    if stage and stage not in REPLAYABLE_STAGES:
        raise ClientException(f"{stage} errors are not replayed from the panel")
    async with rt.db.session() as session:
        connector = await session.get(Connector, connector_id)
    if connector is None:
        raise NotFoundException("no such connector")
    results: list[ReplayResult] = []
    try:
        results = await replay_all(rt, connector_id=connector_id, stage=stage or None)
    except Exception as exc:  # a crashing plugin must show as a failed replay, not a 500 page
        log.exception("replaying the errors of connector %s crashed", connector_id)
        flash(request, f"Replaying the errors crashed: {type(exc).__name__}: {exc}", "error")
    ok = [r.error_id for r in results if r.ok]
    failed = [r.error_id for r in results if not r.ok]
    async with rt.db.transaction() as session:
        await record(
            session,
            "errors.replay_all",
            target_type="connector",
            target_id=connector_id,
            details={"stage": stage or None, "ok": ok, "failed": failed},
            **actor(request),
        )
    if not results:
        flash(request, f"“{connector.name}” has no open errors to replay.", "info")
    elif failed:
        first = next(r for r in results if not r.ok)
        flash(
            request,
            f"“{connector.name}”: {len(ok)} replayed, {len(failed)} still failing (e.g. error {first.error_id}: "
            f"{first.message}).",
            "error",
        )
    else:
        flash(request, f"“{connector.name}”: all {len(ok)} error(s) replayed.")
    back = f"/admin/errors?connector={connector_id}" + (f"&stage={stage}" if stage else "")
    return redirect(request, back)


async def dismiss(rt: Runtime, request: Request[Any, Any, Any], error_id: int, note: str) -> bool:
    """Close an error without replaying it, with its audit row in the same transaction."""
    async with rt.db.transaction() as session:
        error = await session.get(SyncError, error_id, with_for_update=True)
        if error is None:
            raise NotFoundException("no such error")
        closed = await dismiss_error(session, error_id)
        if closed:
            await record(
                session,
                "errors.dismiss",
                target_type="sync_error",
                target_id=error_id,
                details={
                    "stage": error.stage,
                    "connector_id": error.connector_id,
                    "stream": error.stream,
                    "external_id": error.external_id,
                    "note": note[:500] or None,
                },
                **actor(request),
            )
    return closed


@post("/errors/{error_id:int}/dismiss", guards=[owner_only])
async def dismiss_page(request: Request[Any, Any, Any], error_id: FromPath[int]) -> Response[Any]:
    rt = runtime_of(request)
    form = await request.form()
    closed = await dismiss(rt, request, error_id, str(form.get("note") or "").strip())
    message = "Dismissed: it stays in the log but will not be replayed." if closed else "This error is not open."
    if is_htmx(request):
        error, name = await _load(request, error_id)
        return _item_response(request, error, name, closed, message)
    flash(request, f"Error {error_id}: {message}", "ok" if closed else "info")
    return redirect(request, "/admin/errors")


route_handlers = [errors_page, replay, replay_all_page, dismiss_page]
