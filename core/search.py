"""Client search: the one implementation behind the panel's Clients list and ``GET /api/v1/clients``.

What a query finds (every result is scoped by ``core.access.client_filter``):

- **a phone number** (digits and phone punctuation only, 4+ digits): typed in any format, it is read
  with phonenumbers in the country of every store and the default region, and matches the stored
  E.164 numbers exactly ("(312) 555 0177", "312-555-0177", "+1 312 555 0177"); up to 7 digits, or
  when it is no full number, it also matches the *end* of stored numbers ("555-0177", "0177");
- **an email address** (has an "@"): the address itself, or addresses containing what was typed;
- **names**: every word must begin a word of the client's first or last name, in any order, without
  regard to case or accents ("renee garcia" and "Garcia Renée" find "Renée García"); a single word of
  3+ characters also finds email addresses containing it ("mgarcia").

Ranking: exact phone or email matches first, then name matches, then partial contacts (number
tails, parts of addresses); within a rank by last name, first name, id. Pages are keyset cursors.

How it stays fast on PostgreSQL (migrations 0008 and 0011): names are matched on the stored column
``client.name_key`` = ``clasp_name_key(first_name, last_name)`` (lower-cased, unaccented, punctuation
to spaces, with a leading space so " garc" means "a word starting with garc") through a pg_trgm GIN
index; partial emails through a trigram index on the contact value; number tails as prefixes of
``reverse(value)`` in a btree index; exact contacts through the (kind, value) index. Each kind of
match is its own branch of a UNION ALL so every branch uses its index, and the page is then ranked
among those ids. A match of more than ``MAX_CANDIDATES`` clients (a common first name) is not read
whole: each rank's condition is walked in name order on ``ix_client_name_order`` (which carries
``name_key``) until a page is full, so a common name costs no more than a rare one. On SQLite the
same SQL functions are Python functions registered on every connection (``core.db``), defined below;
the query text itself is folded by the database's own function so the query and the stored names
are always folded alike.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    and_,
    any_,
    case,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal, client_filter, location_filter
from core.models import Client, ClientContact, Location, Sale

__all__ = [
    "LastPurchase",
    "SearchHit",
    "SearchPage",
    "fold",
    "name_key",
    "search",
]

Order = Literal["id", "name"]

RANK_EXACT = 0  # the whole phone number or email address
RANK_NAME = 1
RANK_PARTIAL = 2  # the end of a number, part of an address
RANKS = {RANK_EXACT: "exact", RANK_NAME: "name", RANK_PARTIAL: "partial"}

PHONE_QUERY = re.compile(r"[\d\s().+\-/]+")
MIN_PHONE_DIGITS = 4
# Up to this many digits a number is also looked up as the end of stored numbers, even when it
# parses as a full number somewhere (a 7-digit local number is valid in some countries).
MAX_TAIL_DIGITS = 7
MIN_PARTIAL_EMAIL = 3
MAX_WORDS = 8
# Up to this many matching clients are ranked by id list (see _query); more, by one join.
MAX_CANDIDATES = 2000

# ----------------------------------------------------------------------- folding (the SQLite twin)

# Letters NFKD does not decompose; PostgreSQL's unaccent rules fold them the same way.
_SPECIAL = str.maketrans(
    {"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ł": "l",
     "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH", "ı": "i"}
)
# Hyphens, apostrophes (straight and curly), periods and commas separate name words, as spaces do.
_NAME_SEPARATORS = re.compile(r"[-\s'’.,]+")


def fold(value: str | None) -> str | None:
    """Lower-case ``value`` without accents ("Renée García" → "renee garcia"): SQL ``clasp_fold``."""
    if value is None:
        return None
    decomposed = unicodedata.normalize("NFKD", value.translate(_SPECIAL))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def name_key(first: str | None, last: str | None) -> str:
    """The searchable form of a name: folded, words separated by one space, with a leading space
    (" renee garcia lopez"), so every word start is " " + its first letters: SQL ``clasp_name_key``."""
    folded = fold(f"{first or ''} {last or ''}") or ""
    return " " + _NAME_SEPARATORS.sub(" ", folded).strip()


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class LastPurchase:
    occurred_at: datetime
    location_id: int
    location_name: str
    timezone: str = "UTC"

    @property
    def local_date(self) -> date:
        """The day of the sale in its store's timezone (what the receipt says)."""
        from core.timezones import zone

        return self.occurred_at.astimezone(zone(self.timezone)).date()


@dataclass
class SearchHit:
    client: Client
    # RANK_EXACT, RANK_NAME or RANK_PARTIAL; None when listing without a query.
    rank: int | None
    contacts: list[ClientContact]  # primary first
    home_location: str | None
    last_purchase: LastPurchase | None

    @property
    def email(self) -> str | None:
        return next((c.value for c in self.contacts if c.kind == "email"), None)

    @property
    def phone(self) -> str | None:
        return next((c.value for c in self.contacts if c.kind == "phone"), None)

    @property
    def match(self) -> str | None:
        return RANKS.get(self.rank) if self.rank is not None else None


@dataclass
class SearchPage:
    hits: list[SearchHit]
    next_cursor: str | None
    # What the query was read as, for the page to explain itself: "phone", "email", "name".
    kinds: list[str] = field(default_factory=list)

    @property
    def clients(self) -> list[Client]:
        return [h.client for h in self.hits]


# ------------------------------------------------------------------------------------------ cursors


def _encode(parts: list[Any]) -> str:
    # A browse by id keeps the API's original cursor (the id alone); the other orders carry a JSON list.
    text_ = str(parts[0]) if len(parts) == 1 else json.dumps(parts, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text_.encode()).decode().rstrip("=")


def _decode(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = [int(raw)] if len(shape) == 1 else json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid cursor") from None
    if not isinstance(parts, list) or len(parts) != len(shape):
        raise ValueError("invalid cursor")
    for part, kind in zip(parts, shape, strict=True):
        if type(part) is not kind:
            raise ValueError("invalid cursor")
    return parts


# ------------------------------------------------------------------------------------------ matching


def _pattern(value: str) -> Any:
    """A LIKE pattern written into the statement rather than bound: PostgreSQL uses a btree or
    trigram index for a pattern only when it sees its text when planning, and a prepared statement
    run a few times switches to a generic plan that cannot (a scan of every contact)."""
    return literal(value, literal_execute=True)


def _word_start(word: str) -> Any:
    key = func.clasp_name_key(_pattern(_like_escape(word)), literal_column("''"))
    return literal_column("'%'").concat(key).concat(literal_column("'%'"))


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _whole_email(q: str) -> str | None:
    """The normalised address when ``q`` is a whole email address."""
    from core.normalize import NormalisationError, normalise_email

    try:
        return normalise_email(q)
    except NormalisationError:
        return None


async def _regions(session: AsyncSession) -> list[str]:
    """Where a number typed without a country code may be from: every store's country, and the
    identity settings' default region (what ``core.clients.default_region`` reads)."""
    from core.clients import default_region

    countries = {c.upper() for c in (await session.exec(select(Location.country).distinct())).scalars() if c}  # type: ignore[call-overload]
    return sorted(countries | {await default_region(session)})


async def _phone_candidates(session: AsyncSession, query: str) -> list[str]:
    from core.normalize import NormalisationError, normalise_phone

    found: set[str] = set()
    for region in await _regions(session):
        try:
            found.add(normalise_phone(query, default_region=region))
        except (NormalisationError, ValueError):
            continue
    return sorted(found)


@dataclass(frozen=True)
class _Branch:
    """One kind of match: the ids it finds through its own index (``ids``: client_id, rank), and
    the same condition as a predicate on a client row (``where``), for walking the book in name
    order when the match is too large to rank by id list."""

    rank: int
    ids: Select[Any]
    where: ColumnElement[bool]


def _contact_branch(rank: int, *where: Any) -> _Branch:
    ids = select(col(ClientContact.client_id).label("client_id"), literal_column(str(rank)).label("rank")).where(
        *where
    )
    held = exists().where(col(ClientContact.client_id) == col(Client.id), *where)
    return _Branch(rank, ids, held)


def _stored_name_key(sqlite: bool) -> Any:
    """The client's searchable name: on PostgreSQL the stored column migration 0011 generates (its
    trigram index rechecks a plain string), on SQLite the function itself."""
    if sqlite:
        return func.clasp_name_key(col(Client.first_name), col(Client.last_name))
    return literal_column('"client".name_key')


async def _branches(session: AsyncSession, q: str) -> tuple[list[_Branch], list[str]]:
    """One branch per kind of match the query can mean, best rank first, and those kinds."""
    sqlite = session.bind.dialect.name == "sqlite" if session.bind is not None else False
    escape = "\\" if sqlite else None  # PostgreSQL's LIKE escapes with a backslash already
    branches: list[_Branch] = []
    kinds: list[str] = []
    kind, value = col(ClientContact.kind), col(ClientContact.value)
    digits = re.sub(r"\D", "", q)
    if PHONE_QUERY.fullmatch(q) and len(digits) >= MIN_PHONE_DIGITS:
        kinds.append("phone")
        numbers = await _phone_candidates(session, q)
        if numbers:
            branches.append(_contact_branch(RANK_EXACT, kind == "phone", value.in_(numbers)))
        if not numbers or len(digits) <= MAX_TAIL_DIGITS:
            tail = digits[::-1] + "%"
            ends_with = func.reverse(value).like(_pattern(tail), escape=escape)
            branches.append(_contact_branch(RANK_PARTIAL, kind == "phone", ends_with))
        return branches, kinds
    if "@" in q:
        kinds.append("email")
        whole = _whole_email(q)
        lowered = q.lower()
        branches.append(_contact_branch(RANK_EXACT, kind == "email", value == (whole or lowered)))
        # A whole address is looked up as it is: containing it would cost a scan of every address
        # sharing its common trigrams ("com", "gma") for matches like "xann@x.com.au".
        if len(lowered) >= MIN_PARTIAL_EMAIL and whole is None:
            pattern = f"%{_like_escape(lowered)}%"
            partial = value.like(_pattern(pattern), escape=escape)
            branches.append(_contact_branch(RANK_PARTIAL, kind == "email", partial))
        return branches, kinds
    words = [w for w in _NAME_SEPARATORS.split(q) if w][:MAX_WORDS]
    if not words:
        return branches, kinds
    kinds.append("name")
    stored = _stored_name_key(sqlite)
    # Each word is folded by the database's own function, as the stored keys were: '%' || " chloe"
    # || '%'. Its argument is a constant, so PostgreSQL folds it while planning and sees the pattern.
    named = and_(*(stored.like(_word_start(w), escape=escape) for w in words))
    branches.append(
        _Branch(
            RANK_NAME,
            select(col(Client.id).label("client_id"), literal_column(str(RANK_NAME)).label("rank")).where(named),
            named,
        )
    )
    if len(words) == 1 and " " not in q and len(q) >= MIN_PARTIAL_EMAIL:
        pattern = f"%{_like_escape(q.lower())}%"
        branches.append(_contact_branch(RANK_PARTIAL, kind == "email", value.like(_pattern(pattern), escape=escape)))
    return branches, kinds


# ------------------------------------------------------------------------------------------ the search


Query = tuple[Select[Any], tuple[Any, ...], tuple[type, ...], list[str]]
NAMES = (col(Client.last_name), col(Client.first_name), col(Client.id))
# A ranked page's cursor: (rank, last name, first name, id), whichever way the page was found.
RANKED = (int, str, str, int)


def _candidates(branches: list[_Branch]) -> Select[Any]:
    """Step 1: (client_id, rank) of every branch, not grouped, so a huge match stops after
    MAX_CANDIDATES + 1 rows instead of being read whole first."""
    found = union_all(*(b.ids for b in branches)).subquery("found")
    return select(found.c.client_id, found.c.rank).limit(MAX_CANDIDATES + 1)


@dataclass
class _Walk:
    """A match too large to rank by id list: each rank's condition is walked in name order (the
    ``ix_client_name_order`` index) until a page is full, so the cost is a page's worth of the
    book however many clients match ("maria" in a million)."""

    ranks: list[tuple[int, ColumnElement[bool]]]  # best first
    scope: list[ColumnElement[bool]]
    kinds: list[str]

    def statement(self, index: int, after: list[Any] | None, n: int) -> Select[Any] | None:
        """The next ``n`` clients of rank ``ranks[index]`` after the cursor ``after``; None when the
        cursor is already past that rank."""
        rank, where = self.ranks[index]
        if after is not None and rank < after[0]:
            return None
        # A client matching a better rank was (or will be) listed there, once.
        better = [not_(w) for _, w in self.ranks[:index]]
        stmt = _with_home(select(Client, literal_column(str(rank)).label("rank"))).where(*self.scope, where, *better)
        if after is not None and rank == after[0]:
            stmt = stmt.where(tuple_(*NAMES) > tuple_(*after[1:]))
        return stmt.order_by(*NAMES).limit(n)


async def _query(
    session: AsyncSession,
    principal: Principal,
    q: str,
    *,
    include_archived: bool,
    updated_since: datetime | None,
    order: Order,
) -> Query | _Walk | None:
    """The scoped, ordered SELECT (Client, rank) for ``q``, its sort keys and their cursor shape, and
    the kinds of match (or, for a very large match, the :class:`_Walk`); None when the query can
    match nothing (only punctuation, say)."""
    scope: list[ColumnElement[bool]] = [client_filter(principal), col(Client.merged_into_id).is_(None)]
    if not include_archived:
        scope.append(col(Client.archived).is_(False))
    if updated_since is not None:
        scope.append(col(Client.updated_at) >= updated_since)
    if not q:
        stmt = _with_home(select(Client, literal_column("NULL").label("rank"))).where(*scope)
        if order == "id":
            return stmt, (col(Client.id),), (int,), []
        return stmt, NAMES, (str, str, int), []
    branches, kinds = await _branches(session, q)
    if not branches:
        return None
    # Two steps: the matching ids first (each branch on its index), then the page among them. One
    # join would do, but the planner cannot estimate a trigram or reversed-prefix match and, guessing
    # thousands of rows, hash-joins a scan of every client; a list of ids it cannot misjudge.
    raw = (await session.exec(_candidates(branches))).all()  # type: ignore[call-overload]
    # A few ids: the scope probes each client's sales rather than reading the store's (core.access).
    scope[0] = client_filter(principal, few=True)
    if len(raw) > MAX_CANDIDATES:
        by_condition: dict[int, list[ColumnElement[bool]]] = {}
        for branch in branches:
            by_condition.setdefault(branch.rank, []).append(branch.where)
        ranks = [(r, or_(*ws) if len(ws) > 1 else ws[0]) for r, ws in sorted(by_condition.items())]
        return _Walk(ranks, scope, kinds)
    best: dict[int, int] = {}
    for client_id, rank in raw:
        best[int(client_id)] = min(int(rank), best.get(int(client_id), int(rank)))
    if not best:
        return None
    by_rank: dict[int, list[int]] = {}
    for client_id, rank in best.items():
        by_rank.setdefault(rank, []).append(client_id)
    sqlite = session.bind is not None and session.bind.dialect.name == "sqlite"
    ranks = sorted(by_rank)
    rank_of: Any = literal_column(str(ranks[-1]))
    if len(ranks) > 1:
        rank_of = case(*((_id_in(Client.id, by_rank[r], sqlite), literal_column(str(r))) for r in ranks[:-1]),
                       else_=literal_column(str(ranks[-1])))
    rank_of = rank_of.label("rank")
    ids = [i for r in ranks for i in by_rank[r]]
    stmt = _with_home(select(Client, rank_of)).where(_id_in(Client.id, ids, sqlite), *scope)
    return stmt, (rank_of, *NAMES), RANKED, kinds


def _with_home(stmt: Select[Any]) -> Select[Any]:
    home = aliased(Location, name="home")
    return stmt.add_columns(home.name.label("home_name")).outerjoin(  # type: ignore[attr-defined]
        home, home.id == col(Client.home_location_id)
    )


def _id_in(column: Any, ids: list[int], sqlite: bool) -> ColumnElement[bool]:
    # One array parameter on PostgreSQL: the statement text (and its prepared plan) stays the same
    # whatever the number of ids.
    if sqlite:
        return col(column).in_(ids)
    return col(column) == any_(literal(ids, ARRAY(BigInteger)))


async def search(
    session: AsyncSession,
    principal: Principal,
    *,
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    include_archived: bool = False,
    updated_since: datetime | None = None,
    order: Order = "id",
) -> SearchPage:
    """One page of the clients the principal may see that match ``q`` (all of them without a query),
    leaving out clients merged into another, each with its contacts, home store and last purchase.

    With a query, results are ranked (see the module docstring). Without one they are listed by id
    (``order="id"``, the API's stable order) or by last name, first name, id (``order="name"``, the
    panel). ``next_cursor`` continues the same query and order. Raises ValueError for a cursor that
    is not one of ours (or belongs to another order).
    """
    q = (q or "").strip()
    query = await _query(
        session, principal, q, include_archived=include_archived, updated_since=updated_since, order=order
    )
    if query is None:
        return SearchPage([], None, [])
    if isinstance(query, _Walk):
        after = _decode(cursor, RANKED) if cursor else None
        rows: list[Any] = []
        for index in range(len(query.ranks)):
            stmt = query.statement(index, after, limit + 1 - len(rows))
            if stmt is not None:
                rows += (await session.exec(stmt)).all()  # type: ignore[call-overload]
            if len(rows) > limit:
                break
        kinds = query.kinds
    else:
        stmt, keys, shape, kinds = query
        if cursor:
            after = _decode(cursor, shape)
            stmt = stmt.where(tuple_(*keys) > tuple_(*after)) if len(keys) > 1 else stmt.where(keys[0] > after[0])
        stmt = stmt.order_by(*keys).limit(limit + 1)
        rows = list((await session.exec(stmt)).all())  # type: ignore[call-overload]
    more = len(rows) > limit
    rows = rows[:limit]
    hits = await _decorate(session, principal, [(c, r, home) for c, r, home in rows])
    next_cursor = None
    if more and hits:
        last = hits[-1]
        c = last.client
        parts: list[Any] = [c.last_name, c.first_name, c.id]
        if q:
            parts.insert(0, last.rank)
        elif order == "id":
            parts = [c.id]
        next_cursor = _encode(parts)
    return SearchPage(hits, next_cursor, kinds)


async def _decorate(
    session: AsyncSession, principal: Principal, rows: list[tuple[Client, int | None, str | None]]
) -> list[SearchHit]:
    """Contacts and last purchase for a page of clients: two small queries by id."""
    ids: list[int] = [c.id for c, _, _ in rows]  # type: ignore[misc]
    if not ids:
        return []
    contacts: dict[int, list[ClientContact]] = {i: [] for i in ids}
    found = await session.exec(
        select(ClientContact)
        .where(col(ClientContact.client_id).in_(ids))
        .order_by(col(ClientContact.is_primary).desc(), col(ClientContact.id))
    )
    for contact in found.scalars():  # type: ignore[attr-defined]
        contacts[contact.client_id].append(contact)
    last = await _last_purchases(session, principal, ids)
    return [
        SearchHit(
            client=client,
            rank=int(rank) if rank is not None else None,
            contacts=contacts[client.id],  # type: ignore[index]
            home_location=home,
            last_purchase=last.get(client.id),  # type: ignore[arg-type]
        )
        for client, rank, home in rows
    ]


async def _last_purchases(
    session: AsyncSession, principal: Principal, client_ids: list[int]
) -> dict[int, LastPurchase]:
    """Each client's latest completed sale (not a refund) at a store the principal may see."""
    latest = (
        select(
            col(Sale.client_id).label("client_id"),
            col(Sale.occurred_at).label("occurred_at"),
            col(Sale.location_id).label("location_id"),
            func.row_number()
            .over(partition_by=col(Sale.client_id), order_by=(col(Sale.occurred_at).desc(), col(Sale.id).desc()))
            .label("n"),
        )
        .where(
            col(Sale.client_id).in_(client_ids),
            col(Sale.status) == "completed",
            col(Sale.total_minor) >= 0,
            location_filter(principal, col(Sale.location_id)),
        )
        .subquery("latest")
    )
    rows = await session.exec(
        select(latest.c.client_id, latest.c.occurred_at, latest.c.location_id, Location.name, Location.timezone)  # type: ignore[call-overload]
        .join(Location, col(Location.id) == latest.c.location_id)
        .where(latest.c.n == 1)
    )
    return {int(cid): LastPurchase(when, int(loc), name, tz) for cid, when, loc, name, tz in rows.all()}


async def explain(session: AsyncSession, principal: Principal, q: str, *, limit: int = 50) -> str:
    """EXPLAIN ANALYZE of both steps of the search for ``q`` on PostgreSQL (for bench/search.py)."""

    async def plan(stmt: Any) -> str:
        compiled = stmt.compile(session.bind, compile_kwargs={"literal_binds": True})
        result = await session.exec(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))  # type: ignore[call-overload]
        return "\n".join(r[0] for r in result.all())

    branches, _ = await _branches(session, q.strip())
    if not branches:
        return "(the query matches nothing)"
    out = ["-- step 1, the matching ids:", await plan(_candidates(branches))]
    query = await _query(session, principal, q.strip(), include_archived=False, updated_since=None, order="name")
    if isinstance(query, _Walk):
        stmt = query.statement(0, None, limit + 1)
        out += ["-- step 2, more than MAX_CANDIDATES: the best rank walked in name order:", await plan(stmt)]
    elif query is not None:
        stmt, keys, _, _ = query
        out += ["-- step 2, the page:", await plan(stmt.order_by(*keys).limit(limit + 1))]
    return "\n".join(out)
