"""Duplicates: the identity report for a person to review, manual merges, and undoing a merge.

Owners and managers only. A manager sees a group only through the clients they may see: members
outside their scope are left out, and a group with fewer than two visible members is not shown. A
merge (or an undo) needs every client involved to be in scope. ``core.identity`` writes the change
feed and the audit rows of both.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath
from litestar.response import Response
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from admin.auth import owner_or_manager
from admin.render import flash, is_htmx, redirect, render, runtime_of
from core.access import Principal, client_filter
from core.identity import MergeError, duplicates_report, merge_clients, unmerge
from core.models import Client, ClientContact, ClientMerge, Location, User

SHOWN_GROUPS = 100
# The report is computed globally; a manager's groups are a subset, so ask for more than we show.
REPORT_LIMIT = 1000
REASONS = {
    "shared_email": ("Same email", "These clients share an email address."),
    "shared_phone": ("Same phone", "These clients share a phone number."),
    "shared_junk": (
        "Shared placeholder",
        "They share a placeholder or store value: usually different people. Fix the records in the POS unless "
        "they really are one person.",
    ),
    "name_birthday": ("Same name and birthday", "Same first and last name and the same birthday."),
    "email_typo": ("Email typo", "The same email name at domains a keystroke or two apart."),
}


@dataclass
class Member:
    client: Client
    location: str | None
    emails: list[str]
    phones: list[str]

    @property
    def name(self) -> str:
        return f"{self.client.first_name} {self.client.last_name}".strip() or f"Client #{self.client.id}"


def display_name(client: Client) -> str:
    return f"{client.first_name} {client.last_name}".strip() or f"Client #{client.id}"


async def members_of(session: AsyncSession, principal: Principal, ids: set[int]) -> dict[int, Member]:
    """The live clients among ``ids`` that the principal may see, with what tells them apart."""
    if not ids:
        return {}
    rows = (
        await session.exec(
            select(Client, Location.name)
            .outerjoin(Location, col(Location.id) == col(Client.home_location_id))
            .where(col(Client.id).in_(sorted(ids)), col(Client.merged_into_id).is_(None), client_filter(principal))
        )
    ).all()
    contacts: dict[int, list[ClientContact]] = defaultdict(list)
    found = await session.exec(
        select(ClientContact)
        .where(col(ClientContact.client_id).in_([c.id for c, _ in rows]))
        .order_by(col(ClientContact.is_primary).desc(), col(ClientContact.id))
    )
    for contact in found.all():
        contacts[contact.client_id].append(contact)
    return {
        c.id: Member(  # type: ignore[misc]
            c,
            loc,
            [x.value for x in contacts[c.id] if x.kind == "email"],  # type: ignore[index]
            [x.value for x in contacts[c.id] if x.kind == "phone"],  # type: ignore[index]
        )
        for c, loc in rows
    }


@get("/duplicates", guards=[owner_or_manager], name="admin:duplicates")
async def duplicates_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal: Principal = request.state.principal
    async with runtime_of(request).db.session() as session:
        report = await duplicates_report(session, limit=REPORT_LIMIT)
        members = await members_of(session, principal, {i for g in report for i in g.client_ids})
    groups = []
    for n, group in enumerate(report):
        visible = [members[i] for i in group.client_ids if i in members]
        if len(visible) < 2:
            continue
        label, why = REASONS.get(group.reason, (group.reason, ""))
        groups.append({"n": n, "group": group, "members": visible, "label": label, "why": why})
        if len(groups) >= SHOWN_GROUPS:
            break
    return render(request, "identity_duplicates.html", {"groups": groups, "limited": len(groups) >= SHOWN_GROUPS})


@post("/duplicates/merge", guards=[owner_or_manager])
async def merge(request: Request[Any, Any, Any]) -> Response[Any]:
    """Merge every chosen member of a group into the one the person keeps, in one transaction."""
    principal: Principal = request.state.principal
    user: User = request.state.user
    form = await request.form()
    raw_survivor = str(form.get("survivor") or "")
    if not raw_survivor.isdigit():
        raise ClientException("choose the client to keep")
    survivor_id = int(raw_survivor)
    absorbed_ids = sorted({int(v) for v in form.getall("members", []) if str(v).isdigit()} - {survivor_id})
    if not absorbed_ids:
        raise ClientException("choose at least one other client to merge into the one you keep")
    origin = f"user:{user.id}"
    merges: list[ClientMerge] = []
    error: str | None = None
    try:
        async with runtime_of(request).db.transaction() as session:
            visible = await members_of(session, principal, {survivor_id, *absorbed_ids})
            # Missing, merged meanwhile, or out of scope: the same answer, and nothing is merged.
            missing = [i for i in (survivor_id, *absorbed_ids) if i not in visible]
            if missing:
                raise MergeError(
                    ", ".join(f"client {i}" for i in missing)
                    + " is no longer a separate client (merged meanwhile?) or is outside your scope"
                )
            for absorbed_id in absorbed_ids:
                merges.append(
                    await merge_clients(
                        session,
                        survivor_id,
                        absorbed_id,
                        actor=user.email,
                        reason=f"manual:user:{user.id}",
                        origin=origin,
                    )
                )
    except MergeError as exc:  # the transaction rolled back: all of the merges or none
        error, merges = f"Nothing was merged: {exc}.", []
    if error is not None:
        if is_htmx(request):
            return render(request, "identity_merged.html", {"error": error}, fragment=True)
        flash(request, error, "error")
        return redirect(request, "/admin/duplicates")
    survivor = visible[survivor_id]
    absorbed = [visible[i] for i in absorbed_ids]
    if is_htmx(request):
        context = {"survivor": survivor, "absorbed": absorbed, "merges": merges, "error": None}
        return render(request, "identity_merged.html", context, fragment=True)
    names = ", ".join(m.name for m in absorbed)
    flash(request, f"Merged {names} into {survivor.name}. Undo it from {survivor.name}’s page if it was a mistake.")
    return redirect(request, "/admin/duplicates")


@post("/clients/{client_id:int}/merges/{merge_id:int}/undo", guards=[owner_or_manager])
async def undo_merge(
    request: Request[Any, Any, Any], client_id: FromPath[int], merge_id: FromPath[int]
) -> Response[Any]:
    principal: Principal = request.state.principal
    user: User = request.state.user
    target = f"/admin/clients/{client_id}"
    try:
        async with runtime_of(request).db.transaction() as session:
            survivor = (
                await session.exec(select(Client).where(col(Client.id) == client_id, client_filter(principal)))
            ).first()
            merge_row = await session.get(ClientMerge, merge_id)
            if survivor is None or merge_row is None or merge_row.survivor_id != client_id:
                raise NotFoundException("no such merge")
            # Undoing brings the absorbed client back as a separate client: only for those who may see it.
            absorbed = (
                await session.exec(
                    select(Client).where(col(Client.id) == merge_row.absorbed_id, client_filter(principal))
                )
            ).first()
            if absorbed is None:
                raise NotFoundException("no such merge")
            name = display_name(absorbed)
            await unmerge(session, merge_id, actor=user.email, origin=f"user:{user.id}")
        message, kind = f"Merge undone: {name} is a separate client again.", "ok"
    except MergeError as exc:
        message, kind = f"The merge could not be undone: {exc}", "error"
    flash(request, message, kind)
    return redirect(request, target)


route_handlers = [duplicates_page, merge, undo_merge]
