"""The Twilio sandbox: a Litestar app faithful to ``shared/api/salesforce_twilio.md`` Part B.

Twilio API (HTTP Basic auth ``account_sid:auth_token``; form-encoded requests; JSON answers with
string numerics, RFC 2822 dates and ``{code, message, more_info, status}`` errors):

- ``POST /2010-04-01/Accounts/{sid}/Messages.json`` — To, From | MessagingServiceSid, Body,
  MediaUrl (repeatable), StatusCallback. Answers 201 with status ``queued`` (``accepted`` with a
  messaging service).
- ``GET  /2010-04-01/Accounts/{sid}/Messages.json`` — newest first; filters To, From, DateSent,
  DateSent<, DateSent> (YYYY-MM-DD); PageSize, Page.
- ``GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json`` and ``GET .../Accounts/{sid}.json``.

Magic numbers (Twilio's test-credential table, plus two sandbox-only delivery outcomes):

=============  ==========================================================
To +15005550001  400, 21211 invalid number
To +15005550002  400, 21612 cannot route to this number
To +15005550003  400, 21408 region not enabled
To +15005550004  400, 21610 recipient opted out
To +15005550009  400, 21614 not a mobile number
To +15005550010  accepted, then status callback ``undelivered`` 30006 (landline) — sandbox only
To +15005550011  accepted, then status callback ``undelivered`` 30003 (unreachable) — sandbox only
From +15005550001 400, 21212 invalid From; From +15005550008: 400, 21611 queue full
From not owned   400, 21606 (owned numbers: option ``numbers``, default +15005550006)
=============  ==========================================================

Opt-out keywords: an inbound STOP/STOPALL/UNSUBSCRIBE/CANCEL/END/QUIT/REVOKE/OPTOUT (the whole
message, any case) blocks that person for that sender, and later sends answer 400 21610 until they
text START/YES/UNSTOP. The inbound message is still forwarded to the webhook, as Twilio does.

Status callbacks are signed exactly like Twilio's (``X-Twilio-Signature``, HMAC-SHA1 of the URL and
sorted parameters with the auth token) and delivered asynchronously after ``callback_delay``
seconds each: ``sent`` then ``delivered`` (or ``undelivered``). ``out_of_order=true`` delivers them
reversed; ``duplicate_callbacks=true`` delivers each twice.

Back door (``/_sandbox/*``, no auth) for tests and the demo:

- ``POST /_sandbox/inbound`` ``{"from", "to"?, "body", "media_urls"?, "url"?, "bad_signature"?}``:
  a person texts us — posts a signed inbound webhook to ``url`` (default: option ``inbound_url``)
  and answers with Clasp's status code and TwiML reply.
- ``POST /_sandbox/faults`` ``{"status": 429|500|503, "code"?: 20429, "count"?: 1}`` fails the next
  sends before accepting them; ``{"mode": "hang", "seconds": 5, "count": 1}`` accepts a message and
  then answers only after ``seconds`` (a timeout after Twilio took the message).
- ``POST /_sandbox/config`` changes ``callback_delay``, ``out_of_order``, ``duplicate_callbacks``,
  ``inbound_url``; ``GET /_sandbox/messages``, ``GET /_sandbox/callbacks``, ``POST /_sandbox/reset``.
- ``GET /`` is an HTML inbox of every message, with a form to text in as a client.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
from datetime import UTC, date, datetime
from email.utils import format_datetime
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)

API = "/2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "c1a5b0" * 5 + "c1"
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"
DEFAULT_NUMBERS = ("+15005550006",)
OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN = {"START", "YES", "UNSTOP"}
TO_ERRORS = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number"),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
DLR_OUTCOMES = {"+15005550010": ("undelivered", 30006), "+15005550011": ("undelivered", 30003)}
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _rfc2822(value: datetime | None) -> str | None:
    return format_datetime(value) if value else None


def _bool(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature over a URL and form parameters."""
    return RequestValidator(auth_token).compute_signature(url, params)


class TwilioSandbox:
    """All mutable sandbox state. Used only from the server's event loop."""

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        numbers: Any = DEFAULT_NUMBERS,
        messaging_service_sids: Any = (),
        callback_delay: float = 0.2,
        out_of_order: Any = False,
        duplicate_callbacks: Any = False,
        inbound_url: str | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = [n.strip() for n in (numbers.split(",") if isinstance(numbers, str) else numbers)]
        services = messaging_service_sids
        self.services = [s.strip() for s in (services.split(",") if isinstance(services, str) else services)]
        self.callback_delay = float(callback_delay)
        self.out_of_order = _bool(out_of_order)
        self.duplicate_callbacks = _bool(duplicate_callbacks)
        self.inbound_url = inbound_url
        self.reset()

    def reset(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.blocks: set[tuple[str, str]] = set()  # (person, our sender) pairs that texted STOP
        self.faults: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    # --------------------------------------------------------------------------------------- model

    def new_sid(self, media: bool) -> str:
        return ("MM" if media else "SM") + secrets.token_hex(16)

    def resource(self, msg: dict[str, Any]) -> dict[str, Any]:
        sid = msg["sid"]
        base = f"{API}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": msg["body"],
            "date_created": _rfc2822(msg["date_created"]),
            "date_sent": _rfc2822(msg["date_sent"]),
            "date_updated": _rfc2822(msg["date_updated"]),
            "direction": msg["direction"],
            "error_code": msg["error_code"],
            "error_message": msg["error_message"],
            "from": msg["from"],
            "messaging_service_sid": msg["messaging_service_sid"],
            "num_media": str(len(msg["media_urls"])),
            "num_segments": str(max(1, -(-len(msg["body"]) // 160))),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": msg["status"],
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": msg["to"],
            "uri": f"{base}.json",
        }

    def error(self, status: int, code: int, message: str) -> Response[Any]:
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return Response(body, status_code=status)

    def authorized(self, request: Request[Any, Any, Any], sid: str) -> Response[Any] | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            user, _, password = (
                base64.b64decode(encoded).decode().partition(":") if scheme.lower() == "basic" else ("", "", "")
            )
        except ValueError:
            user, password = "", ""
        if user != self.account_sid or not secrets.compare_digest(password, self.auth_token):
            return self.error(401, 20003, "Authenticate")
        if sid != self.account_sid:
            return self.error(404, 20404, f"The requested resource {request.url.path} was not found")
        return None

    # ---------------------------------------------------------------------------------------- send

    async def create(self, form: list[tuple[str, str]]) -> Response[Any]:
        fields: dict[str, str] = {}
        media: list[str] = []
        for key, value in form:
            if key == "MediaUrl":
                media.append(value)
            else:
                fields.setdefault(key, value)
        fault = self.faults[0] if self.faults else None
        if fault is not None and fault.get("mode") != "hang":
            self._use_fault()
            code = int(fault.get("code") or (20429 if fault["status"] == 429 else 20500))
            headers = {"Retry-After": "1"} if fault["status"] == 429 else {}
            response = self.error(
                int(fault["status"]), code, "Too Many Requests" if fault["status"] == 429 else "Internal error"
            )
            response.headers.update(headers)
            return response
        to, sender, service = fields.get("To", ""), fields.get("From"), fields.get("MessagingServiceSid")
        body = fields.get("Body", "")
        if not to:
            return self.error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return self.error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
        if not body and not media:
            return self.error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return self.error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if service and service not in self.services and not re.fullmatch(r"MG[0-9a-fA-F]{32}", service):
            return self.error(400, 21701, f"The Messaging Service Sid {service} is invalid.")
        if sender == "+15005550001":
            return self.error(400, 21212, f"The 'From' number {sender} is not a valid phone number.")
        if sender == "+15005550008":
            return self.error(400, 21611, "This 'From' number has exceeded the maximum number of queued messages")
        if sender and sender not in self.numbers:
            return self.error(
                400,
                21606,
                f"The 'From' phone number provided ({sender}) is not a valid message-capable Twilio phone number "
                "for this destination/account",
            )
        if to in TO_ERRORS:
            code, text = TO_ERRORS[to]
            return self.error(400, code, text.format(to=to))
        if not E164.match(to):
            return self.error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if (to, sender or service) in self.blocks:
            return self.error(400, 21610, "Attempt to send to unsubscribed recipient")
        now = _now()
        msg = {
            "sid": self.new_sid(bool(media)),
            "direction": "outbound-api",
            "from": sender,
            "to": to,
            "body": body,
            "media_urls": media,
            "messaging_service_sid": service,
            "status": "accepted" if service else "queued",
            "error_code": None,
            "error_message": None,
            "date_created": now,
            "date_sent": now,
            "date_updated": now,
            "status_callback": fields.get("StatusCallback"),
        }
        self.messages[msg["sid"]] = msg
        outcome = DLR_OUTCOMES.get(to, ("delivered", None))
        self._spawn(self._progress(msg, outcome))
        if fault is not None:  # "hang": Twilio has the message, but the answer is late
            self._use_fault()
            await asyncio.sleep(float(fault.get("seconds", 5)))
        return Response(self.resource(msg), status_code=201)

    def _use_fault(self) -> None:
        fault = self.faults[0]
        fault["count"] = int(fault.get("count", 1)) - 1
        if fault["count"] <= 0:
            self.faults.pop(0)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _progress(self, msg: dict[str, Any], outcome: tuple[str, int | None]) -> None:
        final, code = outcome
        steps: list[tuple[str, int | None]] = [("sent", None), (final, code)]
        # The message itself moves forward in real order; only the reports may arrive shuffled.
        await asyncio.sleep(self.callback_delay)
        msg["status"], msg["date_updated"] = final, _now()
        if code:
            msg["error_code"], msg["error_message"] = code, f"Twilio error {code}"
        if not msg.get("status_callback"):
            return
        if self.out_of_order:
            steps.reverse()
        for status, err in steps:
            for _ in range(2 if self.duplicate_callbacks else 1):
                await self._callback(msg, status, err)
            await asyncio.sleep(self.callback_delay)

    async def _callback(self, msg: dict[str, Any], status: str, code: int | None) -> None:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": msg["from"] or "",
            "To": msg["to"],
            "MessageSid": msg["sid"],
            "SmsSid": msg["sid"],
            "MessageStatus": status,
            "SmsStatus": status,
        }
        if msg["messaging_service_sid"]:
            params["MessagingServiceSid"] = msg["messaging_service_sid"]
        if code:
            params["ErrorCode"] = str(code)
        if status in ("delivered", "undelivered"):
            params["RawDlrDoneDate"] = _now().strftime("%y%m%d%H%M")
        url = msg["status_callback"]
        entry: dict[str, Any] = {"sid": msg["sid"], "status": status, "url": url}
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(
                    url, data=params, headers={"X-Twilio-Signature": sign(self.auth_token, url, params)}
                )
            entry["http_status"] = response.status_code
        except httpx.HTTPError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        self.callbacks.append(entry)

    # ------------------------------------------------------------------------------------- inbound

    async def inbound(
        self,
        *,
        person: str,
        to: str | None,
        body: str,
        media_urls: list[str],
        url: str | None,
        bad_signature: bool = False,
    ) -> dict[str, Any]:
        ours = to or (self.numbers[0] if self.numbers else "")
        word = body.strip().upper()
        if word in OPT_OUT:
            self.blocks.add((person, ours))
        elif word in OPT_IN:
            self.blocks.discard((person, ours))
        now = _now()
        sid = self.new_sid(bool(media_urls))
        self.messages[sid] = {
            "sid": sid,
            "direction": "inbound",
            "from": person,
            "to": ours,
            "body": body,
            "media_urls": media_urls,
            "messaging_service_sid": None,
            "status": "received",
            "error_code": None,
            "error_message": None,
            "date_created": now,
            "date_sent": now,
            "date_updated": now,
            "status_callback": None,
        }
        target = url or self.inbound_url
        if not target:
            return {"sid": sid, "delivered": False, "error": "no inbound webhook URL (option inbound_url or 'url')"}
        params = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": str(len(media_urls)),
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "To": ours,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": person,
            "ApiVersion": "2010-04-01",
            "FromCountry": "US",
        }
        for i, media in enumerate(media_urls):
            params[f"MediaUrl{i}"] = media
            params[f"MediaContentType{i}"] = "image/jpeg"
        signature = sign(self.auth_token, target, params)
        if bad_signature:
            signature = sign(self.auth_token + "-wrong", target, params)
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(
                    target,
                    content=urlencode(params),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature,
                    },
                )
        except httpx.HTTPError as exc:
            return {"sid": sid, "delivered": False, "error": f"{type(exc).__name__}: {exc}"}
        reply = None
        found = re.search(r"<Message[^>]*>(.*?)</Message>", response.text, re.S)
        if response.status_code == 200 and found:
            from xml.sax.saxutils import unescape

            reply = unescape(found.group(1))
            rsid = self.new_sid(False)
            self.messages[rsid] = {
                "sid": rsid,
                "direction": "outbound-reply",
                "from": ours,
                "to": person,
                "body": reply,
                "media_urls": [],
                "messaging_service_sid": None,
                "status": "delivered",
                "error_code": None,
                "error_message": None,
                "date_created": _now(),
                "date_sent": _now(),
                "date_updated": _now(),
                "status_callback": None,
            }
        return {
            "sid": sid,
            "delivered": True,
            "status_code": response.status_code,
            "response": response.text,
            "reply": reply,
        }

    def listing(self, query: dict[str, str]) -> list[dict[str, Any]]:
        def on(msg: dict[str, Any]) -> date:
            return (msg["date_sent"] or msg["date_created"]).date()

        rows = list(self.messages.values())
        if query.get("To"):
            rows = [m for m in rows if m["to"] == query["To"]]
        if query.get("From"):
            rows = [m for m in rows if m["from"] == query["From"]]
        for key, test in (
            ("DateSent", lambda d, v: d == v),
            ("DateSent<", lambda d, v: d <= v),
            ("DateSent>", lambda d, v: d >= v),
        ):
            if query.get(key):
                value = date.fromisoformat(query[key][:10])
                rows = [m for m in rows if test(on(m), value)]
        rows.sort(key=lambda m: m["date_created"], reverse=True)
        return rows


# ---------------------------------------------------------------------------------------------- routes


def _sb(state: State) -> TwilioSandbox:
    return state.sandbox  # type: ignore[no-any-return]


@post(f"{API}/Accounts/{{sid:str}}/Messages.json", status_code=201)
async def create_message(state: State, request: Request[Any, Any, Any], sid: FromPath[str]) -> Response[Any]:
    sb = _sb(state)
    denied = sb.authorized(request, sid)
    if denied is not None:
        return denied
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return sb.error(400, 21604, "Requests must be application/x-www-form-urlencoded")
    form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    return await sb.create(form)


@get(f"{API}/Accounts/{{sid:str}}/Messages.json")
async def list_messages(state: State, request: Request[Any, Any, Any], sid: FromPath[str]) -> Response[Any]:
    sb = _sb(state)
    denied = sb.authorized(request, sid)
    if denied is not None:
        return denied
    query = {k: v for k, v in request.query_params.items()}
    try:
        size = max(1, min(1000, int(query.get("PageSize", 50))))
        page = max(0, int(query.get("Page", 0)))
    except ValueError:
        return sb.error(400, 20001, "Invalid paging parameters")
    try:
        rows = sb.listing(query)
    except ValueError:
        return sb.error(400, 20001, "Invalid DateSent")
    chunk = rows[page * size : (page + 1) * size]
    uri = f"{API}/Accounts/{sid}/Messages.json"
    keep = {k: v for k, v in query.items() if k not in ("Page", "PageSize")}

    def page_uri(n: int) -> str:
        return f"{uri}?{urlencode({**keep, 'PageSize': size, 'Page': n})}"

    body = {
        "messages": [sb.resource(m) for m in chunk],
        "end": page * size + max(0, len(chunk) - 1),
        "first_page_uri": page_uri(0),
        "next_page_uri": page_uri(page + 1) if (page + 1) * size < len(rows) else None,
        "page": page,
        "page_size": size,
        "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        "start": page * size,
        "uri": page_uri(page),
    }
    return Response(body)


@get(f"{API}/Accounts/{{sid:str}}/Messages/{{message_sid:str}}")
async def fetch_message(
    state: State, request: Request[Any, Any, Any], sid: FromPath[str], message_sid: FromPath[str]
) -> Response[Any]:
    sb = _sb(state)
    denied = sb.authorized(request, sid)
    if denied is not None:
        return denied
    msg = sb.messages.get(message_sid.removesuffix(".json"))
    if msg is None:
        return sb.error(404, 20404, f"The requested resource {request.url.path} was not found")
    return Response(sb.resource(msg))


@get(f"{API}/Accounts/{{sid:str}}")
async def fetch_account(state: State, request: Request[Any, Any, Any], sid: FromPath[str]) -> Response[Any]:
    sb = _sb(state)
    if sid.removesuffix(".json") != sb.account_sid:
        return sb.error(404, 20404, "The requested resource was not found")
    denied = sb.authorized(request, sid.removesuffix(".json"))
    if denied is not None:
        return denied
    return Response({"sid": sb.account_sid, "friendly_name": "Clasp sandbox", "status": "active", "type": "Full"})


@post("/_sandbox/inbound", status_code=200)
async def simulate_inbound(state: State, data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    return await _sb(state).inbound(
        person=str(data["from"]),
        to=data.get("to"),
        body=str(data.get("body", "")),
        media_urls=list(data.get("media_urls") or []),
        url=data.get("url"),
        bad_signature=bool(data.get("bad_signature")),
    )


@post("/_sandbox/inbound-form", status_code=303)
async def inbound_form(state: State, request: Request[Any, Any, Any]) -> Redirect:
    form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    await _sb(state).inbound(
        person=form.get("from", ""),
        to=form.get("to") or None,
        body=form.get("body", ""),
        media_urls=[],
        url=form.get("url") or None,
    )
    return Redirect("/")


@post("/_sandbox/faults", status_code=200)
async def add_fault(state: State, data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    sb = _sb(state)
    fault = {
        "status": int(data.get("status", 0)),
        "code": data.get("code"),
        "count": int(data.get("count", 1)),
        "mode": data.get("mode"),
        "seconds": float(data.get("seconds", 5)),
    }
    sb.faults.append(fault)
    return {"faults": sb.faults}


@post("/_sandbox/config", status_code=200)
async def configure(state: State, data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    sb = _sb(state)
    if "callback_delay" in data:
        sb.callback_delay = float(data["callback_delay"])
    for key in ("out_of_order", "duplicate_callbacks"):
        if key in data:
            setattr(sb, key, _bool(data[key]))
    if "inbound_url" in data:
        sb.inbound_url = data["inbound_url"]
    return {
        "callback_delay": sb.callback_delay,
        "out_of_order": sb.out_of_order,
        "duplicate_callbacks": sb.duplicate_callbacks,
        "inbound_url": sb.inbound_url,
    }


@post("/_sandbox/reset", status_code=200)
async def reset(state: State) -> dict[str, Any]:
    _sb(state).reset()
    return {"ok": True}


@get("/_sandbox/messages")
async def all_messages(state: State) -> dict[str, Any]:
    sb = _sb(state)
    rows = sorted(sb.messages.values(), key=lambda m: m["date_created"])
    return {
        "messages": [
            {**sb.resource(m), "media_urls": m["media_urls"], "status_callback": m["status_callback"]} for m in rows
        ],
        "blocks": sorted(list(b) for b in sb.blocks),
        "pending_tasks": len(sb.tasks),
    }


@get("/_sandbox/callbacks")
async def callback_log(state: State) -> dict[str, Any]:
    return {"callbacks": _sb(state).callbacks, "pending_tasks": len(_sb(state).tasks)}


@get("/", media_type="text/html")
async def inbox(state: State) -> str:
    sb = _sb(state)
    rows = []
    for m in sorted(sb.messages.values(), key=lambda m: m["date_created"], reverse=True):
        media = "".join(f' <a href="{escape(u)}">[media]</a>' for u in m["media_urls"])
        error = f" ({m['error_code']})" if m["error_code"] else ""
        rows.append(
            f"<tr><td>{escape(m['date_created'].strftime('%Y-%m-%d %H:%M:%S'))}</td><td>{escape(m['direction'])}</td>"
            f"<td>{escape(m['from'] or m['messaging_service_sid'] or '')}</td><td>{escape(m['to'])}</td>"
            f"<td>{escape(m['body'])}{media}</td><td>{escape(m['status'])}{error}</td></tr>"
        )
    table = "".join(rows) or '<tr><td colspan="6">No messages yet.</td></tr>'
    blocked = ", ".join(f"{escape(p)} → {escape(s or '')}" for p, s in sorted(sb.blocks)) or "nobody"
    number = escape(sb.numbers[0] if sb.numbers else "")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Twilio sandbox inbox</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}}</style></head><body>
<h1>Twilio sandbox inbox</h1><p>Account {escape(sb.account_sid)} · numbers {escape(", ".join(sb.numbers))} ·
opted out: {blocked}</p>
<form method="post" action="/_sandbox/inbound-form"><fieldset><legend>Text in as a client</legend>
<label>From <input name="from" placeholder="+12125550134" required></label>
<label>To <input name="to" value="{number}"></label>
<label>Message <input name="body" size="40" required></label>
<label>Webhook <input name="url" size="50" value="{escape(sb.inbound_url or "")}"></label>
<button>Send</button></fieldset></form>
<table><thead><tr><th>When (UTC)</th><th>Direction</th><th>From</th><th>To</th><th>Body</th><th>Status</th></tr>
</thead><tbody>{table}</tbody></table></body></html>"""


def create_app(**options: Any) -> Litestar:
    """The sandbox app. Options: account_sid, auth_token, numbers, messaging_service_sids,
    callback_delay, out_of_order, duplicate_callbacks, inbound_url."""
    sandbox = TwilioSandbox(**options)
    return Litestar(
        route_handlers=[
            create_message,
            list_messages,
            fetch_message,
            fetch_account,
            simulate_inbound,
            inbound_form,
            add_fault,
            configure,
            reset,
            all_messages,
            callback_log,
            inbox,
        ],
        state=State({"sandbox": sandbox}),
        openapi_config=None,
        debug=False,
    )
