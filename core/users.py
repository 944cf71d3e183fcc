"""Panel users: creation and password hashing (argon2)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Location, User, UserLocation
from core.models.org import ROLES

_hasher = PasswordHasher()


class UserError(Exception):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def normalise_email(email: str) -> str:
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise UserError(f"invalid email {email!r}: {exc}") from None


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: str,
    name: str = "",
    location_ids: list[int] | None = None,
    associate_id: int | None = None,
) -> User:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise UserError("passwords must be at least 8 characters")
    email = normalise_email(email)
    if (await session.exec(select(User).where(User.email == email))).first() is not None:
        raise UserError(f"a user with email {email} already exists")
    location_ids = location_ids or []
    if role != "owner" and not location_ids:
        raise UserError(f"a {role} needs at least one location (--location)")
    for loc_id in location_ids:
        if await session.get(Location, loc_id) is None:
            raise UserError(f"no location with id {loc_id}")
    user = User(email=email, name=name, password_hash=hash_password(password), role=role, associate_id=associate_id)
    session.add(user)
    await session.flush()
    for loc_id in location_ids:
        session.add(UserLocation(user_id=user.id, location_id=loc_id))
    await session.flush()
    return user
