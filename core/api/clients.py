"""/api/v1/clients: search, read, edit, merge and unmerge unified clients."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.exceptions import (
    ClientException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.params import Body, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_409_CONFLICT
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal
from core.api.auth import CallerDep, owners_and_managers
from core.api.schemas import (
    ClientDetail,
    ClientList,
    ClientPatch,
    MergeRequest,
    MergeResult,
    UnmergeRequest,
    UnmergeResult,
    client_detail,
    client_summary,
    merge_out,
)
from core.clients import (
    ClientEditError,
    ClientMerged,
    ClientNotFound,
    client_view,
    edit_client,
    visible_client,
)
from core.models import ClientMerge
from core.search import search

Limit = Annotated[int, Parameter(ge=1, le=500, description="Page size")]
ClientId = Annotated[int, Parameter(description="The client's id", ge=1)]


class Conflict(ClientException):
    """The request contradicts the client's state (merged, already undone): 409."""

    status_code = HTTP_409_CONFLICT


def _not_found(client_id: int) -> NotFoundException:
    return NotFoundException(detail=f"no client with id {client_id}")


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValidationException(
            detail=f"{name} needs a timezone (e.g. 2026-01-31T09:00:00Z)",
            extra=[{"key": name, "message": "naive datetime", "source": "query"}],
        )
    return value


async def _detail(session: AsyncSession, principal: Principal, client_id: int) -> ClientDetail:
    view = await client_view(session, principal, client_id)
    if view is None:
        raise _not_found(client_id)
    return client_detail(view)


async def _merged_conflict(session: AsyncSession, principal: Principal, exc: ClientMerged) -> Conflict:
    # Point at the survivor only when the caller may see it: ids outside one's scope never leak.
    extra: dict[str, Any] = {}
    if await visible_client(session, principal, exc.merged_into_id) is not None:
        extra["merged_into_id"] = exc.merged_into_id
    return Conflict(detail=str(exc) if extra else "client was merged", extra=extra or None)


class ClientController(Controller):
    path = "/clients"
    tags = ["clients"]

    @get(
        "/",
        summary="Search clients",
        raises=[NotAuthorizedException, ValidationException],
        description=(
            "Clients the token's user may see, without clients merged into another: by id without `q`. `q` "
            'matches a phone number in any format ("(212) 555-0134" and "+1 212 555 0134" find +12125550134) '
            'or its last digits ("0134", "555-0134"), an email address or part of one, or names: every word '
            'must begin a word of the first or last name, in any order, ignoring case and accents ("renee '
            'garcia" finds "Renée García"). With `q`, exact phone and email matches come first, then name '
            "matches, then partial numbers and addresses; within each, by last name, first name and id. The "
            "same search as the admin panel's Clients list."
        ),
    )
    async def list_clients(
        self,
        state: State,
        caller: CallerDep,
        q: Annotated[str | None, Parameter(description="Name, email or phone", max_length=200)] = None,
        limit: Limit = 50,
        cursor: Annotated[str | None, Parameter(description="next_cursor of the previous page")] = None,
        include_archived: Annotated[bool, Parameter(description="Include archived clients")] = False,
        updated_since: Annotated[
            datetime | None, Parameter(description="Only clients changed at or after this time (with timezone)")
        ] = None,
    ) -> ClientList:
        async with state.clasp.db.session() as session:
            try:
                page = await search(
                    session,
                    caller.principal,
                    q=q,
                    limit=limit,
                    cursor=cursor,
                    include_archived=include_archived,
                    updated_since=_aware(updated_since, "updated_since"),
                    order="id",
                )
            except ValueError as exc:
                raise ValidationException(
                    detail=str(exc), extra=[{"key": "cursor", "message": str(exc), "source": "query"}]
                ) from None
        return ClientList(items=[client_summary(hit) for hit in page.hits], next_cursor=page.next_cursor)

    @get(
        "/{client_id:int}",
        summary="Get a client",
        raises=[NotAuthorizedException, NotFoundException],
        description="The client with contacts, external references, consent and (scoped) sales with lines. "
        "A client outside the token's scope is answered like a missing one (404).",
    )
    async def get_client(self, state: State, caller: CallerDep, client_id: ClientId) -> ClientDetail:
        async with state.clasp.db.session() as session:
            return await _detail(session, caller.principal, client_id)

    @patch(
        "/{client_id:int}",
        summary="Edit a client",
        raises=[NotAuthorizedException, NotFoundException, ValidationException, Conflict],
        description="Validates and normalises the fields given, records the edit in the change feed (the POS "
        "receives it through writeback) and in the audit log. Invalid input answers 400 with one entry per field "
        "in `extra`, and nothing is written.",
        status_code=HTTP_200_OK,
    )
    async def patch_client(
        self,
        state: State,
        request: Request[Any, Any, Any],
        caller: CallerDep,
        client_id: ClientId,
        data: Annotated[ClientPatch, Body()],
    ) -> ClientDetail:
        async with state.clasp.db.transaction() as session:
            if await visible_client(session, caller.principal, client_id) is None:
                raise _not_found(client_id)
            try:
                await edit_client(
                    session,
                    client_id,
                    data.changes(),
                    actor=caller.actor,
                    origin=caller.origin,
                    actor_user_id=caller.user_id,
                    ip=request.client.host if request.client else None,
                )
            except ClientEditError as exc:
                raise ValidationException(
                    detail="invalid client fields",
                    extra=[{"key": k, "message": v, "source": "body"} for k, v in exc.errors.items()],
                ) from None
            except ClientMerged as exc:
                raise await _merged_conflict(session, caller.principal, exc) from None
            except ClientNotFound:
                raise _not_found(client_id) from None
            return await _detail(session, caller.principal, client_id)

    @post(
        "/{client_id:int}/merge",
        summary="Merge a client into this one",
        raises=[
            NotAuthorizedException,
            PermissionDeniedException,
            NotFoundException,
            ValidationException,
            Conflict,
        ],
        description="Absorbs `other_id` into this client (owners and managers; both must be in scope). "
        "Undo with POST /clients/{client_id}/unmerge.",
        guards=[owners_and_managers],
        status_code=HTTP_200_OK,
    )
    async def merge(
        self, state: State, caller: CallerDep, client_id: ClientId, data: Annotated[MergeRequest, Body()]
    ) -> MergeResult:
        from core.identity import merge_clients

        if data.other_id == client_id:
            raise ValidationException(
                detail="a client cannot be merged into itself",
                extra=[{"key": "other_id", "message": "same as the client", "source": "body"}],
            )
        async with state.clasp.db.transaction() as session:
            for cid in (client_id, data.other_id):
                found = await visible_client(session, caller.principal, cid)
                if found is None:
                    raise _not_found(cid)
                if found.merged_into_id is not None:
                    raise await _merged_conflict(session, caller.principal, ClientMerged(cid, found.merged_into_id))
            try:
                # core.identity writes the change-feed rows and the audit row of a manual merge.
                merge = await merge_clients(
                    session,
                    client_id,
                    data.other_id,
                    actor=caller.actor,
                    reason=f"manual:{caller.origin}",
                    origin=caller.origin,
                )
            except ValueError as exc:
                raise Conflict(detail=str(exc)) from None
            return MergeResult(merge=merge_out(merge), client=await _detail(session, caller.principal, client_id))

    @post(
        "/{client_id:int}/unmerge",
        summary="Undo a merge into this client",
        raises=[NotAuthorizedException, PermissionDeniedException, NotFoundException, Conflict],
        description="Undoes `merge_id` (or, when omitted, the latest merge into this client that is not undone) "
        "and restores the absorbed client (owners and managers).",
        guards=[owners_and_managers],
        status_code=HTTP_200_OK,
    )
    async def unmerge(
        self,
        state: State,
        caller: CallerDep,
        client_id: ClientId,
        data: Annotated[UnmergeRequest | None, Body()] = None,
    ) -> UnmergeResult:
        from core.identity import unmerge

        merge_id = data.merge_id if data is not None else None
        async with state.clasp.db.transaction() as session:
            if await visible_client(session, caller.principal, client_id) is None:
                raise _not_found(client_id)
            stmt = select(ClientMerge).where(col(ClientMerge.survivor_id) == client_id)
            if merge_id is not None:
                stmt = stmt.where(col(ClientMerge.id) == merge_id)
            else:
                stmt = stmt.where(col(ClientMerge.undone_at).is_(None)).order_by(col(ClientMerge.id).desc())
            merge = (await session.exec(stmt)).first()
            # Undoing a merge brings the absorbed client back: only for those who may see that client.
            if merge is not None and await visible_client(session, caller.principal, merge.absorbed_id) is None:
                merge = None
            if merge is None:
                detail = (
                    f"no merge {merge_id} into client {client_id}"
                    if merge_id is not None
                    else f"client {client_id} has no merge to undo"
                )
                raise NotFoundException(detail=detail)
            if merge.undone_at is not None:
                raise Conflict(detail=f"merge {merge.id} was already undone")
            try:
                await unmerge(session, merge.id, actor=caller.actor, origin=caller.origin)  # type: ignore[arg-type]
            except ValueError as exc:
                raise Conflict(detail=str(exc)) from None
            await session.refresh(merge)
            return UnmergeResult(
                merge=merge_out(merge),
                client=await _detail(session, caller.principal, client_id),
                restored_client_id=merge.absorbed_id,
            )
