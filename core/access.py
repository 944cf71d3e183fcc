"""Who may see what. Every query in the panel and the API goes through these scopes.

- owner: everything.
- manager: the locations they are assigned to; a client belongs to a location when it is their home
  location or they bought there.
- associate: their location(s); within a location in "own" outreach mode only the clients they
  own, in "store" mode the whole store book.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, false, or_, select, true
from sqlalchemy.sql import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Client, Location, Sale, User, UserLocation


@dataclass(frozen=True)
class Principal:
    """The acting person (or API token's user), with the scope their role grants."""

    user_id: int | None
    role: str
    location_ids: frozenset[int]
    associate_id: int | None = None
    email: str = ""

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    def can_see_location(self, location_id: int | None) -> bool:
        return self.is_owner or (location_id is not None and location_id in self.location_ids)


SYSTEM = Principal(user_id=None, role="owner", location_ids=frozenset(), email="system")


async def principal_for(session: AsyncSession, user: User) -> Principal:
    stmt = select(UserLocation.location_id).where(UserLocation.user_id == user.id)  # type: ignore[arg-type]
    location_ids = (await session.execute(stmt)).scalars().all()
    return Principal(
        user_id=user.id,
        role=user.role,
        location_ids=frozenset(int(i) for i in location_ids),
        associate_id=user.associate_id,
        email=user.email,
    )


def _client_at(locations: Any, *, few: bool = False) -> ColumnElement[bool]:
    """Clients whose home location is in ``locations`` or who bought there.

    "Bought there" is an uncorrelated ``IN`` over the sales of those locations, not an ``EXISTS`` per
    client: correlated under an ``OR``, neither SQLite (without statistics it probes the sale table by
    ``location_id`` for every client: thousands of rows each) nor PostgreSQL (a subplan per row) can
    turn it into a join, whereas the list is read once, from ``ix_sale_location_client`` alone, and
    probed per client (walk-in sales, without a client, are left out of it). The sale table is aliased
    and never correlated, so the scope works inside queries that select from ``sale`` too.

    ``few``: the caller has already narrowed the clients to a handful of ids (a search's matches, one
    client's page). Reading every sale of a store then costs more than the whole answer (a hash of a
    third of a million sales per query at 1M clients on PostgreSQL), so each client is probed instead:
    a correlated ``EXISTS`` on ``ix_sale_client_occurred``.
    """
    sale = Sale.__table__.alias("scope_sale")  # type: ignore[attr-defined]
    if few:
        bought_here = exists().where(sale.c.client_id == Client.id, sale.c.location_id.in_(locations))
        return or_(Client.home_location_id.in_(locations), bought_here)  # type: ignore[union-attr]
    bought = (
        select(sale.c.client_id)
        .where(sale.c.location_id.in_(locations), sale.c.client_id.is_not(None))
        .correlate(None)
    )
    return or_(Client.home_location_id.in_(locations), Client.id.in_(bought))  # type: ignore[union-attr]


def client_filter(principal: Principal, *, few: bool = False) -> ColumnElement[bool]:
    """A WHERE clause limiting ``client`` rows to what the principal may see.

    ``few=True`` where the query already names a few client ids (same rows, probed per client; see
    ``_client_at``)."""
    if principal.is_owner:
        return true()
    if not principal.location_ids:
        return false()
    locs = sorted(principal.location_ids)
    if principal.role == "manager":
        return _client_at(locs, few=few)
    # Associate: the store book of their "store"-mode locations, plus their own clients anywhere in scope.
    location = Location.__table__.alias("scope_location")  # type: ignore[attr-defined]
    store_mode = (
        select(location.c.id)
        .where(location.c.id.in_(locs), location.c.outreach_mode == "store")
        .correlate(None)
    )
    own = (
        (Client.owner_associate_id == principal.associate_id) & _client_at(locs, few=few)
        if principal.associate_id is not None
        else false()
    )
    return or_(own, _client_at(store_mode, few=few))


def location_filter(principal: Principal, column: Any) -> ColumnElement[bool]:
    """A WHERE clause limiting rows with a location column to the principal's locations."""
    if principal.is_owner:
        return true()
    return column.in_(list(principal.location_ids)) if principal.location_ids else false()


async def can_see_client(session: AsyncSession, principal: Principal, client_id: int) -> bool:
    stmt = select(Client.id).where(Client.id == client_id, client_filter(principal, few=True))  # type: ignore[arg-type]
    return (await session.exec(stmt)).first() is not None  # type: ignore[call-overload]
