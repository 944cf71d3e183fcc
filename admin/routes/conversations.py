"""Conversations: a client's text thread (live), the composer (SMS / MMS), the Inbox of unread replies
and, for owners and managers, the unmatched inbox. Pictures uploaded in the composer are served at
``/media/<random>.<ext>`` (``media_handlers``, mounted at the site root) so the provider can fetch them.

Who a reply is for: the core flags every inbound message to an associate (whoever last texted the
client, else the client's own associate). It counts as "for you" when it is flagged to your associate
record or to nobody; opening a thread marks it read only when every unread reply in it is for you, so
a manager looking over an associate's shoulder does not clear the associate's Inbox.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import File, Response
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from admin.auth import client_ip, owner_or_manager
from admin.render import flash, is_htmx, redirect, render, runtime_of
from core import timezones
from core.access import Principal, can_see_client, client_filter
from core.audit import record
from core.automations.store import default_timezone
from core.clients import ClientEditError, edit_client
from core.models import Associate, Client, ClientContact, Location, Outreach, Task
from core.outreach import conversations
from core.outreach.consent import current_consent
from core.outreach.jobs import kick
from core.outreach.outbox import MAX_BODY, OutboxError
from core.outreach.textable import display as display_phone
from core.outreach.textable import numbers_for, sharing
from core.runtime import Runtime
from core.search import search
from core.timelabels import local_label

log = logging.getLogger("clasp.admin")

THREAD_LIMIT = 100
POLL_THREAD = "3s"
POLL_INBOX = "10s"
POLL_BADGE = "30s"
# Twilio fetches MMS media itself; JPEG, PNG and GIF are the types it formats for every handset, and
# 5 MB is its per-message media limit.
MAX_UPLOAD = 5 * 1024 * 1024
IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif"}
MEDIA_NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|gif)$")
STATE_LABELS = {
    "pending": "pending",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "skipped": "skipped",
    "review": "review",
    "received": "received",
}


# ---------------------------------------------------------------------------------------------- media


def media_dir(rt: Runtime) -> Path:
    return rt.settings.data_dir / "media"


def sniff_image(data: bytes) -> str | None:
    """The file extension for an image we accept, judged by its bytes (never by its name or header)."""
    for magic, ext in IMAGE_MAGIC:
        if data.startswith(magic):
            return ext
    return None


async def store_upload(rt: Runtime, upload: UploadFile) -> str:
    """Save an uploaded picture under the data directory; returns its public URL. ValueError if refused."""
    data = await upload.read(MAX_UPLOAD + 1)
    if not data:
        raise ValueError("The picture file is empty.")
    if len(data) > MAX_UPLOAD:
        raise ValueError(f"The picture is larger than {MAX_UPLOAD // (1024 * 1024)} MB; text a smaller one.")
    ext = sniff_image(data)
    if ext is None:
        raise ValueError("Only JPEG, PNG or GIF pictures can be texted.")
    folder = media_dir(rt)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}.{ext}"
    (folder / name).write_bytes(data)
    return f"{rt.settings.base_url}/media/{name}"


@get("/media/{name:str}", include_in_schema=False, name="media")
async def media_file(request: Request[Any, Any, Any], name: FromPath[str]) -> File:
    """Public (the provider fetches it without a session): the random 128-bit name is the secret."""
    if not MEDIA_NAME.fullmatch(name):
        raise NotFoundException("no such file")
    path = media_dir(runtime_of(request)) / name
    if not path.is_file():
        raise NotFoundException("no such file")
    return File(
        path=path,
        media_type=MEDIA_TYPES[name.rsplit(".", 1)[1]],
        content_disposition_type="inline",
        headers={
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'",
            "cache-control": "public, max-age=31536000, immutable",
        },
    )


# Mounted at the site root (not under /admin): see admin/README.md.
media_handlers = [media_file]


# --------------------------------------------------------------------------------------------- helpers


def _name(first: str | None, last: str | None, fallback: str = "") -> str:
    return f"{first or ''} {last or ''}".strip() or fallback


def client_name(client: Client) -> str:
    return _name(client.first_name, client.last_name, f"Client #{client.id}")


def mine(principal: Principal, associate_id: int | None) -> bool:
    """A reply is for the viewer when it is flagged to their associate record or to nobody."""
    return associate_id is None or associate_id == principal.associate_id


async def load_client(session: AsyncSession, principal: Principal, client_id: int) -> Client:
    client = await session.get(Client, client_id)
    if client is None or not await can_see_client(session, principal, client_id):
        # The same answer for "missing" and "not yours".
        raise NotFoundException("no such client")
    return client


async def associate_names(session: AsyncSession, ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = (await session.exec(select(Associate).where(col(Associate.id).in_(wanted)))).all()
    return {a.id: _name(a.first_name, a.last_name, f"Associate #{a.id}") for a in rows}  # type: ignore[misc]


def local_time(value: datetime | None, zone: ZoneInfo) -> str:
    """The store's clock with its label: "Dec 7, 9:14 AM EST"."""
    return local_label(value, zone)


@dataclass
class ThreadView:
    client: Client
    rows: list[Outreach]
    names: dict[int, str]
    zone: ZoneInfo
    version: str
    unread_for_others: list[str] = field(default_factory=list)
    marked: int = 0
    # Each number the thread used or the client holds → how many other clients have it on file.
    shared: dict[str, int] = field(default_factory=dict)
    several_numbers: bool = False


async def thread_view(session: AsyncSession, principal: Principal, client: Client) -> ThreadView:
    rows = await conversations.thread(session, principal, client.id, limit=THREAD_LIMIT)  # type: ignore[arg-type]
    if rows is None:
        raise NotFoundException("no such client")
    tz_name = None
    # The client's home store's clock; for a client without one, the store that last texted them.
    home = client.home_location_id or next((r.location_id for r in reversed(rows) if r.location_id), None)
    if home:
        location = await session.get(Location, home)
        tz_name = location.timezone if location is not None else None
    zone = timezones.zone(tz_name or await default_timezone(session))
    names = await associate_names(session, {r.associate_id for r in rows})
    others = sorted(
        {
            names.get(r.associate_id, "another associate")  # type: ignore[arg-type]
            for r in rows
            if r.direction == "inbound" and r.read_at is None and not mine(principal, r.associate_id)
        }
    )
    # What the browser has, so a poll with nothing new answers 204 and the DOM stays put.
    latest = max((r.updated_at for r in rows), default=None)
    unread = sum(1 for r in rows if r.direction == "inbound" and r.read_at is None)
    version = f"{rows[-1].id if rows else 0}.{latest.timestamp() if latest else 0}.{len(rows)}.{unread}"
    used = {r.from_address if r.direction == "inbound" else r.to_address for r in rows} - {None}
    shared = await sharing(session, used, except_client=client.id)  # type: ignore[arg-type]
    return ThreadView(
        client=client,
        rows=rows,
        names=names,
        zone=zone,
        version=version,
        unread_for_others=others,
        shared={k: v for k, v in shared.items() if v},
        several_numbers=len(used) > 1,
    )


async def read_if_mine(rt: Runtime, principal: Principal, client_id: int) -> int:
    """Mark the thread read when every unread reply in it is for the viewer (see the module doc)."""
    async with rt.db.transaction() as session:
        rows = await conversations.thread(session, principal, client_id, limit=THREAD_LIMIT)
        unread = [r for r in rows or [] if r.direction == "inbound" and r.read_at is None]
        if not unread or not all(mine(principal, r.associate_id) for r in unread):
            return 0
        return await conversations.mark_read(session, principal, client_id, up_to_id=max(r.id for r in unread))  # type: ignore[type-var]


async def sender_choices(session: AsyncSession, principal: Principal, client: Client) -> list[tuple[str, str]]:
    """Who an owner or manager may send as: the client's associate (default) or a colleague at the
    client's home store. Associates always send as themselves."""
    if principal.role == "associate":
        return []
    owner = await session.get(Associate, client.owner_associate_id) if client.owner_associate_id else None
    default_label = (
        f"{_name(owner.first_name, owner.last_name)} (the client's associate)" if owner else "No associate (the store)"
    )
    choices = [("", default_label)]
    if client.home_location_id and principal.can_see_location(client.home_location_id):
        stmt = (
            select(Associate)
            .where(col(Associate.location_id) == client.home_location_id, col(Associate.active).is_(True))
            .order_by(col(Associate.first_name), col(Associate.last_name))
        )
        for a in (await session.exec(stmt)).all():
            if owner is None or a.id != owner.id:
                choices.append((str(a.id), _name(a.first_name, a.last_name, f"Associate #{a.id}")))
    return choices


async def page_context(session: AsyncSession, principal: Principal, client: Client, view: ThreadView) -> dict[str, Any]:
    consent = await current_consent(session, client.id, "sms", "transactional")  # type: ignore[arg-type]
    numbers = (await numbers_for(session, [client.id])).get(client.id)  # type: ignore[list-item]
    phone = numbers.text_to if numbers is not None else None
    held = [p.value for p in numbers.phones] if numbers is not None else []
    shared_counts = await sharing(session, held, except_client=client.id)
    others = shared_counts.get(phone, 0) if phone else 0
    # Every number on file, so a person sees which one a text goes to and which are shared.
    number_rows = [
        {
            "value": p.value,
            "shown": display_phone(p.value),
            "label": p.label,
            "primary": p.is_primary,
            "last": numbers.last_texted_from == p.value,
            "textable": p.textable,
            "shared_with": shared_counts.get(p.value, 0),
        }
        for p in (numbers.phones if numbers is not None else ())
    ]
    choices = await sender_choices(session, principal, client)
    default_sender = ""
    if principal.associate_id is not None and any(v == str(principal.associate_id) for v, _ in choices):
        default_sender = str(principal.associate_id)
    return {
        "client": client,
        "name": client_name(client),
        "view": view,
        "consent": consent,
        "phone": phone,
        "phone_shown": display_phone(phone),
        "phone_shared_with": others,
        "numbers": number_rows,
        "replying_to_last": bool(numbers and phone and phone == numbers.last_texted_from),
        "has_landline_only": bool(numbers and numbers.phones and phone is None),
        "display_phone": display_phone,
        "choices": choices,
        "form": {"body": "", "media_url": "", "kind": "transactional", "associate_id": default_sender, "task_id": ""},
        "errors": {},
        "max_body": MAX_BODY,
        "max_upload_mb": MAX_UPLOAD // (1024 * 1024),
        "poll": POLL_THREAD,
        "labels": STATE_LABELS,
        "local_time": local_time,
        "task": None,
    }


# ---------------------------------------------------------------------------------------------- thread


MAX_BODY_PREFILL = 1600


@get("/clients/{client_id:int}/messages", name="admin:client-messages")
async def thread_page(
    request: Request[Any, Any, Any],
    client_id: FromPath[int],
    prefill: Annotated[str, QueryParameter(name="body")] = "",
    task_param: Annotated[str, QueryParameter(name="task")] = "",
) -> Response[Any]:
    """The thread and composer; ``?body=`` pre-fills the composer and ``?task=`` ties it to a Today
    task (the Today page's "Text" action): sending the text completes the task."""
    principal: Principal = request.state.principal
    rt = runtime_of(request)
    async with rt.db.session() as session:
        await load_client(session, principal, client_id)
    marked = await read_if_mine(rt, principal, client_id)
    async with rt.db.session() as session:
        client = await load_client(session, principal, client_id)
        view = await thread_view(session, principal, client)
        view.marked = marked
        context = await page_context(session, principal, client, view)
        if task_param.isdigit():
            context["task"] = await _task_for(session, principal, client_id, int(task_param))
            if context["task"] is not None:
                context["form"]["task_id"] = task_param
    context["form"]["body"] = prefill[:MAX_BODY_PREFILL]
    return render(request, "conversations/thread.html", context)


async def _task_for(session: AsyncSession, principal: Principal, client_id: int, task_id: int) -> Any:
    """The Today task the composer carries out, if it is the viewer's and this client's (else None)."""
    from core.automations.today import task_filter

    stmt = select(Task).where(col(Task.id) == task_id, col(Task.client_id) == client_id, task_filter(principal))
    return (await session.exec(stmt)).first()


@get("/clients/{client_id:int}/messages/thread")
async def thread_fragment(
    request: Request[Any, Any, Any], client_id: FromPath[int], v: FromQuery[str] = ""
) -> Response[Any]:
    """The polled thread. New replies shown to the person they are for count as read."""
    principal: Principal = request.state.principal
    rt = runtime_of(request)
    async with rt.db.session() as session:
        client = await load_client(session, principal, client_id)
        view = await thread_view(session, principal, client)
    if any(r.direction == "inbound" and r.read_at is None for r in view.rows):
        if await read_if_mine(rt, principal, client_id):
            async with rt.db.session() as session:
                view = await thread_view(session, principal, client)
    if v and v == view.version:
        return Response(content=b"", status_code=204)
    return render(
        request,
        "conversations/_thread.html",
        {"client": client, "view": view, "poll": POLL_THREAD, "labels": STATE_LABELS, "local_time": local_time,
         "display_phone": display_phone},
        fragment=True,
    )


@post("/clients/{client_id:int}/messages/read")
async def mark_thread_read(request: Request[Any, Any, Any], client_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    rt = runtime_of(request)
    async with rt.db.transaction() as session:
        await load_client(session, principal, client_id)
        count = await conversations.mark_read(session, principal, client_id)
    flash(request, f"Marked {count} {'reply' if count == 1 else 'replies'} read.", "info")
    return redirect(request, f"/admin/clients/{client_id}/messages")


@post("/clients/{client_id:int}/messages", name="admin:compose")
async def compose_message(request: Request[Any, Any, Any], client_id: FromPath[int]) -> Response[Any]:
    principal: Principal = request.state.principal
    rt = runtime_of(request)
    user = request.state.user
    form = await request.form()
    values = {
        "body": str(form.get("body") or ""),
        "media_url": str(form.get("media_url") or "").strip(),
        "kind": str(form.get("kind") or "transactional"),
        "associate_id": str(form.get("associate_id") or ""),
        "task_id": str(form.get("task_id") or ""),
    }
    upload = form.get("image")
    errors: dict[str, str] = {}
    async with rt.db.session() as session:
        await load_client(session, principal, client_id)
    if values["kind"] not in ("transactional", "marketing"):
        errors["kind"] = "Choose a one-to-one message or a promotion."
    associate_id: int | None = None
    if values["associate_id"]:
        if not values["associate_id"].isdigit():
            errors["associate_id"] = "Choose who the text is from."
        else:
            associate_id = int(values["associate_id"])
    media: list[str] = []
    if values["media_url"]:
        media.append(values["media_url"])
    has_upload = isinstance(upload, UploadFile) and bool(upload.filename)
    if not values["body"].strip() and not values["media_url"] and not has_upload:
        errors["body"] = "Type a message or add a picture."
    elif len(values["body"].strip()) > MAX_BODY:
        errors["body"] = f"Keep it under {MAX_BODY} characters (this one has {len(values['body'].strip())})."
    stored: str | None = None
    if has_upload and not errors:
        try:
            stored = await store_upload(rt, upload)  # type: ignore[arg-type]
            media.append(stored)
        except ValueError as exc:
            errors["image"] = str(exc)
    row: Outreach | None = None
    if not errors:
        try:
            async with rt.db.transaction() as session:
                row = await conversations.compose(
                    session,
                    principal,
                    client_id,
                    body=values["body"],
                    media_urls=media,
                    associate_id=associate_id if principal.role != "associate" else None,
                    kind=values["kind"],
                    actor=user.email,
                    actor_user_id=user.id,
                    task_id=int(values["task_id"]) if values["task_id"].isdigit() else None,
                )
        except conversations.ConversationError:
            raise NotFoundException("no such client") from None
        except OutboxError as exc:
            message = str(exc)
            errors["media_url" if "media" in message else "associate_id" if "associate" in message else "body"] = (
                message[:1].upper() + message[1:] + "."
            )
    if row is None and stored is not None:
        # Nothing was queued: do not keep a public picture no text refers to.
        (media_dir(rt) / stored.rsplit("/", 1)[1]).unlink(missing_ok=True)
    if row is not None:
        # Send now rather than at the next tick; without a worker reachable the tick still sends it.
        await kick(rt)
        if not is_htmx(request):
            flash(request, "Text queued; it goes out in a moment." + (" Follow-up done." if row.task_id else ""))
            return redirect(request, f"/admin/clients/{client_id}/messages")
    async with rt.db.session() as session:
        client = await load_client(session, principal, client_id)
        view = await thread_view(session, principal, client)
        context = await page_context(session, principal, client, view)
    if errors:
        context["form"] = {**context["form"], **values}
        context["errors"] = errors
    else:
        context["sent"] = True
        context["task_done"] = bool(row is not None and row.task_id)
        context["form"]["associate_id"] = values["associate_id"]
    if is_htmx(request):
        # The composer is swapped in place; the thread comes along out of band so the new bubble shows now.
        return render(request, "conversations/_compose_result.html", context, fragment=True)
    return render(request, "conversations/thread.html", context, status_code=400)


# ----------------------------------------------------------------------------------------------- inbox


@dataclass
class InboxRow:
    client_id: int
    name: str
    unread: int
    latest_at: datetime
    preview: str
    has_media: bool
    flagged_to: list[str]
    for_you: bool
    latest_label: str = ""


@dataclass
class Inbox:
    for_you: list[InboxRow]
    others: list[InboxRow]
    unmatched: list[tuple[Outreach, list[tuple[int, str]]]]
    show_unmatched: bool
    zones: dict[int, str | None] = field(default_factory=dict)
    default_zone: str = "UTC"

    def unmatched_label(self, message: Outreach) -> str:
        """An unknown number's text in the clock of the store it texted (else the default zone)."""
        tz = self.zones.get(message.location_id) if message.location_id else None  # type: ignore[arg-type]
        return local_label(message.created_at, tz or self.default_zone)

    @property
    def count_for_you(self) -> int:
        return sum(r.unread for r in self.for_you)

    @property
    def count_others(self) -> int:
        return sum(r.unread for r in self.others)

    @property
    def badge(self) -> int:
        return self.count_for_you + len(self.unmatched)


async def unread_rows(session: AsyncSession, principal: Principal, *, limit: int = 100) -> list[InboxRow]:
    """Clients with unread replies in the principal's scope, newest first, split by who they are for."""
    stmt = (
        select(Outreach.client_id, Outreach.associate_id, func.count(), func.max(Outreach.id))
        .join(Client, col(Client.id) == col(Outreach.client_id))
        .where(col(Outreach.direction) == "inbound", col(Outreach.read_at).is_(None), client_filter(principal))
        .group_by(col(Outreach.client_id), col(Outreach.associate_id))
    )
    groups: dict[int, dict[str, Any]] = {}
    for cid, aid, n, last_id in (await session.exec(stmt)).all():  # type: ignore[call-overload]
        g = groups.setdefault(int(cid), {"n": 0, "last": 0, "aids": set()})
        g["n"] += int(n)
        g["last"] = max(g["last"], int(last_id))
        g["aids"].add(aid)
    if not groups:
        return []
    ordered = sorted(groups.items(), key=lambda kv: kv[1]["last"], reverse=True)[:limit]
    last_ids = [g["last"] for _, g in ordered]
    latest = {r.id: r for r in (await session.exec(select(Outreach).where(col(Outreach.id).in_(last_ids)))).all()}
    clients = {
        c.id: c for c in (await session.exec(select(Client).where(col(Client.id).in_([c for c, _ in ordered])))).all()
    }
    names = await associate_names(session, {a for _, g in ordered for a in g["aids"]})
    zones = await location_zones(session)
    fallback = await default_timezone(session)
    out = []
    for cid, g in ordered:
        msg = latest[g["last"]]
        home = clients[cid].home_location_id or msg.location_id
        out.append(
            InboxRow(
                client_id=cid,
                name=client_name(clients[cid]),
                unread=g["n"],
                latest_at=msg.created_at,
                preview=(msg.body or "").strip()[:140],
                has_media=bool(msg.media_urls),
                flagged_to=sorted(names.get(a, "") for a in g["aids"] if a is not None and a != principal.associate_id),
                for_you=any(mine(principal, a) for a in g["aids"]),
                latest_label=local_label(msg.created_at, (zones.get(home) if home else None) or fallback),
            )
        )
    return out


async def location_zones(session: AsyncSession) -> dict[int, str | None]:
    """Each store's timezone name (the label of times shown for its clients)."""
    return {int(i): tz for i, tz in (await session.exec(select(Location.id, Location.timezone))).all()}  # type: ignore[call-overload]


async def unmatched_rows(session: AsyncSession, principal: Principal) -> list[tuple[Outreach, list[tuple[int, str]]]]:
    """The unmatched inbox, each message with the in-scope clients that hold its number by now."""
    messages = await conversations.unmatched_inbox(session, principal, limit=50)
    numbers = sorted({m.from_address for m in messages if m.from_address})
    holders: dict[str, list[tuple[int, str]]] = {}
    if numbers:
        stmt = (
            select(ClientContact.value, Client)
            .join(Client, col(Client.id) == col(ClientContact.client_id))
            .where(
                col(ClientContact.kind) == "phone",
                col(ClientContact.value).in_(numbers),
                col(Client.merged_into_id).is_(None),
                client_filter(principal),
            )
        )
        for value, client in (await session.exec(stmt)).all():
            holders.setdefault(value, []).append((client.id, client_name(client)))
    return [(m, holders.get(m.from_address or "", [])) for m in messages]


async def load_inbox(rt: Runtime, principal: Principal) -> Inbox:
    async with rt.db.session() as session:
        rows = await unread_rows(session, principal)
        show_unmatched = principal.role in ("owner", "manager")
        unmatched = await unmatched_rows(session, principal) if show_unmatched else []
        zones = await location_zones(session)
        fallback = await default_timezone(session)
    return Inbox(
        for_you=[r for r in rows if r.for_you],
        others=[r for r in rows if not r.for_you],
        unmatched=unmatched,
        show_unmatched=show_unmatched,
        zones=zones,
        default_zone=fallback,
    )


@get("/inbox", name="admin:inbox")
async def inbox_page(request: Request[Any, Any, Any]) -> Response[Any]:
    inbox = await load_inbox(runtime_of(request), request.state.principal)
    return render(
        request,
        "conversations/inbox.html",
        {"inbox": inbox, "poll": POLL_INBOX, "display_phone": display_phone, "unmatched_label": inbox.unmatched_label},
    )


@get("/inbox/list")
async def inbox_fragment(request: Request[Any, Any, Any]) -> Response[Any]:
    inbox = await load_inbox(runtime_of(request), request.state.principal)
    return render(request, "conversations/_inbox.html", {"inbox": inbox, "poll": POLL_INBOX}, fragment=True)


@get("/inbox/count")
async def inbox_badge(request: Request[Any, Any, Any]) -> Response[Any]:
    """A self-refreshing unread badge for the nav's Inbox link (empty when nothing waits)."""
    inbox = await load_inbox(runtime_of(request), request.state.principal)
    return render(request, "conversations/_badge.html", {"count": inbox.badge, "poll": POLL_BADGE}, fragment=True)


@get("/inbox/unmatched/{outreach_id:int}/clients", guards=[owner_or_manager])
async def attach_candidates(
    request: Request[Any, Any, Any], outreach_id: FromPath[int], q: FromQuery[str] = ""
) -> Response[Any]:
    principal: Principal = request.state.principal
    async with runtime_of(request).db.session() as session:
        message = await _unmatched(session, outreach_id)
        found = await search(session, principal, q=q, limit=8, include_archived=True) if q.strip() else None
    return render(
        request,
        "conversations/_candidates.html",
        {"message": message, "q": q, "clients": found.clients if found else None, "client_name": client_name},
        fragment=True,
    )


async def _unmatched(session: AsyncSession, outreach_id: int) -> Outreach:
    message = await session.get(Outreach, outreach_id)
    if message is None or message.direction != "inbound" or message.client_id is not None:
        raise NotFoundException("that message is not in the unmatched inbox (any more)")
    return message


@post("/inbox/unmatched/{outreach_id:int}/attach", guards=[owner_or_manager])
async def attach_message(request: Request[Any, Any, Any], outreach_id: FromPath[int]) -> Response[Any]:
    """File an unknown number's messages under a client: the number becomes one of the client's phones
    (through the one client-edit path, so it is audited and reaches the POS), then every unmatched
    message from it joins the client's thread."""
    principal: Principal = request.state.principal
    user = request.state.user
    rt = runtime_of(request)
    form = await request.form()
    raw = str(form.get("client_id") or "")
    if not raw.isdigit():
        raise NotFoundException("no such client")
    client_id = int(raw)
    async with rt.db.transaction() as session:
        message = await _unmatched(session, outreach_id)
        client = await load_client(session, principal, client_id)
        if client.merged_into_id is not None:
            raise NotFoundException("no such client")
        number = message.from_address or ""
        phones = [
            v
            for v in (
                await session.exec(
                    select(ClientContact.value)
                    .where(col(ClientContact.client_id) == client_id, col(ClientContact.kind) == "phone")
                    .order_by(col(ClientContact.is_primary).desc(), col(ClientContact.id))
                )
            ).all()
        ]
        if number not in phones:
            try:
                await edit_client(
                    session,
                    client_id,
                    {"phones": [*phones, number]},
                    actor=user.email,
                    actor_user_id=user.id,
                    origin=f"user:{user.id}",
                    ip=client_ip(request),
                )
            except ClientEditError as exc:
                raise ClientException(f"cannot add {number} to this client: {exc}") from None
        filed = await conversations.attach_unmatched(session, client_id)
        await record(
            session,
            "outreach.attach",
            actor=user.email,
            actor_user_id=user.id,
            target_type="client",
            target_id=client_id,
            details={"number": number, "messages": filed, "outreach_id": outreach_id},
            ip=client_ip(request),
        )
    flash(
        request, f"Filed {filed} {'message' if filed == 1 else 'messages'} from {number} under {client_name(client)}."
    )
    return redirect(request, f"/admin/clients/{client_id}/messages")


route_handlers = [
    thread_page,
    thread_fragment,
    mark_thread_read,
    compose_message,
    inbox_page,
    inbox_fragment,
    inbox_badge,
    attach_candidates,
    attach_message,
]
