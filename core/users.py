"""Panel users: the email rule, creation, edits, the link to a POS associate, password hashing (argon2).

The CLI (``clasp user``) and the panel (``/admin/users``) both call these functions, so a user is
checked the same way whichever door they come in by.

**Emails** are sign-in names. They follow email-validator's rules (syntax, Unicode normalisation,
lower case) without any DNS or deliverability check. Special-use domains (RFC 6761/2606): ``.test``
and ``.local`` are accepted, because Clasp never mails a sign-in name and its own demo and tests sign
in as ``demo@clasp.local``; ``example.com`` and ``.example`` are accepted by email-validator already;
``.invalid``, ``.localhost``, ``.onion``, ``.arpa`` and domains without a dot are refused.

**Associate link**: an associate user sees the clients of one associate record (``User.associate_id``).
:func:`find_associate` finds that record from what a person types: an external id from any POS
(``CONNECTOR:ID`` when two connectors use the same id), ``#ID`` (Clasp's own id), or the name in either
order, without regard to case or accents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Associate, Connector, ExternalRef, Location, User, UserLocation
from core.models.org import ROLES

_hasher = PasswordHasher()

UNLINKED_WARNING = "not linked to a POS associate — they will see an empty book"


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


# ------------------------------------------------------------------------------------------ emails


def validate_user_email(raw: str) -> str:
    """The normalised (lower-case) sign-in address, or :class:`UserError` saying what is wrong."""
    value = (raw or "").strip()
    if not value:
        raise UserError("an email address is required")
    try:
        # test_environment: accept the reserved .test domain (and never look anything up).
        result = validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        error = exc
    else:
        if "." not in result.ascii_domain:  # test_environment also lets a bare "test" through
            raise UserError(f"invalid email {raw!r}: the part after the @-sign should have a period")
        return result.normalized.lower()
    local, at, domain = value.rpartition("@")
    if at and domain.lower().endswith(".local") and len(domain) > len(".local"):
        # email-validator reserves .local (multicast DNS) outright. Check every other rule on the same
        # name under .test, which has identical label rules and is accepted above, then put .local back.
        probe = f"{local}@{domain[: -len('local')]}test"
        try:
            checked = validate_email(probe, check_deliverability=False, test_environment=True).normalized
        except EmailNotValidError as exc:
            error = exc
        else:
            return (checked[: -len("test")] + "local").lower()
    raise UserError(f"invalid email {raw!r}: {error}")


# The name callers already use (sign-in, `clasp user password`).
normalise_email = validate_user_email


# -------------------------------------------------------------------------------------- associates


@dataclass(frozen=True)
class AssociateOption:
    """An associate as a person picks one: name, store, and the ids the POS knows them by."""

    id: int
    name: str
    location_id: int | None
    location_name: str
    active: bool
    refs: tuple[tuple[str, str], ...] = ()  # (connector name, external id)
    first_name: str = ""
    last_name: str = ""

    @property
    def external_ids(self) -> list[str]:
        return [f"{connector}:{ext}" for connector, ext in self.refs]

    @property
    def label(self) -> str:
        """ "Ann Lee (Downtown, downtown-pos:12)": enough to tell namesakes apart."""
        ids = ", ".join(self.external_ids) or f"#{self.id}"
        inactive = ", inactive" if not self.active else ""
        return f"{self.name} ({self.location_name or 'no location'}, {ids}{inactive})"


async def associate_options(session: AsyncSession, ids: Iterable[int] | None = None) -> list[AssociateOption]:
    """Every associate (or those in ``ids``) with location and external ids, by location then name."""
    stmt = select(Associate, Location.name).outerjoin(Location, col(Location.id) == col(Associate.location_id))
    ref_stmt = (
        select(ExternalRef.unified_id, Connector.name, ExternalRef.external_id)
        .join(Connector, col(Connector.id) == col(ExternalRef.connector_id))
        .where(col(ExternalRef.object_type) == "associate")
    )
    if ids is not None:
        wanted = sorted(set(ids))
        if not wanted:
            return []
        stmt = stmt.where(col(Associate.id).in_(wanted))
        ref_stmt = ref_stmt.where(col(ExternalRef.unified_id).in_(wanted))
    rows = (await session.exec(stmt)).all()
    refs: dict[int, list[tuple[str, str]]] = {}
    for unified_id, connector_name, external_id in (await session.exec(ref_stmt)).all():
        refs.setdefault(unified_id, []).append((connector_name, external_id))
    options = [
        AssociateOption(
            id=a.id or 0,
            name=f"{a.first_name} {a.last_name}".strip() or a.email or f"associate #{a.id}",
            location_id=a.location_id,
            location_name=loc_name or "",
            active=a.active,
            refs=tuple(sorted(refs.get(a.id or 0, []))),
            first_name=a.first_name,
            last_name=a.last_name,
        )
        for a, loc_name in rows
    ]
    return sorted(options, key=lambda o: (o.location_name.lower(), not o.active, o.name.lower(), o.id))


def _name_keys(option: AssociateOption) -> set[str]:
    from core.search import name_key

    return {name_key(option.first_name, option.last_name), name_key(option.last_name, option.first_name)}


def _candidates(matches: Sequence[AssociateOption], limit: int = 10) -> str:
    shown = "; ".join(m.label for m in matches[:limit])
    return shown + (f"; and {len(matches) - limit} more" if len(matches) > limit else "")


async def find_associate(session: AsyncSession, value: str) -> AssociateOption:
    """The one associate ``value`` names; :class:`UserError` listing the candidates otherwise."""
    from core.search import name_key

    value = (value or "").strip()
    if not value:
        raise UserError("--associate needs an external id or a name")
    options = await associate_options(session)
    matches: list[AssociateOption] = []
    if value.startswith("#") and value[1:].isdigit():
        matches = [o for o in options if o.id == int(value[1:])]
    connector, sep, ext = value.partition(":")
    if not matches and sep:
        wanted = (connector.strip().lower(), ext.strip())
        matches = [o for o in options if wanted in {(c.lower(), e) for c, e in o.refs}]
    if not matches:
        matches = [o for o in options if any(e == value for _, e in o.refs)]
        if len(matches) > 1:
            raise UserError(
                f"{len(matches)} associates have the external id {value!r}: {_candidates(matches)}; "
                "say which with CONNECTOR:ID"
            )
    if not matches:
        key = name_key(value, None)
        matches = [o for o in options if key in _name_keys(o)]
        if len(matches) > 1:
            raise UserError(
                f"{len(matches)} associates are named {value!r}: {_candidates(matches)}; use an external id instead"
            )
    if len(matches) == 1:
        return matches[0]
    if not options:
        raise UserError(f"no associate matches {value!r}: there are no associates yet (sync a POS first)")
    words = set(name_key(value, None).split())
    close = [o for o in options if words & set(name_key(o.first_name, o.last_name).split())]
    hint = f"; did you mean: {_candidates(close)}" if close else f" among the {len(options)} associates"
    raise UserError(f"no associate matches {value!r} (an external id, CONNECTOR:ID, #ID or a name){hint}")


# ------------------------------------------------------------------------------------- validation


async def _check_locations(session: AsyncSession, location_ids: Sequence[int]) -> None:
    for loc_id in location_ids:
        if await session.get(Location, loc_id) is None:
            raise UserError(f"no location with id {loc_id}")


def _check_role(role: str, location_ids: Sequence[int]) -> None:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role != "owner" and not location_ids:
        raise UserError(f"a {role} needs at least one location (--location)")


async def user_warnings(
    session: AsyncSession, *, role: str, location_ids: Sequence[int], associate_id: int | None, user_id: int | None
) -> list[str]:
    """What is allowed but probably not meant: an associate without a book, a link outside their stores."""
    out: list[str] = []
    if role == "associate" and associate_id is None:
        out.append(UNLINKED_WARNING)
    if associate_id is None:
        return out
    linked = (await associate_options(session, [associate_id]))[0]
    if role != "owner" and linked.location_id is not None and linked.location_id not in location_ids:
        out.append(
            f"{linked.name} works at {linked.location_name}, which is not one of this user's locations: "
            "their clients there stay hidden"
        )
    others = (
        await session.exec(
            select(User.email).where(col(User.associate_id) == associate_id, col(User.id) != (user_id or 0))
        )
    ).all()
    if others:
        out.append(f"{linked.name} is also linked to {', '.join(others)}")
    return out


async def location_ids_of(session: AsyncSession, user_id: int) -> list[int]:
    rows = (await session.exec(select(UserLocation.location_id).where(col(UserLocation.user_id) == user_id))).all()
    return sorted(rows)


async def _other_active_owners(session: AsyncSession, user_id: int) -> int:
    stmt = select(User.id).where(col(User.role) == "owner", col(User.active).is_(True), col(User.id) != user_id)
    return len((await session.exec(stmt)).all())


# ---------------------------------------------------------------------------------- create / edit


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: str,
    name: str = "",
    location_ids: list[int] | None = None,
    associate_id: int | None = None,
    audit_actor: dict[str, Any] | None = None,
) -> User:
    """Add a user. Linked to an associate with no location given, they work at the associate's store.

    With ``audit_actor`` (``audit.record`` keyword arguments) the creation is audited as ``user.create``.
    """
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise UserError("passwords must be at least 8 characters")
    email = validate_user_email(email)
    if (await session.exec(select(User).where(User.email == email))).first() is not None:
        raise UserError(f"a user with email {email} already exists")
    location_ids = list(dict.fromkeys(location_ids or []))
    if associate_id is not None:
        associate = await session.get(Associate, associate_id)
        if associate is None:
            raise UserError(f"no associate with id {associate_id}")
        if not location_ids and role != "owner" and associate.location_id is not None:
            location_ids = [associate.location_id]
    _check_role(role, location_ids)
    await _check_locations(session, location_ids)
    user = User(email=email, name=name, password_hash=hash_password(password), role=role, associate_id=associate_id)
    session.add(user)
    await session.flush()
    for loc_id in location_ids:
        session.add(UserLocation(user_id=user.id, location_id=loc_id))
    await session.flush()
    if audit_actor is not None:
        from core import audit

        details = {"email": user.email, "role": role, "location_ids": location_ids, "associate_id": associate_id}
        await audit.record(
            session, "user.create", target_type="user", target_id=user.id, details=details, **audit_actor
        )
    return user


@dataclass
class UserEdit:
    """What an edit changed (field → [before, after]) and what looks unintended afterwards."""

    user: User
    changes: dict[str, list[Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


async def edit_user(
    session: AsyncSession,
    user: User,
    *,
    audit_actor: dict[str, Any],
    name: str | None = None,
    role: str | None = None,
    location_ids: Sequence[int] | None = None,
    add_locations: Sequence[int] = (),
    remove_locations: Sequence[int] = (),
    associate_id: int | None = None,
    unlink_associate: bool = False,
    active: bool | None = None,
) -> UserEdit:
    """Change what is given (``None`` keeps it), check the result like :func:`create_user`, audit it.

    ``location_ids`` replaces the locations; ``add_locations``/``remove_locations`` adjust them. A user
    newly linked to an associate and left with no location works at the associate's store. The last
    active owner cannot be demoted or deactivated (nobody could manage users any more).
    """
    from core import audit

    assert user.id is not None
    if associate_id is not None and unlink_associate:
        raise UserError("choose either an associate or no associate, not both")
    before_locations = await location_ids_of(session, user.id)
    locations = list(dict.fromkeys(location_ids)) if location_ids is not None else list(before_locations)
    locations = [loc for loc in dict.fromkeys([*locations, *add_locations]) if loc not in set(remove_locations)]
    new_role = role if role is not None else user.role
    new_associate = None if unlink_associate else (associate_id if associate_id is not None else user.associate_id)
    if associate_id is not None and associate_id != user.associate_id:
        associate = await session.get(Associate, associate_id)
        if associate is None:
            raise UserError(f"no associate with id {associate_id}")
        if not locations and new_role != "owner" and associate.location_id is not None:
            locations = [associate.location_id]
    if new_role == "owner":
        # Owners see everything: locations would only mislead whoever reads the list.
        locations = []
    _check_role(new_role, locations)
    await _check_locations(session, locations)
    new_active = user.active if active is None else active
    if user.role == "owner" and user.active and (new_role != "owner" or not new_active):
        if await _other_active_owners(session, user.id) == 0:
            raise UserError(f"{user.email} is the only active owner: add another owner first")

    edit = UserEdit(user=user)
    new_name = user.name if name is None else name.strip()
    for key, old, new in (
        ("name", user.name, new_name),
        ("role", user.role, new_role),
        ("associate_id", user.associate_id, new_associate),
        ("active", user.active, new_active),
    ):
        if old != new:
            edit.changes[key] = [old, new]
    if sorted(locations) != before_locations:
        edit.changes["location_ids"] = [before_locations, sorted(locations)]
    edit.warnings = await user_warnings(
        session, role=new_role, location_ids=locations, associate_id=new_associate, user_id=user.id
    )
    if not edit.changes:
        return edit
    user.name, user.role, user.associate_id, user.active = new_name, new_role, new_associate, new_active
    session.add(user)
    if "location_ids" in edit.changes:
        for link in (await session.exec(select(UserLocation).where(col(UserLocation.user_id) == user.id))).all():
            if link.location_id not in locations:
                await session.delete(link)
        for loc_id in locations:
            if loc_id not in before_locations:
                session.add(UserLocation(user_id=user.id, location_id=loc_id))
    await session.flush()
    details = {"email": user.email, "changes": edit.changes}
    await audit.record(session, "user.edit", target_type="user", target_id=user.id, details=details, **audit_actor)
    if "active" in edit.changes:
        # The same action the panel's activate button records, so one filter finds every lock-out.
        await audit.record(
            session,
            "user.activate" if new_active else "user.deactivate",
            target_type="user",
            target_id=user.id,
            details={"email": user.email},
            **audit_actor,
        )
    return edit
