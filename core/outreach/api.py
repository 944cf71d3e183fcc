"""/api/v1/clients/{id}/messages: a client's conversation, and texting them (the panel's composer path).

Mounted inside the API router (``core.api.api_router``), whose guard resolves the bearer token to
the ``caller`` dependency; every query is scoped by the caller's principal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from msgspec import Meta

from core.api.auth import Caller
from core.models import Outreach
from core.outreach.conversations import ConversationError, compose, thread
from core.outreach.jobs import kick
from core.outreach.outbox import OutboxError

OutreachState = Literal[
    "pending", "sending", "sent", "delivered", "undelivered", "failed", "skipped", "review", "received"
]


class MessageIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    body: Annotated[str, Meta(max_length=1600, description="The text; may be empty when media_urls are given")] = ""
    media_urls: Annotated[list[str], Meta(max_length=10, description="Public http(s) URLs of pictures (MMS)")] = []
    associate_id: Annotated[
        int | None, Meta(description="Send as this associate (default: the token user's associate)")
    ] = None
    kind: Annotated[
        Literal["transactional", "marketing"],
        Meta(description="marketing: needs opt-in, waits for quiet hours, counts toward the daily cap"),
    ] = "transactional"


class MessageOut(msgspec.Struct, kw_only=True):
    id: int
    client_id: int | None
    direction: Literal["outbound", "inbound"]
    channel: str
    kind: str
    body: str
    media_urls: list[str]
    state: OutreachState
    state_reason: str | None
    associate_id: int | None
    location_id: int | None
    to_address: str | None
    from_address: str | None
    error_code: str | None
    provider_status: str | None
    due_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime


class MessageList(msgspec.Struct, kw_only=True):
    items: Annotated[list[MessageOut], Meta(description="Oldest first")]
    next_before: Annotated[int | None, Meta(description="Pass as ?before= for older messages; null at the start")]


def message_out(row: Outreach) -> MessageOut:
    return MessageOut(
        id=row.id,  # type: ignore[arg-type]
        client_id=row.client_id,
        direction=row.direction,  # type: ignore[arg-type]
        channel=row.channel,
        kind=row.kind,
        body=row.body,
        media_urls=list(row.media_urls or []),
        state=row.state,  # type: ignore[arg-type]
        state_reason=row.state_reason,
        associate_id=row.associate_id,
        location_id=row.location_id,
        to_address=row.to_address,
        from_address=row.from_address,
        error_code=row.error_code,
        provider_status=row.provider_status,
        due_at=row.due_at,
        sent_at=row.sent_at,
        delivered_at=row.delivered_at,
        read_at=row.read_at,
        created_at=row.created_at,
    )


class MessagesController(Controller):
    path = "/clients/{client_id:int}/messages"
    tags = ["messages"]

    @get(
        "/",
        summary="A client's conversation",
        raises=[NotAuthorizedException, NotFoundException, ValidationException],
        description="Texts to and from the client, oldest first (the newest `limit`; page back with `before`). "
        "A client outside the token's scope answers 404.",
    )
    async def list_messages(
        self,
        state: State,
        caller: NamedDependency[Caller],
        client_id: FromPath[int],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        before: Annotated[int | None, QueryParameter(description="Only messages with a smaller id")] = None,
    ) -> MessageList:
        async with state.clasp.db.session() as session:
            rows = await thread(session, caller.principal, client_id, limit=limit, before_id=before)
        if rows is None:
            raise NotFoundException(detail=f"no client with id {client_id}")
        return MessageList(
            items=[message_out(r) for r in rows], next_before=rows[0].id if len(rows) == limit and rows else None
        )

    @post(
        "/",
        summary="Text a client",
        raises=[NotAuthorizedException, NotFoundException, PermissionDeniedException, ValidationException],
        description="Queues the text in the outbox; the worker sends it under the send rules (an opted-out "
        "client is never texted; marketing needs opt-in, waits for the client's local quiet hours and counts "
        "toward the one-per-24-h cap). Returns the queued message; follow its `state`.",
        status_code=HTTP_201_CREATED,
    )
    async def send_message(
        self, state: State, caller: NamedDependency[Caller], client_id: FromPath[int], data: JSONBody[MessageIn]
    ) -> MessageOut:
        rt = state.clasp
        async with rt.db.transaction() as session:
            try:
                row = await compose(
                    session,
                    caller.principal,
                    client_id,
                    body=data.body,
                    media_urls=data.media_urls,
                    associate_id=data.associate_id,
                    kind=data.kind,
                    actor=caller.actor,
                    actor_user_id=caller.user_id,
                )
            except ConversationError:
                raise NotFoundException(detail=f"no client with id {client_id}") from None
            except OutboxError as exc:
                if "associates send as themselves" in str(exc):
                    raise PermissionDeniedException(detail=str(exc)) from None
                raise ValidationException(detail=str(exc)) from None
            out = message_out(row)
        await kick(rt)
        return out


__all__ = ["MessageIn", "MessageList", "MessageOut", "MessagesController", "message_out"]
