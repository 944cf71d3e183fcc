"""API bearer tokens: create, verify, list, revoke.

A token is ``clasp_`` followed by 256 random bits (``secrets.token_urlsafe``). Only its SHA-256 is
stored: the token has far more entropy than any password, so a fast hash is as safe as a slow one and
lets every request be verified with one indexed lookup. The first characters are kept in clear
(``prefix``) so a person can tell their tokens apart in a list. The plaintext is shown once, at
creation, and can never be recovered.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.models import ApiToken, User, utcnow

TOKEN_PREFIX = "clasp_"
# Enough of the token to recognise it ("clasp_" + 6 random characters), far too little to guess it.
DISPLAY_CHARS = len(TOKEN_PREFIX) + 6
# Every request would otherwise write a row; a minute's precision is all a "last used" column needs.
LAST_USED_PRECISION = timedelta(minutes=1)


class TokenError(Exception):
    """A token operation that cannot be done (unknown user or token, bad name)."""


@dataclass(frozen=True)
class TokenInfo:
    """A token as shown in lists: never the secret, only its recognisable prefix."""

    id: int
    name: str
    prefix: str
    user_id: int
    user_email: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_token(
    session: AsyncSession,
    *,
    user_id: int,
    name: str,
    actor: str = "system",
    actor_user_id: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for a user. Returns the row and the plaintext token (shown once, never stored)."""
    name = name.strip()
    if not name:
        raise TokenError("a token needs a name (what or who uses it)")
    if len(name) > 200:
        raise TokenError("token names are at most 200 characters")
    user = await session.get(User, user_id)
    if user is None:
        raise TokenError(f"no user with id {user_id}")
    if not user.active:
        raise TokenError(f"user {user.email} is deactivated")
    plaintext = generate_token()
    row = ApiToken(user_id=user_id, name=name, token_hash=hash_token(plaintext), prefix=plaintext[:DISPLAY_CHARS])
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        "api_token.create",
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="api_token",
        target_id=row.id,
        details={"name": name, "user_id": user_id, "user_email": user.email, "prefix": row.prefix},
    )
    return row, plaintext


async def user_by_email(session: AsyncSession, email: str) -> User:
    user = (await session.exec(select(User).where(col(User.email) == email.strip().lower()))).first()
    if user is None:
        raise TokenError(f"no user with email {email}")
    return user


async def verify_token(session: AsyncSession, token: str) -> tuple[ApiToken, User] | None:
    """The live token and its active user for a presented bearer token, or None.

    Records ``last_used_at`` (to the minute) in the caller's transaction.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    stmt = (
        select(ApiToken, User)
        .join(User, col(User.id) == col(ApiToken.user_id))
        .where(col(ApiToken.token_hash) == digest)
    )
    found = (await session.exec(stmt)).first()
    if found is None:
        return None
    row, user = found
    # The lookup already matched on the digest; comparing again in constant time costs nothing.
    if not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None or not user.active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
        row.last_used_at = now
        session.add(row)
        await session.flush()
    return row, user


async def revoke_token(
    session: AsyncSession,
    token_id: int,
    *,
    actor: str = "system",
    actor_user_id: int | None = None,
) -> ApiToken:
    """Revoke a token; it stops working at once. Revoking a revoked token changes nothing."""
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise TokenError(f"no API token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        await session.flush()
        await audit.record(
            session,
            "api_token.revoke",
            actor=actor,
            actor_user_id=actor_user_id,
            target_type="api_token",
            target_id=row.id,
            details={"name": row.name, "user_id": row.user_id, "prefix": row.prefix},
        )
    return row


async def list_tokens(
    session: AsyncSession,
    *,
    user_id: int | None = None,
    include_revoked: bool = True,
) -> list[TokenInfo]:
    """Tokens, newest first, optionally only one user's and only live ones."""
    stmt = select(ApiToken, User.email).join(User, col(User.id) == col(ApiToken.user_id))
    if user_id is not None:
        stmt = stmt.where(col(ApiToken.user_id) == user_id)
    if not include_revoked:
        stmt = stmt.where(col(ApiToken.revoked_at).is_(None))
    stmt = stmt.order_by(col(ApiToken.id).desc())
    return [
        TokenInfo(
            id=row.id,  # type: ignore[arg-type]
            name=row.name,
            prefix=row.prefix,
            user_id=row.user_id,
            user_email=email,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )
        for row, email in (await session.exec(stmt)).all()
    ]
