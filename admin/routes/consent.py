"""Consent on a client's page: the ledger, and recording an in-store opt-in with its exact wording.

Anyone who can see the client (scoped by ``core.access.client_filter``; others get 404) may record
what the client said in the store: an opt-in or an opt-out, for one channel and purpose, with the
exact wording they were shown (prefilled with the owner's standard wording, which the associate may
change). The row is a ``in_store`` ledger entry recorded by the signed-in user, audited. The card is
``clients/_consent.html`` (the client page includes it with ``consent_summary``); a POST answers the
re-rendered card to htmx and a redirect to the client page otherwise.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from admin.render import flash, is_htmx, redirect, render, runtime_of
from core import audit
from core.access import Principal, client_filter
from core.models import Client, User
from core.models.clients import CONSENT_CHANNELS, CONSENT_PURPOSES
from core.outreach.consent import CHANNEL_LABELS, PURPOSE_LABELS, consent_summary, record_consent

MAX_WORDING = 2000


async def _visible(session: AsyncSession, principal: Principal, client_id: int) -> Client:
    stmt = select(Client).where(Client.id == client_id, client_filter(principal))  # type: ignore[arg-type]
    client = (await session.exec(stmt)).first()
    if client is None:
        raise NotFoundException("no such client")
    return client


async def card_context(session: AsyncSession, client: Client) -> dict[str, Any]:
    return await consent_summary(session, client.id)  # type: ignore[arg-type]


def _card(request: Request[Any, Any, Any], client: Client, consent: dict[str, Any], status: int = 200) -> Response[Any]:
    ctx = {"client": client, "consent": consent}
    return render(request, "clients/_consent.html", ctx, fragment=True, status_code=status)


@get("/clients/{client_id:int}/consent")
async def consent_card(request: Request[Any, Any, Any], client_id: FromPath[int]) -> Response[Any]:
    """The card alone (htmx refresh; choosing another channel on the form swaps in its standard wording)."""
    async with runtime_of(request).db.session() as session:
        client = await _visible(session, request.state.principal, client_id)
        consent = await card_context(session, client)
    channel = request.query_params.get("channel")
    if channel in CONSENT_CHANNELS:
        consent["form"]["channel"] = channel
        consent["form"]["wording"] = consent["wordings"][channel]
    if request.query_params.get("purpose") in CONSENT_PURPOSES:
        consent["form"]["purpose"] = request.query_params["purpose"]
    if request.query_params.get("status") in ("opted_in", "opted_out"):
        consent["form"]["status"] = request.query_params["status"]
    return _card(request, client, consent)


@post("/clients/{client_id:int}/consent")
async def record_in_store(request: Request[Any, Any, Any], client_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    user: User = request.state.user
    form = await request.form()
    submitted = {k: str(form.get(k) or "").strip() for k in ("channel", "purpose", "status", "wording")}
    errors: dict[str, str] = {}
    if submitted["channel"] not in CONSENT_CHANNELS:
        errors["channel"] = "Choose how the client may be contacted."
    if submitted["purpose"] not in CONSENT_PURPOSES:
        errors["purpose"] = "Choose what for."
    if submitted["status"] not in ("opted_in", "opted_out"):
        errors["status"] = "Choose whether the client agreed or refused."
    if submitted["status"] == "opted_in" and not submitted["wording"]:
        errors["wording"] = "Write the exact words the client agreed to."
    if len(submitted["wording"]) > MAX_WORDING:
        errors["wording"] = f"At most {MAX_WORDING} characters."
    rt = runtime_of(request)
    async with rt.db.transaction() as session:
        client = await _visible(session, principal, client_id)
        if client.merged_into_id is not None:
            errors["channel"] = "This client was merged into another; record consent on that client."
        if not errors:
            row = await record_consent(
                session,
                client.id,  # type: ignore[arg-type]
                submitted["channel"],
                submitted["status"],
                purpose=submitted["purpose"],
                source_kind="in_store",
                source=f"panel:user:{user.id}",
                recorded_by=user.email,
                wording=submitted["wording"] or None,
            )
            await audit.record(
                session,
                "client.consent",
                actor=user.email,
                actor_user_id=user.id,
                target_type="client",
                target_id=client.id,
                details={"consent_id": row.id, "channel": row.channel, "purpose": row.purpose,
                         "status": row.status, "wording": row.wording},
            )
        consent = await card_context(session, client)
    what = f"{CHANNEL_LABELS.get(submitted['channel'], '')} · {PURPOSE_LABELS.get(submitted['purpose'], '')}"
    if errors:
        consent["form"] = submitted
        consent["errors"] = errors
        if is_htmx(request):
            return _card(request, client, consent)
        flash(request, "Consent not recorded: " + " ".join(errors.values()), "error")
        return redirect(request, f"/admin/clients/{client_id}")
    word = "opt-in" if submitted["status"] == "opted_in" else "opt-out"
    consent["saved"] = f"In-store {word} recorded: {what}."
    if is_htmx(request):
        return _card(request, client, consent)
    flash(request, consent["saved"])
    return redirect(request, f"/admin/clients/{client_id}")


route_handlers: list[object] = [consent_card, record_in_store]
