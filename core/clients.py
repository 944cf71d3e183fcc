"""Client reads and edits shared by the API and the admin panel.

``edit_client`` is THE code path for a person editing a client (panel, API, admin tools): it
validates and normalises, applies the change, records per-field provenance, appends one change-feed
row (which the writeback consumer turns into a POS update) and one audit row, all in the caller's
transaction. The read helpers apply the principal's scope to every query.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, feed
from core.access import Principal, client_filter, location_filter
from core.models import (
    Client,
    ClientContact,
    ClientMerge,
    Connector,
    Consent,
    ExternalRef,
    Location,
    Sale,
    SaleLine,
    utcnow,
)
from core.models.clients import CONSENT_CHANNELS

# Fields a POS holds too: writeback (core.writeback) pushes edits of these, and only these, to the POS.
EDITABLE_FIELDS = ("first_name", "last_name", "emails", "phones", "address", "birthday", "anniversary", "note")
# Fields kept in Clasp alone: edited through edit_client like the others (change feed + audit), never
# written to a POS (writeback reads EDITABLE_FIELDS only). ``home_location``: a location id set by a
# person (source "manual"), or null to hand the home store back to the derivation rule.
CLASP_FIELDS = ("preferences", "tags", "home_location")
PREFERENCE_MAX = 200
TAG_MAX = 60
TAGS_MAX = 50
# The unified address shape. Connectors map their POS's address fields onto these keys.
ADDRESS_FIELDS = ("line1", "line2", "city", "region", "postal_code", "country")
NAME_MAX = 200
NOTE_MAX = 10_000
ADDRESS_PART_MAX = 200
DEFAULT_REGION = "US"
_COUNTRY = re.compile(r"[A-Za-z]{2}")


class ClientNotFound(LookupError):
    def __init__(self, client_id: int) -> None:
        super().__init__(f"no client with id {client_id}")
        self.client_id = client_id


class ClientMerged(Exception):
    """The client was absorbed by a merge; edits belong on the survivor."""

    def __init__(self, client_id: int, merged_into_id: int) -> None:
        super().__init__(f"client {client_id} was merged into client {merged_into_id}; use that client instead")
        self.client_id = client_id
        self.merged_into_id = merged_into_id


class ClientEditError(ValueError):
    """Invalid input; ``errors`` maps each offending field to a message. Nothing was written."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# ------------------------------------------------------------------------------------------ editing


def _clean_text(value: Any, name: str, *, max_len: int, nullable: bool) -> str | None:
    if value is None:
        if nullable:
            return None
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if nullable:
        cleaned = value.strip()
    else:
        from core.normalize import normalise_name

        cleaned = normalise_name(value)
    if len(cleaned) > max_len:
        raise ValueError(f"{name} is longer than {max_len} characters")
    if nullable and not cleaned:
        return None
    return cleaned


def _clean_address(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("address must be an object with " + ", ".join(ADDRESS_FIELDS))
    unknown = sorted(set(value) - set(ADDRESS_FIELDS))
    if unknown:
        raise ValueError(f"unknown address field(s) {', '.join(unknown)}; use {', '.join(ADDRESS_FIELDS)}")
    cleaned: dict[str, str] = {}
    for key in ADDRESS_FIELDS:
        part = value.get(key)
        if part is None:
            continue
        if not isinstance(part, str):
            raise ValueError(f"address.{key} must be a string")
        part = " ".join(part.split())
        if len(part) > ADDRESS_PART_MAX:
            raise ValueError(f"address.{key} is longer than {ADDRESS_PART_MAX} characters")
        if not part:
            continue
        if key == "country":
            if not _COUNTRY.fullmatch(part):
                raise ValueError(f"address.country {part!r} is not an ISO 3166 two-letter country code")
            part = part.upper()
        cleaned[key] = part
    return cleaned


def _clean_date(value: Any, name: str) -> date | None:
    from core.normalize import NormalisationError, parse_date

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        parsed = parse_date(value)
    except (NormalisationError, ValueError, TypeError) as exc:
        raise ValueError(f"{name} {value!r} is not a date ({exc})") from None
    if parsed is None:
        raise ValueError(f"{name} {value!r} is not a date; use YYYY-MM-DD")
    if name == "birthday" and parsed > utcnow().date():
        raise ValueError(f"birthday {parsed.isoformat()} is in the future")
    return parsed


def _raw_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list (the first one is the primary)")
    items: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"{name} must be a list of strings")
        if item.strip():
            items.append(item.strip())
    return items


def _clean_emails(value: Any) -> list[tuple[str, str]]:
    from core.normalize import NormalisationError, normalise_email

    out: list[tuple[str, str]] = []
    for raw in _raw_list(value, "emails"):
        try:
            normalised = normalise_email(raw)
        except (NormalisationError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        if normalised not in [v for v, _ in out]:
            out.append((normalised, raw))
    return out


def _clean_phones(value: Any, region: str) -> list[tuple[str, str]]:
    from core.normalize import NormalisationError, normalise_phone

    out: list[tuple[str, str]] = []
    for raw in _raw_list(value, "phones"):
        try:
            normalised = normalise_phone(raw, default_region=region)
        except (NormalisationError, ValueError):
            raise ValueError(
                f"{raw!r} is not a valid phone number (a number without a country code is read as {region})"
            ) from None
        if normalised not in [v for v, _ in out]:
            out.append((normalised, raw))
    return out


async def default_region(session: AsyncSession) -> str:
    """The phone country for clients without a home store (the identity settings' default)."""
    from core.identity.settings import load_identity_settings

    return (await load_identity_settings(session)).default_region or DEFAULT_REGION


async def home_region(session: AsyncSession, client: Client) -> str:
    """The region a client's local phone numbers are read in: their home store's country."""
    if client.home_location_id is not None:
        country = (
            await session.exec(select(Location.country).where(col(Location.id) == client.home_location_id))
        ).first()
        if country:
            return country.upper()
    return await default_region(session)


async def _contacts(session: AsyncSession, client_id: int, kind: str | None = None) -> list[ClientContact]:
    stmt = select(ClientContact).where(col(ClientContact.client_id) == client_id)
    if kind is not None:
        stmt = stmt.where(col(ClientContact.kind) == kind)
    stmt = stmt.order_by(col(ClientContact.is_primary).desc(), col(ClientContact.id))
    return list((await session.exec(stmt)).all())


async def _replace_contacts(
    session: AsyncSession, client_id: int, kind: str, current: list[ClientContact], wanted: list[tuple[str, str]]
) -> None:
    """Make the client's contacts of one kind exactly ``wanted`` (first = primary), keeping the rows
    (labels, unusable flags, source) of values that stay."""
    by_value = {c.value: c for c in current}
    wanted_values = [v for v, _ in wanted]
    gone = [c.id for c in current if c.value not in wanted_values]
    if gone:
        await session.exec(delete(ClientContact).where(col(ClientContact.id).in_(gone)))  # type: ignore[call-overload]
    for position, (value, raw) in enumerate(wanted):
        row = by_value.get(value)
        if row is None:
            row = ClientContact(client_id=client_id, kind=kind, value=value, raw=raw)
        row.is_primary = position == 0
        session.add(row)
    await session.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


async def edit_client(
    session: AsyncSession,
    client_id: int,
    changes: dict[str, Any],
    *,
    actor: str,
    origin: str,
    actor_user_id: int | None = None,
    ip: str | None = None,
) -> Client:
    """Validate, normalise and apply a person's edit to a client, in the caller's transaction.

    ``changes`` holds any of EDITABLE_FIELDS: names and note are strings (note may be null),
    ``emails`` / ``phones`` are the complete lists (first is primary; phones are read in the home
    store's country), ``address`` is the complete address object (keys ADDRESS_FIELDS, null clears),
    dates are dates or ISO strings (null clears). ``origin`` is "user:<id>" or "api:<token id>".
    CLASP_FIELDS (never written to a POS): ``preferences`` is the complete object of short texts
    (keys like ``ring_size``, ``metal``; it wins over the POS custom field of the same meaning),
    ``tags`` the complete list, ``home_location`` a location id (source "manual", never recomputed)
    or null (back to the derivation rule of core.home_store). Their feed row names
    ``preferences`` / ``tags`` / ``home_location_id`` and ``home_location_source``.

    Raises ClientNotFound, ClientMerged, or ClientEditError (per-field messages; nothing written).
    Only fields whose value really changes are written; a no-op edit writes nothing.
    """
    client = await session.get(Client, client_id, with_for_update=True)
    if client is None:
        raise ClientNotFound(client_id)
    if client.merged_into_id is not None:
        raise ClientMerged(client_id, client.merged_into_id)

    errors: dict[str, str] = {}
    for name in changes:
        if name not in EDITABLE_FIELDS and name not in CLASP_FIELDS:
            errors[name] = f"not an editable field; editable: {', '.join(EDITABLE_FIELDS + CLASP_FIELDS)}"
    region = await home_region(session, client)
    cleaned: dict[str, Any] = {}
    for name, value in changes.items():
        if name in errors:
            continue
        try:
            if name in ("first_name", "last_name"):
                cleaned[name] = _clean_text(value, name, max_len=NAME_MAX, nullable=False)
            elif name == "note":
                cleaned[name] = _clean_text(value, name, max_len=NOTE_MAX, nullable=True)
            elif name in ("birthday", "anniversary"):
                cleaned[name] = _clean_date(value, name)
            elif name == "address":
                cleaned[name] = _clean_address(value)
            elif name == "emails":
                cleaned[name] = _clean_emails(value)
            elif name == "phones":
                cleaned[name] = _clean_phones(value, region)
            elif name == "preferences":
                cleaned[name] = _clean_preferences(value)
            elif name == "tags":
                cleaned[name] = _clean_tags(value)
            elif name == "home_location":
                cleaned[name] = await _clean_home(session, value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise ClientEditError(errors)

    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name, value in cleaned.items():
        if name == "home_location":
            old_home = (client.home_location_id, client.home_location_source)
            if value is None:
                # Back to automatic: the derivation rule (core.home_store) fills it in again.
                new_home = (None, None) if client.home_location_source == "manual" else old_home
            else:
                new_home = (value, "manual")
            if new_home != old_home:
                client.home_location_id, client.home_location_source = new_home
                before["home_location_id"], after["home_location_id"] = old_home[0], new_home[0]
                before["home_location_source"], after["home_location_source"] = old_home[1], new_home[1]
        elif name in ("emails", "phones"):
            kind = name[:-1]
            current = await _contacts(session, client_id, kind)
            old_values = [c.value for c in current]
            new_values = [v for v, _ in value]
            if old_values != new_values:
                await _replace_contacts(session, client_id, kind, current, value)
                before[name], after[name] = old_values, new_values
        else:
            old = getattr(client, name)
            if old != value:
                setattr(client, name, value)
                before[name], after[name] = _jsonable(old), _jsonable(value)
    if not after:
        return client

    from core.identity import manual_provenance

    # A person's edit ranks with the best source: a later POS change still wins over an older edit.
    manual_provenance(client, set(after), origin)
    if "home_location_id" in after and after["home_location_id"] is None:
        # Handed back to the rules: any POS value beats a derived one again.
        client.provenance = {k: v for k, v in (client.provenance or {}).items() if k != "home_location_id"}
    client.updated_at = utcnow()
    session.add(client)
    await session.flush()
    if "home_location_id" in after and after["home_location_id"] is None:
        from core.home_store import derive_home_stores

        await derive_home_stores(session, client_ids=[client_id])
    await feed.append(session, entity="client", entity_id=client_id, op="update", changes=after, origin=origin)
    await audit.record(
        session,
        "client.edit",
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="client",
        target_id=client_id,
        details={"origin": origin, "changes": {k: {"from": before[k], "to": after[k]} for k in after}},
        ip=ip,
    )
    return client


def _clean_preferences(value: Any) -> dict[str, str]:
    """The complete preferences object ({"ring_size": "6.5", ...}); a null or blank value removes a key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("preferences must be an object of short texts, e.g. {\"ring_size\": \"6.5\"}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", key):
            raise ValueError(f"preference name {key!r} must be lower-case letters, digits and _")
        if item is None:
            continue
        if not isinstance(item, str | int | float):
            raise ValueError(f"preferences.{key} must be a text")
        text = " ".join(str(item).split())
        if len(text) > PREFERENCE_MAX:
            raise ValueError(f"preferences.{key} is longer than {PREFERENCE_MAX} characters")
        if text:
            out[key] = text
    return out


def _clean_tags(value: Any) -> list[str]:
    """Tags in the order given, blanks and repeats (case-insensitive) dropped."""
    out: list[str] = []
    for tag in _raw_list(value, "tags"):
        tag = " ".join(tag.split())
        if len(tag) > TAG_MAX:
            raise ValueError(f"tag {tag[:20]!r}… is longer than {TAG_MAX} characters")
        if tag.lower() not in [t.lower() for t in out]:
            out.append(tag)
    if len(out) > TAGS_MAX:
        raise ValueError(f"at most {TAGS_MAX} tags")
    return out


async def _clean_home(session: AsyncSession, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        location_id = int(value)
    except (TypeError, ValueError):
        raise ValueError("home_location must be a location id, or null for automatic") from None
    if await session.get(Location, location_id) is None:
        raise ValueError(f"no location {location_id}")
    return location_id


# ------------------------------------------------------------------------------------------ reading


def encode_cursor(*parts: Any) -> str:
    text = "|".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, count: int) -> list[str]:
    """The parts of an opaque cursor; ValueError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid cursor") from None
    parts = text.split("|")
    if len(parts) != count:
        raise ValueError("invalid cursor")
    return parts


@dataclass
class ExternalRefView:
    connector_id: int
    connector_name: str
    connector_type: str
    external_id: str
    synced_at: datetime


@dataclass
class SaleView:
    sale: Sale
    lines: list[SaleLine]


@dataclass
class ClientView:
    client: Client
    contacts: list[ClientContact]
    refs: list[ExternalRefView]
    consent: dict[str, Consent | None]
    sales: list[SaleView]
    sales_total: int
    merges: list[ClientMerge] = field(default_factory=list)


async def visible_client(session: AsyncSession, principal: Principal, client_id: int) -> Client | None:
    """The client if it exists and the principal may see it (callers answer "not found" either way)."""
    stmt = select(Client).where(col(Client.id) == client_id, client_filter(principal))
    return (await session.exec(stmt)).first()


async def lines_for(session: AsyncSession, sale_ids: list[int]) -> dict[int, list[SaleLine]]:
    lines: dict[int, list[SaleLine]] = {sid: [] for sid in sale_ids}
    if sale_ids:
        found = await session.exec(
            select(SaleLine).where(col(SaleLine.sale_id).in_(sale_ids)).order_by(col(SaleLine.id))
        )
        for line in found.all():
            lines[line.sale_id].append(line)
    return lines


async def client_view(
    session: AsyncSession, principal: Principal, client_id: int, *, sales_limit: int = 50
) -> ClientView | None:
    """Everything about one client the principal may see, or None (missing or out of scope).

    Sales are scoped like every sale query: only those at the principal's locations.
    """
    client = await visible_client(session, principal, client_id)
    if client is None:
        return None
    contacts = await _contacts(session, client_id)
    ref_rows = await session.exec(
        select(ExternalRef, Connector)
        .join(Connector, col(Connector.id) == col(ExternalRef.connector_id))
        .where(col(ExternalRef.object_type) == "client", col(ExternalRef.unified_id) == client_id)
        .order_by(col(Connector.name), col(ExternalRef.external_id))
    )
    refs = [
        ExternalRefView(c.id, c.name, c.type, r.external_id, r.synced_at)  # type: ignore[arg-type]
        for r, c in ref_rows.all()
    ]
    consent: dict[str, Consent | None] = dict.fromkeys(CONSENT_CHANNELS)
    ledger = await session.exec(
        select(Consent).where(col(Consent.client_id) == client_id).order_by(col(Consent.recorded_at), col(Consent.id))
    )
    for row in ledger.all():
        consent[row.channel] = row
    sale_scope = and_(col(Sale.client_id) == client_id, location_filter(principal, col(Sale.location_id)))
    sales_total = (await session.exec(select(func.count()).select_from(Sale).where(sale_scope))).one()
    sales = list(
        (
            await session.exec(
                select(Sale)
                .where(sale_scope)
                .order_by(col(Sale.occurred_at).desc(), col(Sale.id).desc())
                .limit(sales_limit)
            )
        ).all()
    )
    lines = await lines_for(session, [s.id for s in sales])  # type: ignore[misc]
    merges = list(
        (
            await session.exec(
                select(ClientMerge)
                .where(col(ClientMerge.survivor_id) == client_id)
                .order_by(col(ClientMerge.id).desc())
            )
        ).all()
    )
    return ClientView(
        client=client,
        contacts=contacts,
        refs=refs,
        consent=consent,
        sales=[SaleView(s, lines[s.id]) for s in sales],  # type: ignore[index]
        sales_total=int(sales_total),
        merges=merges,
    )
