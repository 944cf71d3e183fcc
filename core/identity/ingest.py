"""Ingesting a page of client records: normalise, bind external refs, match, survive, merge.

Everything happens in the caller's session and transaction (the sync engine commits the page and
its checkpoint together). Lookups are set-based per page: one query for the page's external refs,
one for the existing contacts that share the page's emails and phones, one for the clients
involved and their contacts; records whose payload has not changed since the last ingest are not
re-resolved at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, update
from sqlalchemy import select as core_select
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.identity.clusters import linked_clients, resolve_clusters
from core.identity.merge import connector_types, identity_lock
from core.identity.settings import IdentitySettings, load_identity_settings
from core.identity.survivorship import FIELDS, Source, apply_value, json_value
from core.models import ChangeFeed, Client, ClientContact, Consent, ExternalRef, Location, utcnow
from core.normalize import (
    NormalisationError,
    is_junk_email,
    is_junk_phone,
    is_placeholder,
    normalise_email,
    normalise_name,
    normalise_phone,
    parse_date,
)
from core.plugin import ClientRecord
from core.sync import refs as refs_mod
from core.sync.bulk import pg_driver

PLURAL = {"email": "emails", "phone": "phones"}


@dataclass
class ClientIngestResult:
    """What happened to one client record: the unified client it belongs to (after any merge),
    whether that client was created by it, and the fields it changed (as written to the feed)."""

    external_id: str
    client_id: int
    created: bool
    changed: dict[str, Any]
    # Values dropped from the record (an unparseable phone, an invalid email), for the error queue.
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Contact:
    kind: str
    value: str
    raw: str
    label: str | None
    is_primary: bool
    junk: bool


@dataclass
class _Incoming:
    record: ClientRecord
    fields: dict[str, Any]
    contacts: list[_Contact]
    source: Source
    payload_hash: str
    warnings: list[str]


@dataclass
class StopList:
    """Values never used to match: store phones and the admin's extra placeholders."""

    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)

    def values(self) -> list[str]:
        return sorted(self.phones | self.emails)


@dataclass
class _Places:
    countries: dict[int, str]
    stop: StopList


async def resolve_location_region(session: AsyncSession, location_id: int | None, default: str = "US") -> str:
    """The country (ISO 3166 alpha-2) whose national phone numbers a location's records use."""
    if location_id is None:
        return default
    country = (await session.exec(select(Location.country).where(Location.id == location_id))).first()
    return (country or default).upper()


async def load_stop_list(session: AsyncSession, settings: IdentitySettings) -> tuple[StopList, dict[int, str]]:
    """Every location's own phone (in E.164) plus the settings' extra junk values; and location countries."""
    stop = StopList()
    countries: dict[int, str] = {}
    rows = (await session.exec(select(Location.id, Location.country, Location.phone))).all()
    for location_id, country, phone in rows:
        countries[int(location_id)] = (country or settings.default_region).upper()
        if phone:
            try:
                stop.phones.add(normalise_phone(phone, countries[int(location_id)]))
            except NormalisationError:
                pass
    for phone in settings.junk_phones:
        try:
            stop.phones.add(normalise_phone(phone, settings.default_region))
        except NormalisationError:
            pass
    for email in settings.junk_emails:
        try:
            stop.emails.add(normalise_email(email))
        except NormalisationError:
            stop.emails.add(email.strip().lower())
    return stop, countries


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Row:
    """A plain, mutable copy of a table row. Rows are read and written with Core statements in
    batches: building ORM objects costs more than the whole rest of an ingest."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only reached for attributes never set
        raise AttributeError(name)


CLIENT = Client.__table__  # type: ignore[attr-defined]
CONTACT = ClientContact.__table__  # type: ignore[attr-defined]
REF = ExternalRef.__table__  # type: ignore[attr-defined]
FEED = ChangeFeed.__table__  # type: ignore[attr-defined]
CONSENT = Consent.__table__  # type: ignore[attr-defined]
_CLIENT_WRITABLE = (*FIELDS, "provenance", "archived", "updated_at")


def _region_and_home(
    record: ClientRecord, location_ids: Mapping[str, int], places: _Places, settings: IdentitySettings
) -> tuple[int | None, str]:
    home_id = location_ids.get(record.home_location_external_id) if record.home_location_external_id else None
    region = places.countries.get(home_id) if home_id is not None else None
    if region is None:
        known = {places.countries[i] for i in location_ids.values() if i in places.countries}
        region = known.pop() if len(known) == 1 else settings.default_region
    return home_id, region


def _payload_hash(record: ClientRecord, home_id: int | None, region: str) -> str:
    # The record as received plus what its meaning depends on (its home location and phone region).
    # Records without consent evidence hash as before the field existed: no re-resolution on upgrade.
    digest = hashlib.sha256(record.model_dump_json(exclude={"consent"} if not record.consent else None).encode())
    digest.update(json.dumps([home_id, region]).encode())
    return digest.hexdigest()


def _normalise(
    record: ClientRecord, *, home_id: int | None, region: str, payload_hash: str, source: Source, places: _Places
) -> _Incoming:
    warnings: list[str] = []
    if record.home_location_external_id and home_id is None:
        warnings.append(f"unknown home location {record.home_location_external_id!r}")
    contacts: dict[tuple[str, str], _Contact] = {}
    for contact in record.contacts:
        raw = contact.value.strip()
        if is_placeholder(raw):
            continue  # "n/a", "none": staff saying there is none
        try:
            if contact.kind == "email":
                value = _email(raw)
                junk = is_junk_email(value, places.stop.emails)
            else:
                value = _phone(raw, region)
                junk = is_junk_phone(value, places.stop.phones)
        except NormalisationError as exc:
            if not (contact.kind == "phone" and re.search(r"\d", raw) and is_junk_phone(raw)):
                warnings.append(f"{contact.kind} dropped: {exc}")
            continue
        key = (contact.kind, value)
        if key not in contacts:
            contacts[key] = _Contact(contact.kind, value, contact.value[:320], contact.label, contact.is_primary, junk)

    address = {k: (v.strip() if isinstance(v, str) else v) for k, v in record.address.items()}
    fields = {
        "first_name": normalise_name(record.first_name)[:200],
        "last_name": normalise_name(record.last_name)[:200],
        "birthday": parse_date(record.birthday),
        "anniversary": parse_date(record.anniversary),
        "address": {k: v for k, v in address.items() if v not in (None, "")},
        "note": (record.note or "").strip() or None,
        "home_location_id": home_id,
        "custom_fields": dict(record.custom_fields),
    }
    return _Incoming(record, fields, list(contacts.values()), source, payload_hash, warnings)


# Syncs see the same addresses and numbers again and again; the validators are pure but not cheap.
@lru_cache(maxsize=50_000)
def _email(raw: str) -> str:
    return normalise_email(raw)


@lru_cache(maxsize=50_000)
def _phone(raw: str, region: str) -> str:
    return normalise_phone(raw, region)


class _Page:
    """In-memory state of one page: clients by handle (``id()`` of the row object, so clients not yet
    inserted can be matched by later records of the same page) and the match index."""

    def __init__(self, settings: IdentitySettings, connector_id: int, stop: StopList) -> None:
        self.settings = settings
        self.connector_id = connector_id
        self.stop = set(stop.values())
        self.by_id: dict[int, int] = {}  # client id -> handle
        self.ref_clients: dict[str, _Row] = {}  # external id -> client, for refs made in this page
        self.clients: dict[int, _Row] = {}
        self.contacts: dict[int, dict[tuple[str, str], _Row]] = defaultdict(dict)
        self.index: dict[tuple[str, str], dict[int, _Row]] = defaultdict(dict)
        self.refs_total: dict[int, int] = defaultdict(int)
        self.refs_here: dict[int, int] = defaultdict(int)  # refs of this connector per client
        self.new_clients: list[_Row] = []
        self.dirty_clients: dict[int, _Row] = {}
        self.new_contacts: list[_Row] = []
        self.dirty_contacts: dict[int, _Row] = {}
        self.deleted_contacts: list[int] = []
        self.new_refs: list[tuple[_Row, _Row]] = []
        self.dirty_refs: list[_Row] = []
        self.feed: list[tuple[_Row, str, dict[str, Any]]] = []

    def add(self, client: _Row) -> int:
        self.clients[id(client)] = client
        return id(client)

    def matchable(self, contact: _Contact | _Row) -> bool:
        junk = contact.junk if isinstance(contact, _Contact) else contact.unusable
        return not junk and contact.kind in self.settings.match_keys and contact.value not in self.stop

    def match(self, incoming: _Incoming) -> tuple[_Row | None, list[str]]:
        if self.settings.on_match != "update" or not self.settings.match_keys:
            return None, []
        scores: dict[int, int] = defaultdict(int)
        for contact in incoming.contacts:
            if self.matchable(contact):
                for handle in self.index.get((contact.kind, contact.value), {}):
                    scores[handle] += 1
        order = sorted(scores, key=lambda h: (-scores[h], self.clients[h].id or 1 << 62, h))
        for handle in order:
            if self.refs_total[handle] + 1 <= self.settings.cluster_size_cap:
                return self.clients[handle], []
        if order:
            cap = self.settings.cluster_size_cap
            return None, [f"matches client(s) at the cluster size cap ({cap}); created apart"]
        return None, []


async def ingest_clients(
    session: AsyncSession,
    *,
    connector_id: int,
    records: list[ClientRecord],
    location_ids: dict[str, int],
    origin: str,
) -> list[ClientIngestResult]:
    """Upsert one page of a connector's client records into unified clients, in the caller's transaction.

    For each record: normalise (``core.normalize``), find its client by external ref, or match an
    existing client on the identity settings' keys (``on_match="update"``) or create one; apply field
    survivorship with provenance; add its contacts; write one change-feed row with exactly the fields
    that changed (none when nothing did). Clients the page links together are then merged (bounded by
    the cluster-size cap, never re-merging a pair a person unmerged). An unchanged record (same payload
    as last time) is skipped without a write.
    """
    if not records:
        return []
    await identity_lock(session)
    settings = await load_identity_settings(session)
    types = await connector_types(session)
    stop, countries = await load_stop_list(session, settings)
    places = _Places(countries, stop)
    now = utcnow()
    rank = settings.rank_of(connector_id, types.get(connector_id))

    # Probed key by key on PostgreSQL (see refs.lookup): an IN list planned from a backfill's stale
    # statistics walked every client reference of the connector, page after page.
    found = await refs_mod.lookup(await session.connection(), connector_id, "client", [r.external_id for r in records])
    refs: dict[str, _Row] = {
        ext: _Row(id=ref.id, external_id=ext, unified_id=ref.unified_id, payload_hash=ref.payload_hash)
        for ext, ref in found.items()
    }
    prepared: list[tuple[ClientRecord, int | None, str, str]] = []
    for record in records:
        home_id, region = _region_and_home(record, location_ids, places, settings)
        prepared.append((record, home_id, region, _payload_hash(record, home_id, region)))
    todo = {
        h: _normalise(
            r,
            home_id=home,
            region=region,
            payload_hash=h,
            places=places,
            source=Source(origin, connector_id, r.external_id, _aware(r.updated_at) or now, rank),
        )
        for r, home, region, h in prepared
        if not (r.external_id in refs and refs[r.external_id].payload_hash == h)
    }
    page = _Page(settings, connector_id, stop)
    if todo:
        await _load_involved(session, page, list(todo.values()), refs)

    results: list[ClientIngestResult] = []
    handles: list[int | None] = []
    for record, _, _, payload_hash in prepared:
        ext = record.external_id
        ref = refs.get(ext)
        if ref is not None and ref.payload_hash == payload_hash:
            results.append(ClientIngestResult(ext, ref.unified_id, False, {}, []))
            same_page = page.ref_clients.get(ext)  # a repeat of a record first seen in this page
            handles.append(None if same_page is None else id(same_page))
            continue
        item = todo[payload_hash]
        warnings = list(item.warnings)
        if ref is not None and ref.id is not None and ext not in page.ref_clients and ref.unified_id not in page.by_id:
            ref = None  # its client was deleted: resolve the record afresh, reusing the ref row
            stale = refs[ext]
        else:
            stale = None
        if ref is not None:
            client = page.ref_clients.get(ext) or page.clients[page.by_id[ref.unified_id]]
            created = False
            if ref.id is not None:
                page.dirty_refs.append(ref)
        else:
            match, notes = page.match(item)
            warnings += notes
            created = match is None
            client = match or _new_client(now)
            if created:
                page.new_clients.append(client)
            handle = page.add(client)
            page.ref_clients[ext] = client
            if stale is not None:
                ref = stale
                ref.client = client
                page.dirty_refs.append(ref)
            else:
                ref = refs[ext] = _Row(id=None, external_id=ext, unified_id=None)
                page.new_refs.append((ref, client))
            page.refs_total[handle] += 1
            page.refs_here[handle] += 1
        changes = _apply(page, client, item, created, types)
        ref.payload_hash = payload_hash
        ref.remote_updated_at = _aware(record.updated_at)
        if changes:
            if not created:
                client.updated_at = now
            page.feed.append((client, "insert" if created else "update", changes))
        results.append(ClientIngestResult(ext, 0, created, changes, warnings))
        handles.append(id(client))

    merged_into: dict[int, int] = {}
    if todo:
        await _write(session, page, connector_id, origin, now)
        if settings.on_match == "update" and settings.match_keys:
            touched = sorted({page.clients[h].id for h in handles if h is not None})
            seeds = await linked_clients(session, touched, kinds=settings.match_keys, stop=stop.values())
            if seeds:
                merged_into = await resolve_clusters(
                    session, seeds, settings=settings, types=types, stop=stop.values(), origin=origin
                )
    for result, handle in zip(results, handles, strict=True):
        if handle is not None:
            result.client_id = page.clients[handle].id
        while result.client_id in merged_into:
            result.client_id = merged_into[result.client_id]
    evidence = [
        (result.client_id, record)
        for (record, _, _, payload_hash), result in zip(prepared, results, strict=True)
        if record.consent and payload_hash in todo
    ]
    if evidence:
        await _write_consent(session, connector_id, evidence, now)
    return results


async def _write_consent(
    session: AsyncSession, connector_id: int, evidence: list[tuple[int, ClientRecord]], now: datetime
) -> None:
    """Append a ``pos_flag`` ledger row for each (client, channel, purpose, source record) whose
    evidence differs from this connector's latest row for it: one read and one batched insert per page. Only changed
    records get here (unchanged payloads are skipped above), so a re-sync appends nothing."""
    client_ids = sorted({cid for cid, _ in evidence})
    latest: dict[tuple[int, str, str, str], tuple[Any, ...]] = {}
    cols = (CONSENT.c.client_id, CONSENT.c.channel, CONSENT.c.purpose, CONSENT.c.status, CONSENT.c.source,
            CONSENT.c.wording, CONSENT.c.overrides_opt_out, CONSENT.c.recorded_at, CONSENT.c.id)
    for start in range(0, len(client_ids), 2000):
        stmt = core_select(*cols).where(
            CONSENT.c.connector_id == connector_id,
            CONSENT.c.source_kind == "pos_flag",
            CONSENT.c.client_id.in_(client_ids[start : start + 2000]),
        )
        for row in (await session.exec(stmt)).all():  # type: ignore[call-overload]
            key = (row[0], row[1], row[2], row[4])
            if key not in latest or (_aware(row[7]), row[8]) > (_aware(latest[key][7]), latest[key][8]):
                latest[key] = tuple(row)
    # Keyed by source record too: two POS records of one person (registered at two shops) each
    # speak for themselves, so one shop's "nobody asked" never withdraws the other's permission.
    wanted: dict[tuple[int, str, str, str], Any] = {}
    for cid, record in evidence:
        for item in record.consent:
            source = f"{item.source} (record {record.external_id})"[:100]
            wanted[(cid, item.channel, item.purpose, source)] = item
    rows = []
    for (cid, channel, purpose, source), item in wanted.items():
        last = latest.get((cid, channel, purpose, source))
        if last is None and item.status == "unknown":
            continue  # "no permission" with nothing granted before: nothing to record
        said = (item.status, item.wording, item.overrides_opt_out)
        if last is not None and (last[3], last[5], bool(last[6])) == said:
            continue
        rows.append({
            "client_id": cid,
            "channel": channel,
            "purpose": purpose,
            "status": item.status,
            "source_kind": "pos_flag",
            "source": source,
            "recorded_by": f"connector:{connector_id}",
            "wording": item.wording,
            "connector_id": connector_id,
            "overrides_opt_out": item.overrides_opt_out,
            "note": None,
            "recorded_at": now,
        })
    if rows:
        await session.exec(insert(CONSENT), params=rows)  # type: ignore[call-overload]


def _new_client(now: datetime) -> _Row:
    return _Row(
        id=None,
        first_name="",
        last_name="",
        birthday=None,
        anniversary=None,
        address={},
        note=None,
        custom_fields={},
        preferences={},
        tags=[],
        home_location_id=None,
        home_location_source=None,
        owner_associate_id=None,
        merged_into_id=None,
        provenance={},
        archived=False,
        created_at=now,
        updated_at=now,
    )


async def _sharing_clients(session: AsyncSession, wanted: dict[str, set[str]]) -> set[int]:
    """Live clients holding any of the wanted contact values.

    On PostgreSQL, probed value by value. During a backfill the statistics describe a much smaller
    table than the one being written, and the planner then read every contact of a kind and filtered
    the values: a page cost O(table), and a 100k-client backfill slowed down page after page. One
    index probe per value does not depend on the statistics; OFFSET 0 keeps the subquery from being
    flattened back into a join.
    """
    if session.bind.dialect.name != "postgresql":
        clauses = [
            and_(CONTACT.c.kind == kind, CONTACT.c.value.in_(sorted(values)))
            for kind, values in wanted.items()
            if values
        ]
        stmt = (
            core_select(CONTACT.c.client_id)
            .join(CLIENT, CLIENT.c.id == CONTACT.c.client_id)
            .where(CLIENT.c.merged_into_id.is_(None), CONTACT.c.unusable.is_(False), or_(*clauses))
        )
        return {int(i) for i in (await session.exec(stmt)).scalars().all()}  # type: ignore[call-overload]
    pairs = [(kind, value) for kind, values in wanted.items() for value in sorted(values)]
    rows = await (await pg_driver(await session.connection())).fetch(
        "SELECT DISTINCT m.client_id FROM unnest($1::text[], $2::text[]) AS k(kind, value) CROSS JOIN LATERAL ("
        "SELECT cc.client_id FROM client_contact cc JOIN client c ON c.id = cc.client_id"
        " WHERE cc.kind = k.kind AND cc.value = k.value AND NOT cc.unusable AND c.merged_into_id IS NULL"
        " OFFSET 0) AS m",
        [p[0] for p in pairs], [p[1] for p in pairs],
    )
    return {int(r[0]) for r in rows}


async def _load_involved(session: AsyncSession, page: _Page, todo: list[_Incoming], refs: Mapping[str, _Row]) -> None:
    """The clients the changed records touch (by ref or by a shared contact), with their contacts."""
    wanted: dict[str, set[str]] = {"email": set(), "phone": set()}
    for item in todo:
        for contact in item.contacts:
            if page.matchable(contact):
                wanted[contact.kind].add(contact.value)
    ids = {refs[i.record.external_id].unified_id for i in todo if i.record.external_id in refs}
    if page.settings.on_match == "update" and any(wanted.values()):
        ids |= await _sharing_clients(session, wanted)
    if not ids:
        return
    rows = (await session.exec(core_select(CLIENT).where(CLIENT.c.id.in_(sorted(ids))))).mappings().all()  # type: ignore[call-overload]
    loaded = {row["id"]: _Row(**row) for row in rows}
    # Refs follow merges, so a ref's client is live; follow a stale chain defensively all the same.
    for client_id, client in loaded.items():
        target = client
        while target.merged_into_id is not None:
            stmt = core_select(CLIENT).where(CLIENT.c.id == target.merged_into_id)
            row = (await session.exec(stmt)).mappings().first()  # type: ignore[call-overload]
            if row is None:
                break
            target = loaded.get(row["id"]) or _Row(**row)
            loaded[row["id"]] = target
        if target.id not in page.by_id:
            page.by_id[target.id] = page.add(target)
        page.by_id[client_id] = page.by_id[target.id]
    live_ids = sorted({c.id for c in page.clients.values()})
    contact_rows = (await session.exec(core_select(CONTACT).where(CONTACT.c.client_id.in_(live_ids)))).mappings().all()  # type: ignore[call-overload]
    for row in contact_rows:
        contact = _Row(**row)
        handle = page.by_id[contact.client_id]
        page.contacts[handle][(contact.kind, contact.value)] = contact
        if page.matchable(contact):
            page.index[(contact.kind, contact.value)][handle] = page.clients[handle]
    counts = (
        await session.exec(  # type: ignore[call-overload]
            core_select(REF.c.unified_id, REF.c.connector_id, func.count())
            .where(REF.c.object_type == "client", REF.c.unified_id.in_(live_ids))
            .group_by(REF.c.unified_id, REF.c.connector_id)
        )
    ).all()
    for unified_id, conn_id, count in counts:
        handle = page.by_id[unified_id]
        page.refs_total[handle] += int(count)
        if conn_id == page.connector_id:
            page.refs_here[handle] += int(count)


def _apply(page: _Page, client: _Row, item: _Incoming, created: bool, types: Mapping[int, str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    handle = id(client)
    if created:
        provenance = {}
        for name in FIELDS:
            value = item.fields[name]
            setattr(client, name, value)
            if value not in (None, "", {}):
                changes[name] = json_value(value)
                provenance[name] = item.source.provenance()
        client.provenance = provenance
        client.archived = item.record.archived
        if item.record.archived:
            changes["archived"] = True
    else:
        before = (client.provenance, *(getattr(client, n) for n in FIELDS), client.archived)
        for name in FIELDS:
            apply_value(client, name, item.fields[name], item.source, page.settings, types, changes)
        # Archived in one POS is not archived everywhere: only a client's sole source archives it,
        # and any source still using the client brings it back.
        if item.record.archived:
            archived = True if page.refs_total[handle] <= 1 else client.archived
        else:
            archived = False
        if client.archived != archived:
            client.archived = archived
            changes["archived"] = archived
        if client.id is not None and before != (
            client.provenance,
            *(getattr(client, n) for n in FIELDS),
            client.archived,
        ):
            page.dirty_clients[client.id] = client

    existing = page.contacts[handle]
    touched: set[str] = set()
    wanted = {(c.kind, c.value) for c in item.contacts}
    if not created and page.refs_here[handle] <= 1:
        # This connector's only record of the client dropped a contact it had given: remove it.
        for key, row in list(existing.items()):
            if row.source_connector_id == page.connector_id and key not in wanted:
                del existing[key]
                page.index.get(key, {}).pop(handle, None)
                if row.id is not None:
                    page.deleted_contacts.append(row.id)
                    page.dirty_contacts.pop(row.id, None)
                else:
                    page.new_contacts = [r for r in page.new_contacts if r is not row]
                touched.add(row.kind)
    for contact in item.contacts:
        key = (contact.kind, contact.value)
        row = existing.get(key)
        if row is None:
            row = _Row(
                id=None,
                client=client,
                kind=contact.kind,
                value=contact.value,
                raw=contact.raw,
                label=contact.label,
                is_primary=contact.is_primary,
                unusable=contact.junk,
                source_connector_id=page.connector_id,
            )
            existing[key] = row
            page.new_contacts.append(row)
            touched.add(contact.kind)
            if page.matchable(contact):
                page.index[key][handle] = client
        elif row.source_connector_id == page.connector_id and (row.raw, row.label, row.is_primary) != (
            contact.raw,
            contact.label,
            contact.is_primary,
        ):
            row.raw, row.label, row.is_primary = contact.raw, contact.label, contact.is_primary
            if row.id is not None:
                page.dirty_contacts[row.id] = row
    for kind in sorted(touched):
        changes[PLURAL[kind]] = sorted(v for k, v in existing if k == kind)
    return changes


async def _insert_clients(session: AsyncSession, clients: list[_Row]) -> list[int]:
    """Insert new clients in one batch and return their ids in order."""
    columns = [c.name for c in CLIENT.columns if c.name != "id"]
    params = [{name: getattr(c, name) for name in columns} for c in clients]
    if session.bind.dialect.name != "sqlite":
        stmt = insert(CLIENT).returning(CLIENT.c.id, sort_by_parameter_order=True)
        return list((await session.exec(stmt, params=params)).scalars().all())  # type: ignore[call-overload]
    # SQLite cannot promise RETURNING order, so SQLAlchemy would insert row by row. Its rowids are
    # max + 1 and the write lock is ours from the first insert to the commit, so a batch gets
    # consecutive ids ending at the new maximum.
    await session.exec(insert(CLIENT), params=params)  # type: ignore[call-overload]
    last = int((await session.exec(core_select(func.max(CLIENT.c.id)))).scalar_one())  # type: ignore[call-overload]
    first = last - len(clients) + 1
    check = (
        core_select(func.count())
        .select_from(CLIENT)
        .where(CLIENT.c.id.between(first, last), CLIENT.c.created_at == clients[0].created_at)
    )
    if int((await session.exec(check)).scalar_one()) != len(clients):  # type: ignore[call-overload]
        raise RuntimeError("client ids of a batch insert are not consecutive")
    return list(range(first, last + 1))


async def _write(session: AsyncSession, page: _Page, connector_id: int, origin: str, now: datetime) -> None:
    """Every write of the page, as a few batched statements."""
    run = session.exec  # type: ignore[assignment]
    if page.deleted_contacts:
        await run(delete(CONTACT).where(CONTACT.c.id.in_(page.deleted_contacts)))  # type: ignore[call-overload]
    if page.new_clients:
        for client, new_id in zip(page.new_clients, await _insert_clients(session, page.new_clients), strict=True):
            client.id = new_id
    if page.dirty_clients:
        stmt = (
            update(CLIENT)
            .where(CLIENT.c.id == bindparam("_id"))
            .values({name: bindparam(name) for name in _CLIENT_WRITABLE})
        )
        await run(
            stmt,
            params=[  # type: ignore[call-overload]
                {"_id": c.id, **{name: getattr(c, name) for name in _CLIENT_WRITABLE}}
                for c in page.dirty_clients.values()
            ],
        )
    if page.new_refs:
        await run(
            insert(REF),
            params=[  # type: ignore[call-overload]
                {
                    "connector_id": connector_id,
                    "object_type": "client",
                    "external_id": ref.external_id,
                    "unified_id": client.id,
                    "payload_hash": ref.payload_hash,
                    "remote_updated_at": ref.remote_updated_at,
                    "synced_at": now,
                }
                for ref, client in page.new_refs
            ],
        )
    if page.dirty_refs:
        stmt = (
            update(REF)
            .where(REF.c.id == bindparam("_id"))
            .values(
                unified_id=bindparam("u"),
                payload_hash=bindparam("h"),
                remote_updated_at=bindparam("r"),
                synced_at=bindparam("s"),
            )
        )
        await run(
            stmt,
            params=[  # type: ignore[call-overload]
                {
                    "_id": r.id,
                    "u": r.client.id if "client" in r.__dict__ else r.unified_id,
                    "h": r.payload_hash,
                    "r": r.remote_updated_at,
                    "s": now,
                }
                for r in page.dirty_refs
            ],
        )
    if page.new_contacts:
        await run(
            insert(CONTACT),
            params=[  # type: ignore[call-overload]
                {
                    "client_id": r.client.id,
                    "kind": r.kind,
                    "value": r.value,
                    "raw": r.raw,
                    "label": r.label,
                    "is_primary": r.is_primary,
                    "unusable": r.unusable,
                    "source_connector_id": r.source_connector_id,
                    "created_at": now,
                }
                for r in page.new_contacts
            ],
        )
    if page.dirty_contacts:
        stmt = (
            update(CONTACT)
            .where(CONTACT.c.id == bindparam("_id"))
            .values(raw=bindparam("raw"), label=bindparam("label"), is_primary=bindparam("is_primary"))
        )
        await run(
            stmt,
            params=[  # type: ignore[call-overload]
                {"_id": r.id, "raw": r.raw, "label": r.label, "is_primary": r.is_primary}
                for r in page.dirty_contacts.values()
            ],
        )
    if page.feed:
        await run(
            insert(FEED),
            params=[  # type: ignore[call-overload]
                {
                    "entity": "client",
                    "entity_id": client.id,
                    "op": op,
                    "changes": changes,
                    "origin": origin,
                    "origin_connector_id": connector_id,
                    "created_at": now,
                }
                for client, op, changes in page.feed
            ],
        )
