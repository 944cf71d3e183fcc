"""Twilio's Messages API over httpx (form-encoded, HTTP Basic auth), and its webhooks.

Sending is deliberately ONE request with no automatic retry: only core's outbox retries, and only
when Twilio certainly did not accept the message (429/20429, 5xx, connection refused). A timeout
after the request was written may mean Twilio has it, so it is reported as ``unknown`` and
reconciled with :meth:`TwilioSender.lookup`, never re-sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import httpx
from twilio.request_validator import RequestValidator, get_signature_algorithm

from core.plugin import (
    ConnectorContext,
    InboundMessage,
    OutboundMessage,
    PermanentError,
    Sender,
    SendResult,
    StatusEvent,
    TransientError,
    WebhookReply,
    WebhookRequest,
    http_client,
    request_with_retries,
)

from .errors import RECIPIENT_PROBLEMS, describe

API_VERSION = "2010-04-01"
# Twilio's status words → Clasp's ordered delivery states.
DELIVERY = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "partially_delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class _Params(dict[str, list[str]]):
    """Form fields with repeats, in the MultiDict shape RequestValidator understands (``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


class TwilioSender(Sender):
    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.base_url = settings.api_base_url.rstrip("/")
        self.account_sid = settings.account_sid
        self.auth_token = settings.auth_token.get_secret_value() if settings.auth_token else ""
        self.from_number = settings.from_number
        self.messaging_service_sid = settings.messaging_service_sid
        self.timeout = float(settings.request_timeout_seconds)

    # ------------------------------------------------------------------------------------------ api

    @property
    def messages_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def _client(self) -> httpx.AsyncClient:
        return http_client(
            self.base_url,
            auth=(self.account_sid, self.auth_token),
            timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
        )

    def _form(self, message: OutboundMessage) -> list[tuple[str, str]]:
        form = [("To", message.to)]
        if self.messaging_service_sid:
            form.append(("MessagingServiceSid", self.messaging_service_sid))
        elif self.from_number:
            form.append(("From", self.from_number))
        if message.body:
            form.append(("Body", message.body))
        form += [("MediaUrl", url) for url in message.media_urls]
        if message.status_callback:
            form.append(("StatusCallback", message.status_callback))
        return form

    async def send(self, message: OutboundMessage) -> SendResult:
        if not self.account_sid or not self.auth_token:
            raise PermanentError("the Twilio connector has no account SID or auth token")
        if not self.from_number and not self.messaging_service_sid:
            raise PermanentError("the Twilio connector needs a from number or a messaging service SID")
        content = urlencode(self._form(message)).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        async with self._client() as client:
            try:
                response = await client.post(self.messages_path, content=content, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The connection was never made, so Twilio cannot have the message.
                raise TransientError(f"cannot reach Twilio: {type(exc).__name__}: {exc}") from None
            except httpx.TransportError as exc:
                return SendResult(state="unknown", message=f"no answer from Twilio: {type(exc).__name__}: {exc}")
        return self._result(response)

    def _result(self, response: httpx.Response) -> SendResult:
        try:
            payload: dict[str, Any] = response.json()
        except ValueError:
            payload = {}
        if response.status_code in (200, 201):
            status = str(payload.get("status") or "queued")
            return SendResult(
                state="sent" if status not in ("failed", "undelivered") else status,  # type: ignore[arg-type]
                provider_id=payload.get("sid"),
                provider_status=status,
                error_code=str(payload["error_code"]) if payload.get("error_code") else None,
            )
        code = str(payload["code"]) if payload.get("code") is not None else None
        text = describe(code, str(payload.get("message") or response.reason_phrase))
        if response.status_code == 429 or code == "20429" or response.status_code >= 500:
            raise TransientError(text, retry_after=_retry_after(response))
        if response.status_code in (401, 403):
            raise PermanentError(describe(code or "20003", text))
        return SendResult(
            state="failed",
            error_code=code or str(response.status_code),
            message=text,
            recipient=RECIPIENT_PROBLEMS.get(code or ""),
        )

    async def lookup(self, message: OutboundMessage) -> SendResult | None:
        """Find this message among Twilio's messages to the same number, created after the claim
        with the same body and media count. Newest first; the earliest match is ours."""
        params: dict[str, str] = {"To": message.to, "PageSize": "100"}
        if self.from_number and not self.messaging_service_sid:
            params["From"] = self.from_number
        if message.not_before is not None:
            params["DateSent>"] = (message.not_before - timedelta(days=1)).date().isoformat()
        async with self._client() as client:
            try:
                response = await request_with_retries(client, "GET", self.messages_path, params=params, attempts=3)
            except httpx.TransportError as exc:
                raise TransientError(f"cannot reach Twilio: {exc}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"Twilio answered {response.status_code}")
        if response.status_code != 200:
            raise PermanentError(f"Twilio answered {response.status_code} to a message lookup: {response.text[:200]}")
        matches = []
        for found in response.json().get("messages", []):
            created = parse_date(found.get("date_created"))
            if found.get("body") != message.body or int(found.get("num_media") or 0) != len(message.media_urls):
                continue
            if message.not_before is not None and (created is None or created < message.not_before):
                continue
            if found.get("direction", "outbound-api") != "outbound-api":
                continue
            matches.append((created, found))
        if not matches:
            return None
        found = min(matches, key=lambda m: m[0].timestamp() if m[0] else float("inf"))[1]
        status = str(found.get("status") or "queued")
        delivery = DELIVERY.get(status, "queued")
        code = str(found["error_code"]) if found.get("error_code") else None
        state = {"delivered": "delivered", "read": "delivered", "failed": "failed", "undelivered": "undelivered"}
        return SendResult(
            state=state.get(delivery, "sent"),  # type: ignore[arg-type]
            provider_id=found.get("sid"),
            provider_status=status,
            error_code=code,
            message=describe(code) if code else "",
        )

    async def account(self) -> dict[str, Any]:
        async with self._client() as client:
            response = await request_with_retries(client, "GET", f"/{API_VERSION}/Accounts/{self.account_sid}.json")
        if response.status_code in (401, 403):
            raise PermanentError(describe("20003"))
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------------- webhooks

    def verify_webhook(self, request: WebhookRequest) -> bool:
        signature = request.headers.get("x-twilio-signature")
        if not signature or not self.auth_token:
            return False
        params = _Params()
        for key, value in request.params:
            params.setdefault(key, []).append(value)
        algorithm = get_signature_algorithm(request.headers.get("x-twilio-webhooks-signature-settings"))
        return bool(RequestValidator(self.auth_token).validate(request.url, params, signature, algorithm))

    def parse_status(self, request: WebhookRequest) -> StatusEvent | None:
        sid = request.first("MessageSid") or request.first("SmsSid")
        raw = (request.first("MessageStatus") or request.first("SmsStatus") or "").lower()
        if not sid or raw not in DELIVERY:
            return None
        code = request.first("ErrorCode") or None
        return StatusEvent(
            provider_id=sid,
            state=DELIVERY[raw],  # type: ignore[arg-type]
            provider_status=raw,
            error_code=code,
            recipient=RECIPIENT_PROBLEMS.get(code or ""),
            occurred_at=None,
        )

    def parse_inbound(self, request: WebhookRequest) -> InboundMessage | None:
        sid = request.first("MessageSid") or request.first("SmsMessageSid") or request.first("SmsSid")
        sender = request.first("From")
        if not sid or not sender:
            return None
        try:
            count = int(request.first("NumMedia") or 0)
        except ValueError:
            count = 0
        media = [url for i in range(count) if (url := request.first(f"MediaUrl{i}"))]
        return InboundMessage(
            provider_id=sid,
            from_address=sender,
            to_address=request.first("To") or "",
            body=request.first("Body") or "",
            media_urls=media,
        )

    def inbound_reply(self, text: str | None) -> WebhookReply:
        if not text:
            return WebhookReply(body=EMPTY_TWIML, media_type="text/xml")
        twiml = f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(text)}</Message></Response>'
        return WebhookReply(body=twiml, media_type="text/xml")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
