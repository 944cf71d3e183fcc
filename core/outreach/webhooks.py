"""Provider webhooks for messaging connectors: delivery status and inbound messages.

``POST /webhooks/{connector type}/{connector id}/status`` and ``.../inbound``. The connector's
plugin verifies each request (Twilio: ``X-Twilio-Signature`` with the official RequestValidator)
against the PUBLIC URL — ``settings.base_url`` + path + query — because that is what the provider
signed, not whatever address a proxy forwarded it to. Unverified requests get 403 and change
nothing. Mount with ``create_app(rt, route_handlers=[webhook_router])``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request, Response, Router, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath

from core.attribution.touches import text_delivered
from core.connectors import context_for
from core.models import Connector, Outreach
from core.outreach import inbound, status
from core.plugin import Sender, WebhookRequest
from core.runtime import Runtime

log = logging.getLogger(__name__)


async def _connector_and_sender(rt: Runtime, connector_type: str, connector_id: int) -> tuple[Connector, Sender]:
    async with rt.db.session() as session:
        connector = await session.get(Connector, connector_id)
    if connector is None or connector.type != connector_type or connector.type not in rt.registry.connector_types:
        raise NotFoundException(detail="no such messaging connector")
    sender = rt.registry.connector_type(connector.type).sender(context_for(rt, connector))
    if sender is None:
        raise NotFoundException(detail="this connector does not take messaging webhooks")
    return connector, sender


async def webhook_request(rt: Runtime, request: Request[Any, Any, Any]) -> WebhookRequest:
    body = await request.body()
    query = request.url.query
    public_url = rt.settings.base_url + request.url.path + (f"?{query}" if query else "")
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    else:
        params = parse_qsl(query, keep_blank_values=True)
    return WebhookRequest(
        method=request.method,
        url=public_url,
        headers={k.lower(): v for k, v in request.headers.items()},
        params=params,
        body=body,
    )


async def _verified(state: State, request: Request[Any, Any, Any], connector_type: str, connector_id: int):  # type: ignore[no-untyped-def]
    rt: Runtime = state.clasp
    connector, sender = await _connector_and_sender(rt, connector_type, connector_id)
    hook = await webhook_request(rt, request)
    if not sender.verify_webhook(hook):
        log.warning(
            "rejected a %s webhook for connector %s: bad signature (url %s)", connector_type, connector_id, hook.url
        )
        raise PermissionDeniedException(detail="invalid webhook signature")
    return rt, connector, sender, hook


@post(
    "/{connector_type:str}/{connector_id:int}/status",
    summary="Delivery status from a messaging provider",
    status_code=200,
)
async def status_webhook(
    state: State, request: Request[Any, Any, Any], connector_type: FromPath[str], connector_id: FromPath[int]
) -> Response[str]:
    rt, connector, sender, hook = await _verified(state, request, connector_type, connector_id)
    event = sender.parse_status(hook)
    if event is not None:
        hint = hook.url.partition("?")[2]
        outreach_hint = dict(parse_qsl(hint)).get("outreach")
        await apply_status(
            rt, connector.id, event, int(outreach_hint) if outreach_hint and outreach_hint.isdigit() else None
        )  # type: ignore[arg-type]
    return Response("", media_type="text/plain", status_code=200)


async def apply_status(rt: Runtime, connector_id: int, event: Any, outreach_hint: int | None) -> Outreach | None:
    """Apply one status report; a report for a message we never recorded is adopted through the
    outreach id in its signed callback URL, else ignored (and logged)."""
    from sqlmodel import col, select

    async with rt.db.transaction() as session:
        row = (
            await session.exec(
                select(Outreach)
                .where(col(Outreach.provider_id) == event.provider_id, col(Outreach.direction) == "outbound")
                .with_for_update()
            )
        ).first()
        if row is None and outreach_hint is not None:
            candidate = await session.get(Outreach, outreach_hint, with_for_update=True)
            if (
                candidate is not None
                and candidate.direction == "outbound"
                and candidate.provider_id is None
                and candidate.connector_id in (None, connector_id)
                and candidate.state in ("sending", "review")
            ):
                row = candidate
                row.provider_id = event.provider_id
                row.connector_id = connector_id
        if row is None:
            log.info("status %s for unknown message %s ignored", event.state, event.provider_id)
            return None
        reason = None
        if event.state in ("failed", "undelivered"):
            reason = f"the provider reported {event.provider_status}" + (
                f" (error {event.error_code})" if event.error_code else ""
            )
        changed = status.advance(
            row,
            event.state,
            provider_status=event.provider_status,
            error_code=event.error_code,
            reason=reason,
            at=event.occurred_at,
        )
        if event.recipient:
            await status.recipient_problem(
                session, row, event.recipient, source=f"connector:{connector_id}:{event.error_code}"
            )
        if changed:
            session.add(row)
            if event.state in ("delivered", "read"):
                await text_delivered(session, row, origin=f"connector:{connector_id}")
        return row


@post(
    "/{connector_type:str}/{connector_id:int}/inbound",
    summary="Inbound message from a messaging provider",
    status_code=200,
)
async def inbound_webhook(
    state: State, request: Request[Any, Any, Any], connector_type: FromPath[str], connector_id: FromPath[int]
) -> Response[str]:
    rt, connector, sender, hook = await _verified(state, request, connector_type, connector_id)
    message = sender.parse_inbound(hook)
    reply_text = None
    if message is not None:
        async with rt.db.transaction() as session:
            received = await inbound.receive(session, connector_id=connector.id, message=message)  # type: ignore[arg-type]
        reply_text = received.reply
    reply = sender.inbound_reply(reply_text)
    return Response(reply.body, media_type=reply.media_type, status_code=reply.status_code)


webhook_router = Router(path="/webhooks", route_handlers=[status_webhook, inbound_webhook], tags=["webhooks"])

__all__ = ["apply_status", "inbound_webhook", "status_webhook", "webhook_router"]
