"""Clients: the book the signed-in person may see (scoped by core.access), searched with
``core.search`` (the same search as ``GET /api/v1/clients``) and paged with "More".
One client's page and its edit form live in ``admin.routes.client_profile``."""

from __future__ import annotations

import logging
from typing import Any

import phonenumbers
from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Response
from sqlalchemy import exists, func
from sqlmodel import col, select

from admin.render import is_htmx, render, runtime_of
from core.access import Principal, client_filter
from core.clients import default_region
from core.models import Associate, Client
from core.search import SearchHit, search

log = logging.getLogger("clasp.admin")
PAGE_SIZE = 50


def phone_display(e164: str | None, home_region: str) -> str:
    """A stored E.164 number as people write it: national form at home, international abroad."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    at_home = phonenumbers.region_code_for_number(number) == home_region
    style = phonenumbers.PhoneNumberFormat.NATIONAL if at_home else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style)


def unlinked_associate(principal: Principal) -> bool:
    """An associate whose account is tied to no POS associate owns no clients (core.access)."""
    return principal.role == "associate" and principal.associate_id is None


async def _owner_names(session: Any, hits: list[SearchHit]) -> dict[int, str]:
    ids = {h.client.owner_associate_id for h in hits if h.client.owner_associate_id is not None}
    if not ids:
        return {}
    rows = await session.exec(
        select(Associate.id, Associate.first_name, Associate.last_name).where(col(Associate.id).in_(ids))
    )
    return {int(i): f"{f or ''} {ln or ''}".strip() for i, f, ln in rows.all()}


@get("/clients", name="admin:clients")
async def clients_page(
    request: Request[Any, Any, Any], q: FromQuery[str] = "", cursor: FromQuery[str] = ""
) -> Response[Any]:
    principal: Principal = request.state.principal
    q = q.strip()[:200]
    scope = [client_filter(principal), col(Client.merged_into_id).is_(None)]
    total: int | None = None
    book_empty = False
    async with runtime_of(request).db.session() as session:
        # Archived clients (gone from the POS) stay findable here, marked: people look them up.
        options: dict[str, Any] = {"q": q, "limit": PAGE_SIZE, "include_archived": True, "order": "name"}
        try:
            page = await search(session, principal, cursor=cursor or None, **options)
        except ValueError:
            # A "More" link from another query or an older version: start again from the top.
            cursor = ""
            page = await search(session, principal, **options)
        if not q and not cursor:
            total = (await session.exec(select(func.count()).select_from(Client).where(*scope))).one()
        if not page.hits:
            book_empty = not (await session.exec(select(exists().where(*scope)))).one()
        owners = await _owner_names(session, page.hits)
        region = await default_region(session)
    context = {
        "hits": page.hits,
        "q": q,
        "cursor": cursor,
        "next_cursor": page.next_cursor,
        "kinds": page.kinds,
        "total": total,
        "owners": owners,
        "phone": lambda value: phone_display(value, region),
        "book_empty": book_empty,
        "unlinked": unlinked_associate(principal),
    }
    if cursor and is_htmx(request):
        # "More": the next rows, appended to the table, and the next "More" in place of this one.
        return render(request, "clients/_results.html", context, fragment=True)
    return render(request, "clients/list.html", context)


route_handlers = [clients_page]
