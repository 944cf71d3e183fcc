"""Field survivorship: which source's value a golden record keeps, and the provenance that says why.

Each surviving field's provenance is ``{"source": origin, "connector_id": id | None, "ref": external
id | None, "at": ISO time}``. A value wins by source rank (``IdentitySettings.rank_of``), then by the
most recent ``at``; an empty value never displaces another source's value (only the source that gave
a value may clear it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from core.identity.settings import IdentitySettings
from core.models import Client

# Golden-record fields that survivorship decides; contacts and archived have rules of their own.
FIELDS = ("first_name", "last_name", "birthday", "anniversary", "address", "note", "home_location_id", "custom_fields")
DATE_FIELDS = {"birthday", "anniversary"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Source:
    """Where an incoming value comes from, and how strong it is."""

    origin: str
    connector_id: int | None
    ref: str | None
    at: datetime
    rank: int

    def provenance(self) -> dict[str, Any]:
        return {"source": self.origin, "connector_id": self.connector_id, "ref": self.ref, "at": self.at.isoformat()}


def empty_value(name: str) -> Any:
    return "" if name in ("first_name", "last_name") else {} if name in ("address", "custom_fields") else None


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def prov_rank(prov: Mapping[str, Any] | None, settings: IdentitySettings, types: Mapping[int, str]) -> int:
    if not prov:
        # Values nobody vouched for (created before provenance was kept) lose to any source.
        return len(settings.source_priority) + 1
    connector_id = prov.get("connector_id")
    if connector_id is None:
        return settings.rank_of(None, None)
    return settings.rank_of(int(connector_id), types.get(int(connector_id)))


def prov_at(prov: Mapping[str, Any] | None) -> datetime:
    if not prov or not prov.get("at"):
        return EPOCH
    at = datetime.fromisoformat(str(prov["at"]))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def beats(
    rank: int,
    at: datetime,
    prov: Mapping[str, Any] | None,
    settings: IdentitySettings,
    types: Mapping[int, str],
    *,
    ties_win: bool,
) -> bool:
    """Does a value of (rank, at) beat the one described by ``prov``?"""
    current_rank = prov_rank(prov, settings, types)
    if rank != current_rank:
        return rank < current_rank
    current_at = prov_at(prov)
    return at > current_at or (ties_win and at == current_at)


def same_source(prov: Mapping[str, Any] | None, source: Source) -> bool:
    """Is ``source`` a newer version of the record that gave the current value? (A replayed older
    payload of that record is not: it must not roll the value back.)"""
    return (
        bool(prov)
        and prov.get("connector_id") == source.connector_id
        and prov.get("ref") == source.ref
        and source.at >= prov_at(prov)
    )


def json_value(value: Any) -> Any:
    """A field value as it appears in change-feed rows and snapshots."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def apply_value(
    client: Client,
    name: str,
    value: Any,
    source: Source,
    settings: IdentitySettings,
    types: Mapping[int, str],
    changes: dict[str, Any],
) -> None:
    """Offer ``value`` for one field; the client keeps it if the source wins. Records real changes."""
    provenance: dict[str, Any] = dict(client.provenance or {})
    prov = provenance.get(name)
    current = getattr(client, name)
    if name == "custom_fields":
        _apply_custom_fields(client, value or {}, source, settings, types, changes, provenance)
        return
    if is_empty(value):
        # Only the source that gave the value may clear it; others' blanks mean "unknown".
        if not is_empty(current) and same_source(prov, source):
            setattr(client, name, empty_value(name))
            provenance[name] = source.provenance()
            changes[name] = json_value(getattr(client, name))
            client.provenance = provenance
        return
    wins = (
        is_empty(current)
        or same_source(prov, source)
        or beats(source.rank, source.at, prov, settings, types, ties_win=True)
    )
    if not wins:
        return
    if current != value:
        setattr(client, name, value)
        changes[name] = json_value(value)
    if prov != source.provenance():
        provenance[name] = source.provenance()
        client.provenance = provenance


def _apply_custom_fields(
    client: Client,
    value: Mapping[str, Any],
    source: Source,
    settings: IdentitySettings,
    types: Mapping[int, str],
    changes: dict[str, Any],
    provenance: dict[str, Any],
) -> None:
    # Key by key: two POSes rarely share custom fields, so one must not wipe the other's.
    current = dict(client.custom_fields or {})
    prov = provenance.get("custom_fields")
    wins = (
        not current or same_source(prov, source) or beats(source.rank, source.at, prov, settings, types, ties_win=True)
    )
    merged = dict(current)
    for key, item in value.items():
        if key not in current or wins:
            merged[key] = item
    if merged != current:
        client.custom_fields = merged
        changes["custom_fields"] = merged
    if wins and value and prov != source.provenance():
        provenance["custom_fields"] = source.provenance()
        client.provenance = provenance


def merge_fields(survivor: Client, absorbed: Client, settings: IdentitySettings, types: Mapping[int, str]) -> dict:
    """Give the survivor each of the absorbed client's values that wins; returns the changed fields."""
    changes: dict[str, Any] = {}
    provenance: dict[str, Any] = dict(survivor.provenance or {})
    other: Mapping[str, Any] = absorbed.provenance or {}
    for name in FIELDS:
        mine, theirs = getattr(survivor, name), getattr(absorbed, name)
        if is_empty(theirs) or mine == theirs:
            continue
        if name == "custom_fields":
            theirs_win = beats(
                prov_rank(other.get(name), settings, types),
                prov_at(other.get(name)),
                provenance.get(name),
                settings,
                types,
                ties_win=False,
            )
            merged = {**mine, **theirs} if theirs_win else {**theirs, **mine}
            if merged != mine:
                survivor.custom_fields = merged
                changes[name] = merged
            if theirs_win and other.get(name):
                provenance[name] = other[name]
            continue
        if is_empty(mine) or beats(
            prov_rank(other.get(name), settings, types),
            prov_at(other.get(name)),
            provenance.get(name),
            settings,
            types,
            ties_win=False,
        ):
            setattr(survivor, name, theirs)
            changes[name] = json_value(theirs)
            if other.get(name):
                provenance[name] = other[name]
            else:
                provenance.pop(name, None)
    if survivor.owner_associate_id is None and absorbed.owner_associate_id is not None:
        survivor.owner_associate_id = absorbed.owner_associate_id
        changes["owner_associate_id"] = absorbed.owner_associate_id
    if survivor.archived and not absorbed.archived:
        survivor.archived = False
        changes["archived"] = False
    if provenance != (survivor.provenance or {}):
        survivor.provenance = provenance
    return changes


def manual_provenance(client: Client, fields: list[str] | set[str], origin: str) -> None:
    """Mark fields as set by a person (``origin`` "user:3", "api:7"): they then rank with the best
    source, so a later POS edit wins only if it is more recent. For ``core.clients.edit_client``."""
    from core.models import utcnow

    provenance = dict(client.provenance or {})
    entry = {"source": origin, "connector_id": None, "ref": None, "at": utcnow().isoformat()}
    for name in fields:
        if name in FIELDS:
            provenance[name] = dict(entry)
    client.provenance = provenance
