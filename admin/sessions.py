"""Server-side panel sessions stored in the ``web_session`` table, so every web process shares them.

The cookie holds only a random id. Signing in rotates that id (no session fixation), and expired rows
are swept now and then by whichever process writes a session.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import Store
from litestar.types import Empty
from litestar.utils.dataclass import extract_dataclass_items
from sqlalchemy import delete, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select

from core.db import Database
from core.models import WebSession, utcnow

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.types import Message, ScopeSession

ROTATE_FLAG = "clasp_rotate_session"
NEW_ID_KEY = "clasp_new_session_id"
LOADED_KEY = "clasp_session_loaded"
# One write in this many also deletes expired sessions; cheap, and no extra job to schedule.
SWEEP_ONE_IN = 50


def _delta(value: int | timedelta | None) -> timedelta | None:
    if value is None:
        return None
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


class DatabaseStore(Store):
    """A Litestar :class:`Store` over the ``web_session`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        data = value.encode() if isinstance(value, str) else value
        delta = _delta(expires_in)
        expires_at = utcnow() + delta if delta else None
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        stmt = insert(WebSession).values(key=key, data=data, expires_at=expires_at)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"data": data, "expires_at": expires_at})
        async with self.db.transaction() as session:
            await session.exec(stmt)
            if random.randrange(SWEEP_ONE_IN) == 0:
                await session.exec(delete(WebSession).where(WebSession.expires_at < utcnow()))  # type: ignore[operator]

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        async with self.db.transaction() as session:
            row = (await session.exec(select(WebSession).where(WebSession.key == key))).first()
            if row is None:
                return None
            now = utcnow()
            if row.expires_at is not None and row.expires_at <= now:
                await session.exec(delete(WebSession).where(WebSession.key == key))
                return None
            delta = _delta(renew_for)
            # Renew only when a good part of the lifetime is used up: a write per request is wasteful.
            if delta and row.expires_at is not None and row.expires_at - now < delta * 0.9:
                await session.exec(update(WebSession).where(WebSession.key == key).values(expires_at=now + delta))
            return bytes(row.data)

    async def delete(self, key: str) -> None:
        async with self.db.transaction() as session:
            await session.exec(delete(WebSession).where(WebSession.key == key))

    async def delete_all(self) -> None:
        async with self.db.transaction() as session:
            await session.exec(delete(WebSession))

    async def exists(self, key: str) -> bool:
        async with self.db.session() as session:
            stmt = select(WebSession.key).where(
                WebSession.key == key,
                or_(WebSession.expires_at.is_(None), WebSession.expires_at > utcnow()),  # type: ignore[union-attr]
            )
            return (await session.exec(stmt)).first() is not None

    async def expires_in(self, key: str) -> int | None:
        async with self.db.session() as session:
            stmt = select(WebSession.expires_at).where(WebSession.key == key)
            expires_at = (await session.exec(stmt)).first()
        if expires_at is None:
            return None
        return max(0, int((expires_at - utcnow()).total_seconds()))


class RotatingSessionBackend(ServerSideSessionBackend):
    """The stock server-side backend, with three changes.

    A request can ask for a fresh session id (sign-in). Unchanged sessions are not written back on
    every response (htmx polls every two seconds). Empty sessions are never stored, so anonymous
    visitors and bots do not fill the table.
    """

    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        session_id = connection.cookies.get(self.config.key)
        if session_id and session_id != "null":
            store = self.config.get_store_from_app(connection.scope["app"])
            data = await self.get(session_id, store=store)
            if data is not None:
                _state(connection)[LOADED_KEY] = data
                return self.deserialize_data(data)
        return {}

    async def store_in_message(self, scope_session: ScopeSession, message: Message, connection: ASGIConnection) -> None:
        store = self.config.get_store_from_app(connection.scope["app"])
        headers = MutableScopeHeaders.from_message(message)
        state = _state(connection)
        session_id = self.get_session_id(connection)
        cookie_params = dict(extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys()))
        had_cookie = connection.cookies.get(self.config.key) not in (None, "null")
        if scope_session is Empty or not scope_session:
            if had_cookie:
                await self.delete(session_id, store=store)
                cookie = Cookie(value="null", key=self.config.key, expires=0, **cookie_params)
                headers.add("Set-Cookie", cookie.to_header(header=""))
            return
        data = self.serialize_data(scope_session, connection.scope)
        rotate = bool(state.get(ROTATE_FLAG))
        if rotate:
            await self.delete(session_id, store=store)
            session_id = state.get(NEW_ID_KEY) or self.generate_session_id()
            state[NEW_ID_KEY] = session_id
        if rotate or data != state.get(LOADED_KEY):
            await self.set(session_id=session_id, data=data, store=store)
        # The cookie is re-sent every time so its max-age follows the server-side expiry.
        headers.add("Set-Cookie", Cookie(value=session_id, key=self.config.key, **cookie_params).to_header(header=""))


def _state(connection: ASGIConnection) -> dict[str, Any]:
    return connection.scope.setdefault("state", {})  # type: ignore[typeddict-item,return-value]


@dataclass
class DatabaseSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend  # type: ignore[assignment]


def rotate_session(connection: ASGIConnection) -> None:
    """Give this session a new id when the response is sent (call it on sign-in)."""
    _state(connection)[ROTATE_FLAG] = True


def new_token() -> str:
    return secrets.token_urlsafe(32)
