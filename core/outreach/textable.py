"""Which of a client's phone numbers can take a text, which can only be called, and who else holds them.

Telling a mobile from a landline (the rule the Today page's actions and the composer follow):

1. A number flagged ``unusable`` (the provider said it cannot receive texts) is never texted; it can
   still be called.
2. A number the client has texted us from is a mobile, whatever its label says.
3. The number's own type, from phonenumbers' metadata: ``MOBILE`` is a mobile; fixed-line, pager,
   toll-free, premium, shared-cost, UAN and voicemail numbers are not. Most countries' numbering
   plans say this; North America's does not (``FIXED_LINE_OR_MOBILE``), so:
4. the POS label (``client_contact.label``: Lightspeed R's ``useType`` Home, Work, Mobile, Pager,
   Fax): Mobile/Cell is a mobile; Home, Work, Fax, Pager are landlines;
5. no label and no type (a number typed into Clasp, an import): possibly a mobile. We offer the
   text; if it is a landline the provider refuses it and the number is flagged unusable (rule 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Client, ClientContact, Outreach

MOBILE_LABELS = frozenset({"mobile", "cell", "cellular", "cell phone", "mobile phone", "sms", "text"})
LANDLINE_LABELS = frozenset({"home", "work", "office", "business", "fax", "pager", "landline"})
_NOT_MOBILE_TYPES = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.PAGER,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.SHARED_COST,
        PhoneNumberType.UAN,
        PhoneNumberType.VOICEMAIL,
    }
)
CHUNK = 1000


def line_kind(value: str, label: str | None) -> str:
    """``mobile``, ``landline`` or ``unknown`` for an E.164 number and its POS label (rules 3–5)."""
    try:
        kind = phonenumbers.number_type(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        kind = PhoneNumberType.UNKNOWN
    if kind == PhoneNumberType.MOBILE:
        return "mobile"
    if kind in _NOT_MOBILE_TYPES:
        return "landline"
    words = (label or "").strip().lower()
    if words in MOBILE_LABELS:
        return "mobile"
    if words in LANDLINE_LABELS:
        return "landline"
    return "unknown"


def display(value: str | None) -> str:
    """A number as people write it where it is local ("(312) 555-0177"), else international."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    formats = phonenumbers.PhoneNumberFormat
    fmt = formats.NATIONAL if number.country_code == 1 else formats.INTERNATIONAL
    return phonenumbers.format_number(number, fmt)


@dataclass(frozen=True)
class Phone:
    value: str
    label: str | None
    is_primary: bool
    unusable: bool
    line: str  # mobile | landline | unknown (after rule 2)
    texted_from: bool

    @property
    def textable(self) -> bool:
        return not self.unusable and self.line != "landline"


@dataclass(frozen=True)
class Numbers:
    """A client's phones, best first (primary, then newest), and the number they last texted from."""

    phones: tuple[Phone, ...]
    last_texted_from: str | None

    @property
    def text_to(self) -> str | None:
        """Where a text goes: the number they last texted from while it can take texts, else the
        first mobile, else the first number that may be one."""
        usable = [p for p in self.phones if p.textable]
        if self.last_texted_from and any(p.value == self.last_texted_from for p in usable):
            return self.last_texted_from
        for p in usable:
            if p.line == "mobile":
                return p.value
        return usable[0].value if usable else None

    @property
    def call(self) -> str | None:
        return self.phones[0].value if self.phones else None


async def last_inbound_numbers(session: AsyncSession, client_ids: Sequence[int]) -> dict[int, str]:
    """The number each client most recently texted us from."""
    out: dict[int, str] = {}
    ids = sorted(set(client_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        latest = (
            select(Outreach.client_id, func.max(Outreach.id).label("last_id"))
            .where(
                col(Outreach.client_id).in_(chunk),
                col(Outreach.direction) == "inbound",
                col(Outreach.from_address).is_not(None),
            )
            .group_by(col(Outreach.client_id))
            .subquery()
        )
        stmt = select(Outreach.client_id, Outreach.from_address).join(latest, latest.c.last_id == col(Outreach.id))
        for cid, number in (await session.exec(stmt)).all():  # type: ignore[call-overload]
            out[int(cid)] = number
    return out


async def unusable_numbers(session: AsyncSession, numbers: Iterable[str]) -> set[str]:
    """The numbers among ``numbers`` flagged unusable on any client: the provider refused them, so they
    cannot receive texts for anyone who holds them."""
    values = sorted(set(numbers))
    unusable: set[str] = set()
    for start in range(0, len(values), CHUNK):
        found = await session.exec(
            select(ClientContact.value).where(
                col(ClientContact.kind) == "phone",
                col(ClientContact.value).in_(values[start : start + CHUNK]),
                col(ClientContact.unusable).is_(True),
            )
        )
        unusable.update(found.all())
    return unusable


async def numbers_for(session: AsyncSession, client_ids: Iterable[int]) -> dict[int, Numbers]:
    """Each client's :class:`Numbers` in a few set-based queries (clients without phones map to none)."""
    ids = sorted(set(client_ids))
    rows: dict[int, list[ClientContact]] = {}
    for start in range(0, len(ids), CHUNK):
        stmt = (
            select(ClientContact)
            .where(col(ClientContact.client_id).in_(ids[start : start + CHUNK]), col(ClientContact.kind) == "phone")
            .order_by(
                col(ClientContact.client_id),
                col(ClientContact.is_primary).desc(),
                col(ClientContact.created_at).desc(),
                col(ClientContact.id),
            )
        )
        for c in (await session.exec(stmt)).all():
            rows.setdefault(c.client_id, []).append(c)
    unusable = await unusable_numbers(session, {c.value for cs in rows.values() for c in cs})
    inbound = await last_inbound_numbers(session, ids)
    texted = await _texted_from(session, ids)
    out: dict[int, Numbers] = {}
    for cid in ids:
        phones = tuple(
            Phone(
                value=c.value,
                label=c.label,
                is_primary=c.is_primary,
                unusable=c.unusable or c.value in unusable,
                line="mobile" if (cid, c.value) in texted else line_kind(c.value, c.label),
                texted_from=(cid, c.value) in texted,
            )
            for c in rows.get(cid, [])
        )
        out[cid] = Numbers(phones=phones, last_texted_from=inbound.get(cid))
    return out


async def _texted_from(session: AsyncSession, client_ids: Sequence[int]) -> set[tuple[int, str]]:
    out: set[tuple[int, str]] = set()
    for start in range(0, len(client_ids), CHUNK):
        stmt = (
            select(Outreach.client_id, Outreach.from_address)
            .where(
                col(Outreach.client_id).in_(list(client_ids[start : start + CHUNK])),
                col(Outreach.direction) == "inbound",
                col(Outreach.from_address).is_not(None),
            )
            .distinct()
        )
        out.update((int(c), str(n)) for c, n in (await session.exec(stmt)).all())  # type: ignore[call-overload]
    return out


async def sharing(session: AsyncSession, numbers: Iterable[str], *, except_client: int | None = None) -> dict[str, int]:
    """How many (other, unmerged) clients hold each number."""
    values = sorted(set(numbers))
    if not values:
        return {}
    stmt = (
        select(ClientContact.value, func.count(func.distinct(ClientContact.client_id)))
        .join(Client, col(Client.id) == col(ClientContact.client_id))
        .where(
            col(ClientContact.kind) == "phone",
            col(ClientContact.value).in_(values),
            col(Client.merged_into_id).is_(None),
        )
        .group_by(col(ClientContact.value))
    )
    if except_client is not None:
        stmt = stmt.where(col(ClientContact.client_id) != except_client)
    return {str(v): int(n) for v, n in (await session.exec(stmt)).all()}  # type: ignore[call-overload]
