"""One client's page, and editing a client (through ``core.clients.edit_client``, the one edit path:
the change feed carries the edit to the POS by writeback)."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response
from markupsafe import Markup
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from admin.auth import client_ip
from admin.render import flash, is_htmx, redirect, render, runtime_of
from core.access import Principal, client_filter, location_filter
from core.clients import ADDRESS_FIELDS, ClientEditError, ClientMerged, ClientNotFound, edit_client
from core.models import Associate, Client, ClientContact, ClientMerge, Location, User
from core.outreach.consent import consent_summary
from core.plugin import ClientPanel
from core.profile import PREFERENCES, other_custom_fields, preferences_of, purchases, summary, timeline
from core.runtime import Runtime

log = logging.getLogger("clasp.admin")
PAGE_SIZE = 50


async def _panel_html(panel: ClientPanel, **available: Any) -> Markup:
    """Call a plugin's panel with the arguments it names; a broken panel must not break the page."""
    try:
        params = inspect.signature(panel.render).parameters
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = available if takes_all else {k: v for k, v in available.items() if k in params}
        html = panel.render(**kwargs)
        if inspect.isawaitable(html):
            html = await html
        return Markup(html) if isinstance(html, Markup) else Markup(str(html))
    except Exception:
        log.exception("client panel %s failed", panel.name)
        return Markup('<p class="muted">This panel could not be shown; the error was logged.</p>')


async def _visible(session: AsyncSession, principal: Principal, client_id: int) -> Client:
    stmt = select(Client).where(Client.id == client_id, client_filter(principal))  # type: ignore[arg-type]
    client = (await session.exec(stmt)).first()
    if client is None:
        # Same answer for "does not exist" and "not yours": ids of other stores' clients stay opaque.
        raise NotFoundException("no such client")
    return client


async def _contacts(session: AsyncSession, client_id: int) -> list[ClientContact]:
    stmt = (
        select(ClientContact)
        .where(ClientContact.client_id == client_id)
        .order_by(ClientContact.kind, col(ClientContact.is_primary).desc(), col(ClientContact.id))
    )
    return list((await session.exec(stmt)).all())


HOME_SOURCES = {"pos": "from the POS", "derived": "where they buy most", "manual": "set by a person"}


async def _profile_context(session: AsyncSession, principal: Principal, client: Client) -> dict[str, Any]:
    """What the profile and contact cards show (also re-rendered alone after an htmx edit)."""
    home = await session.get(Location, client.home_location_id) if client.home_location_id else None
    owner = await session.get(Associate, client.owner_associate_id) if client.owner_associate_id else None
    return {
        "client": client,
        "contacts": await _contacts(session, client.id),  # type: ignore[arg-type]
        "home": home,
        "home_source": HOME_SOURCES.get(client.home_location_source or "", "from the POS" if home else ""),
        "owner": owner,
        "summary": await summary(session, principal, client.id),  # type: ignore[arg-type]
        "preferences": preferences_of(client),
        "custom_fields": other_custom_fields(client),
        "consent": await consent_summary(session, client.id),  # type: ignore[arg-type]
    }


async def _merge_history(session: AsyncSession, principal: Principal, client: Client) -> dict[str, Any]:
    """Merges into this client (newest first) and, for an absorbed client, the one it lives on in."""
    rows = (
        await session.exec(
            select(ClientMerge, Client)
            .join(Client, col(Client.id) == col(ClientMerge.absorbed_id))
            .where(col(ClientMerge.survivor_id) == client.id)
            .order_by(col(ClientMerge.id).desc())
            .limit(50)
        )
    ).all()
    visible = (
        set(
            (
                await session.exec(
                    select(Client.id).where(col(Client.id).in_([a.id for _, a in rows]), client_filter(principal))
                )
            ).all()
        )
        if rows
        else set()
    )
    merges = [{"merge": m, "absorbed": a, "visible": a.id in visible} for m, a in rows]
    merged_into = None
    if client.merged_into_id is not None:
        merged_into = (
            await session.exec(select(Client).where(col(Client.id) == client.merged_into_id, client_filter(principal)))
        ).first()
    return {"merges": merges, "merged_into": merged_into}


@get("/clients/{client_id:int}", name="admin:client")
async def client_page(request: Request[Any, Any, Any], client_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    rt: Runtime = runtime_of(request)
    async with rt.db.session() as session:
        client = await _visible(session, principal, client_id)
        profile = await _profile_context(session, principal, client)
        history = await _merge_history(session, principal, client)
        bought = await purchases(session, principal, client_id, show_all=request.query_params.get("sales") == "all")
        events = await timeline(session, principal, client_id)
    panels = [
        (p, await _panel_html(p, client=client, principal=principal, rt=rt, request=request))
        for p in rt.registry.client_panels
    ]
    context = {**profile, **history, "purchases": bought, "timeline": events, "panels": panels}
    return render(request, "clients/detail.html", context)


# ------------------------------------------------------------------------------------------- editing


def _lines(value: str) -> list[str]:
    """One email or phone per line (commas and semicolons separate too); first is primary."""
    out: list[str] = []
    for line in value.replace(";", "\n").replace(",", "\n").splitlines():
        if line.strip():
            out.append(line.strip())
    return out


def form_values(client: Client, contacts: list[ClientContact]) -> dict[str, Any]:
    """The edit form's fields for a client as stored (emails and phones one per line, primary first)."""

    def of(kind: str) -> str:
        rows = sorted((c for c in contacts if c.kind == kind), key=lambda c: (not c.is_primary, c.id))
        return "\n".join(c.value for c in rows)

    address = client.address or {}
    return {
        "first_name": client.first_name or "",
        "last_name": client.last_name or "",
        "emails": of("email"),
        "phones": of("phone"),
        **{f"address_{k}": str(address.get(k) or "") for k in ADDRESS_FIELDS},
        "birthday": client.birthday.isoformat() if client.birthday else "",
        "anniversary": client.anniversary.isoformat() if client.anniversary else "",
        "note": client.note or "",
        **{f"pref_{k}": str((client.preferences or {}).get(k) or "") for k in PREFERENCES},
        "tags": ", ".join(client.tags or []),
        "home_location": str(client.home_location_id or "") if client.home_location_source == "manual" else "",
    }


def changes_from(
    submitted: dict[str, str], current: dict[str, str], preferences: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Only what the person changed: an untouched field is never re-normalised and written back."""
    changes: dict[str, Any] = {}
    for name in ("first_name", "last_name", "note", "birthday", "anniversary"):
        if submitted[name].strip() != current[name].strip():
            value = submitted[name].strip()
            changes[name] = (value or None) if name != "first_name" and name != "last_name" else value
    for name in ("emails", "phones"):
        if _lines(submitted[name]) != _lines(current[name]):
            changes[name] = _lines(submitted[name])
    address_keys = [f"address_{k}" for k in ADDRESS_FIELDS]
    if any(submitted[k].strip() != current[k].strip() for k in address_keys):
        changes["address"] = {k: submitted[f"address_{k}"].strip() or None for k in ADDRESS_FIELDS}
    pref_keys = [f"pref_{k}" for k in PREFERENCES]
    if any(submitted[k].strip() != current[k].strip() for k in pref_keys):
        # Keys outside the form (set through the API) are kept as they are.
        typed = {k: submitted[f"pref_{k}"].strip() or None for k in PREFERENCES}
        changes["preferences"] = {**(preferences or {}), **typed}
    if _tags(submitted["tags"]) != _tags(current["tags"]):
        changes["tags"] = _tags(submitted["tags"])
    if submitted["home_location"].strip() != current["home_location"].strip():
        changes["home_location"] = submitted["home_location"].strip() or None
    return changes


def _tags(value: str) -> list[str]:
    return [t.strip() for t in value.replace(";", ",").replace("\n", ",").split(",") if t.strip()]


def _field_errors(errors: dict[str, str]) -> dict[str, str]:
    """core.clients names fields by its API ("address"); the form shows address errors on the right input."""
    out: dict[str, str] = {}
    for name, message in errors.items():
        if name == "address":
            part = next((k for k in ADDRESS_FIELDS if f"address.{k}" in message), None)
            out[f"address_{part}" if part else "address_line1"] = message
        elif name == "preferences":
            part = next((k for k in PREFERENCES if f"preferences.{k}" in message), next(iter(PREFERENCES)))
            out[f"pref_{part}"] = message
        else:
            out[name] = message
    return out


async def _locations(request: Request[Any, Any, Any]) -> list[Location]:
    principal: Principal = request.state.principal
    async with runtime_of(request).db.session() as session:
        stmt = select(Location).where(location_filter(principal, col(Location.id))).order_by(col(Location.name))
        return list((await session.exec(stmt)).all())


async def _edit_response(
    request: Request[Any, Any, Any], client: Client, values: dict[str, Any], errors: dict[str, str], status: int = 200
) -> Response[Any]:
    context = {
        "client": client, "form": values, "errors": errors, "address_fields": ADDRESS_FIELDS,
        "preference_fields": PREFERENCES, "locations": await _locations(request),
    }
    if is_htmx(request):
        # htmx does not swap 4xx answers by default: a form with errors is a normal (200) fragment.
        return render(request, "clients/_edit.html", context, fragment=True)
    return render(request, "clients/edit.html", context, status_code=status)


@get("/clients/{client_id:int}/edit")
async def edit_page(request: Request[Any, Any, Any], client_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    async with runtime_of(request).db.session() as session:
        client = await _visible(session, principal, client_id)
        if client.merged_into_id is not None:
            flash(request, "This client was merged into another; edit that client instead.", "error")
            return redirect(request, f"/admin/clients/{client.merged_into_id}")
        values = form_values(client, await _contacts(session, client_id))
    return await _edit_response(request, client, values, {})


@get("/clients/{client_id:int}/profile")
async def profile_fragment(request: Request[Any, Any, Any], client_id: FromPath[int]) -> Response[Any]:
    """The profile and contact cards alone (the edit form's Cancel puts them back)."""
    principal: Principal = request.state.principal
    async with runtime_of(request).db.session() as session:
        client = await _visible(session, principal, client_id)
        context = await _profile_context(session, principal, client)
    return render(request, "clients/_profile.html", context, fragment=True)


@post("/clients/{client_id:int}/edit")
async def edit_submit(request: Request[Any, Any, Any], client_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    user: User = request.state.user
    form = await request.form()
    async with runtime_of(request).db.session() as session:
        client = await _visible(session, principal, client_id)
        current = form_values(client, await _contacts(session, client_id))
    submitted = {k: str(form.get(k) if form.get(k) is not None else current[k]) for k in current}
    changes = changes_from(submitted, current, client.preferences)
    changed: list[str] = []
    try:
        async with runtime_of(request).db.transaction() as session:
            await _visible(session, principal, client_id)
            updated = await edit_client(
                session,
                client_id,
                changes,
                actor=user.email,
                origin=f"user:{user.id}",
                actor_user_id=user.id,
                ip=client_ip(request),
            )
            after = form_values(updated, await _contacts(session, client_id))
            changed = [k for k in sorted(changes) if _differs(k, current, after)]
    except ClientEditError as exc:
        return await _edit_response(request, client, submitted, _field_errors(exc.errors), status=422)
    except ClientMerged as exc:
        flash(request, f"This client was merged into client {exc.merged_into_id}; edit that client instead.", "error")
        return redirect(request, f"/admin/clients/{exc.merged_into_id}")
    except ClientNotFound:
        raise NotFoundException("no such client") from None
    message = "Saved." if changed else "Nothing changed."
    if is_htmx(request):
        async with runtime_of(request).db.session() as session:
            client = await _visible(session, principal, client_id)
            context = await _profile_context(session, principal, client)
        context["notice"] = {"kind": "ok" if changed else "info", "message": message}
        return render(request, "clients/_profile.html", context, fragment=True)
    flash(request, message, "ok" if changed else "info")
    return redirect(request, f"/admin/clients/{client_id}")


def _differs(name: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    if name == "address":
        return any(before[f"address_{k}"] != after[f"address_{k}"] for k in ADDRESS_FIELDS)
    if name == "preferences":
        return any(before[f"pref_{k}"] != after[f"pref_{k}"] for k in PREFERENCES)
    return before[name] != after[name]


route_handlers = [client_page, edit_page, profile_fragment, edit_submit]
