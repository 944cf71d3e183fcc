"""Merging two clients into one, and undoing it exactly.

A merge moves everything that belongs to the absorbed client (contacts, external refs, sales,
outreach, tasks, consents) to the survivor, gives the survivor the absorbed client's winning field
values, and keeps the absorbed row (``merged_into_id`` set) so nothing is lost. The
``client_merge.snapshot`` records both clients' fields before and after and the ids of every moved
row; ``unmerge`` moves exactly those rows back and restores the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.identity.settings import IdentitySettings, load_identity_settings
from core.identity.survivorship import json_value, merge_fields
from core.models import (
    ChangeFeed,
    Client,
    ClientContact,
    ClientMerge,
    Connector,
    Consent,
    ExternalRef,
    Outreach,
    Sale,
    Task,
    utcnow,
)

# Advisory lock key (PostgreSQL) serialising identity writes, so two connectors syncing the same
# person at once cannot both create them. SQLite serialises writers by itself.
IDENTITY_LOCK = 0x636C_6173_7069_64  # "claspid"

# Tables whose rows follow their client through a merge: (snapshot key, model, client column).
MOVABLE: tuple[tuple[str, Any, str], ...] = (
    ("client_contact", ClientContact, "client_id"),
    ("external_ref", ExternalRef, "unified_id"),
    ("sale", Sale, "client_id"),
    ("outreach", Outreach, "client_id"),
    ("task", Task, "client_id"),
    ("consent", Consent, "client_id"),
)
# FOR NO KEY UPDATE on PostgreSQL: it does not wait for sales and outreach whose foreign keys merely
# reference the client (KEY SHARE), so a merge never deadlocks with a sales page being written.
NO_KEY_UPDATE = {"key_share": True}
_DATE_COLUMNS = {"birthday", "anniversary"}
_DATETIME_COLUMNS = {"created_at", "updated_at"}


class MergeError(ValueError):
    """A merge or unmerge that cannot be done as asked (unknown client, already merged, ...)."""


async def identity_lock(session: AsyncSession) -> None:
    """Hold the identity lock until the transaction ends (PostgreSQL; a no-op on SQLite)."""
    if session.bind.dialect.name == "postgresql":
        await session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=IDENTITY_LOCK))  # type: ignore[call-overload]


async def connector_types(session: AsyncSession) -> dict[int, str]:
    rows = (await session.exec(select(Connector.id, Connector.type))).all()
    return {int(cid): ctype for cid, ctype in rows if cid is not None}


def client_columns() -> list[str]:
    return [c.name for c in Client.__table__.columns]  # type: ignore[attr-defined]


def dump_client(client: Client) -> dict[str, Any]:
    return {name: json_value(getattr(client, name)) for name in client_columns()}


def load_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _DATE_COLUMNS:
        return date.fromisoformat(value)
    if name in _DATETIME_COLUMNS:
        return datetime.fromisoformat(value)
    return value


def _dump_row(row: Any) -> dict[str, Any]:
    return {c.name: json_value(getattr(row, c.name)) for c in type(row).__table__.columns}


def _load_row(model: Any, data: Mapping[str, Any]) -> Any:
    values = {}
    for column in model.__table__.columns:
        value = data.get(column.name)
        if value is not None and column.name.endswith("_at"):
            value = datetime.fromisoformat(value)
        values[column.name] = value
    return model(**values)


async def _ids_of(session: AsyncSession, model: Any, column: str, client_id: int) -> list[int]:
    stmt = select(model.id).where(getattr(model, column) == client_id)
    if model is ExternalRef:
        stmt = stmt.where(ExternalRef.object_type == "client")
    return sorted(int(i) for i in (await session.exec(stmt)).all())


async def _contact_values(session: AsyncSession, client_id: int | None) -> set[tuple[str, str]]:
    stmt = select(ClientContact.kind, ClientContact.value).where(ClientContact.client_id == client_id)
    return {(k, v) for k, v in (await session.exec(stmt)).all()}


async def merge_clients(
    session: AsyncSession,
    survivor_id: int,
    absorbed_id: int,
    *,
    actor: str,
    reason: str = "manual",
    origin: str | None = None,
    settings: IdentitySettings | None = None,
    types: Mapping[int, str] | None = None,
) -> ClientMerge:
    """Merge ``absorbed_id`` into ``survivor_id`` in the caller's transaction; undo with :func:`unmerge`.

    Fields follow survivorship (source priority, then most recent; the survivor keeps its own value
    on a tie). Writes one ``merge`` change-feed row per client and, for a person's merge, an audit row.
    """
    if survivor_id == absorbed_id:
        raise MergeError("a client cannot be merged into itself")
    await identity_lock(session)
    settings = settings or await load_identity_settings(session)
    types = types if types is not None else await connector_types(session)
    survivor = await session.get(Client, survivor_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    absorbed = await session.get(Client, absorbed_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    if survivor is None or absorbed is None:
        raise MergeError(f"unknown client {survivor_id if survivor is None else absorbed_id}")
    for client in (survivor, absorbed):
        if client.merged_into_id is not None:
            raise MergeError(f"client {client.id} was already merged into client {client.merged_into_id}")
    survivor_before, absorbed_before = dump_client(survivor), dump_client(absorbed)

    # Contacts the survivor already has would break (client, kind, value) uniqueness: drop the
    # absorbed copy and keep it whole in the snapshot for the unmerge.
    fresh = {"populate_existing": True}  # the session may hold rows a batch statement changed since
    theirs = list(
        (
            await session.exec(
                select(ClientContact).where(ClientContact.client_id == absorbed_id).execution_options(**fresh)
            )
        ).all()
    )
    mine = {
        (c.kind, c.value)
        for c in (await session.exec(select(ClientContact).where(ClientContact.client_id == survivor_id))).all()
    }
    dropped = [c for c in theirs if (c.kind, c.value) in mine]
    added = sorted({(c.kind, c.value) for c in theirs} - mine)
    dropped_rows = [_dump_row(c) for c in dropped]
    if dropped:
        await session.exec(delete(ClientContact).where(col(ClientContact.id).in_([c.id for c in dropped])))  # type: ignore[call-overload]

    moved: dict[str, list[int]] = {}
    for key, model, column in MOVABLE:
        ids = await _ids_of(session, model, column, absorbed_id)
        moved[key] = ids
        if ids:
            await session.exec(update(model).where(col(model.id).in_(ids)).values({column: survivor_id}))  # type: ignore[call-overload]

    changes = merge_fields(survivor, absorbed, settings, types)
    if "home_location_id" in changes:
        # The home store travels with where it came from (POS, derived, a person's choice). A derived
        # one is recomputed over the moved sales by the home_store feed consumer (core.home_store),
        # which reads this merge's feed rows: not here, so a merge stays exactly undoable.
        survivor.home_location_source = absorbed.home_location_source
    now = utcnow()
    if changes:
        survivor.updated_at = now
    absorbed.merged_into_id = survivor_id
    absorbed.updated_at = now
    session.add_all([survivor, absorbed])
    await session.flush()

    merge = ClientMerge(
        survivor_id=survivor_id,
        absorbed_id=absorbed_id,
        reason=reason,
        actor=actor,
        snapshot={
            "survivor_before": survivor_before,
            "survivor_after": dump_client(survivor),
            "absorbed_before": absorbed_before,
            "moved": moved,
            "dropped_contacts": dropped_rows,
        },
    )
    session.add(merge)
    await session.flush()
    origin = origin or actor
    feed_changes: dict[str, Any] = {**changes, "merge_id": merge.id, "absorbed_id": absorbed_id}
    for kind, plural in (("email", "emails"), ("phone", "phones")):
        if any(k == kind for k, _ in added):
            feed_changes[plural] = sorted(v for k, v in mine | set(added) if k == kind)
    session.add_all(
        [
            ChangeFeed(entity="client", entity_id=survivor_id, op="merge", changes=feed_changes, origin=origin),
            ChangeFeed(
                entity="client",
                entity_id=absorbed_id,
                op="merge",
                changes={"merged_into_id": survivor_id, "merge_id": merge.id},
                origin=origin,
            ),
        ]
    )
    if not reason.startswith("rule:"):
        await audit.record(
            session,
            "client.merge",
            actor=actor,
            target_type="client",
            target_id=survivor_id,
            details={"merge_id": merge.id, "absorbed_id": absorbed_id, "reason": reason},
        )
    await session.flush()
    return merge


async def unmerge(session: AsyncSession, merge_id: int, *, actor: str, origin: str | None = None) -> None:
    """Undo a merge: moved rows go back, the absorbed client returns as it was, and the survivor's
    fields return to their pre-merge values unless they have changed since the merge.

    Merges are undone newest first: a survivor that has itself been merged away must be unmerged
    from its own survivor before. Identity resolution never re-merges an unmerged pair.
    """
    await identity_lock(session)
    merge = await session.get(ClientMerge, merge_id, with_for_update=True, populate_existing=True)
    if merge is None:
        raise MergeError(f"unknown merge {merge_id}")
    if merge.undone_at is not None:
        raise MergeError(f"merge {merge_id} was already undone")
    survivor = await session.get(Client, merge.survivor_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    absorbed = await session.get(Client, merge.absorbed_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    if survivor is None or absorbed is None:
        raise MergeError(f"merge {merge_id} refers to a deleted client")
    if absorbed.merged_into_id != survivor.id:
        raise MergeError(f"client {absorbed.id} is no longer merged into client {survivor.id}")
    if survivor.merged_into_id is not None:
        raise MergeError(
            f"client {survivor.id} was merged into client {survivor.merged_into_id} afterwards; undo that merge first"
        )
    snapshot = merge.snapshot or {}
    contacts_before = await _contact_values(session, survivor.id)
    for key, model, column in MOVABLE:
        ids = snapshot.get("moved", {}).get(key) or []
        if ids:
            await session.exec(  # type: ignore[call-overload]
                update(model)
                .where(col(model.id).in_(ids), getattr(model, column) == survivor.id)
                .values({column: absorbed.id})
            )
    for data in snapshot.get("dropped_contacts", []):
        row = _load_row(ClientContact, data)
        if await session.get(ClientContact, row.id) is not None:
            row.id = None  # the id was reused meanwhile; the contact itself is what matters
        session.add(row)

    restored: dict[str, Any] = {}
    before, after = snapshot.get("survivor_before", {}), snapshot.get("survivor_after", {})
    for name in client_columns():
        if name in ("id", "created_at", "merged_into_id") or name not in before:
            continue
        if json_value(getattr(survivor, name)) == after.get(name) and before[name] != after.get(name):
            setattr(survivor, name, load_value(name, before[name]))
            if name not in ("updated_at", "provenance"):
                restored[name] = before[name]
    for name, value in snapshot.get("absorbed_before", {}).items():
        if name != "id":
            setattr(absorbed, name, load_value(name, value))
    merge.undone_at = utcnow()
    session.add_all([survivor, absorbed, merge])
    await session.flush()
    origin = origin or actor
    contacts_after = await _contact_values(session, survivor.id)
    for kind, plural in (("email", "emails"), ("phone", "phones")):
        values = sorted(v for k, v in contacts_after if k == kind)
        if values != sorted(v for k, v in contacts_before if k == kind):
            restored[plural] = values
    absorbed_fields = {
        k: v
        for k, v in snapshot.get("absorbed_before", {}).items()
        if k not in ("id", "provenance", "created_at", "updated_at")
    }
    session.add_all(
        [
            ChangeFeed(
                entity="client",
                entity_id=survivor.id,
                op="unmerge",
                changes={**restored, "merge_id": merge.id, "restored_id": absorbed.id},
                origin=origin,
            ),
            ChangeFeed(
                entity="client",
                entity_id=absorbed.id,
                op="unmerge",
                changes={**absorbed_fields, "merge_id": merge.id},
                origin=origin,
            ),
        ]
    )
    await audit.record(
        session,
        "client.unmerge",
        actor=actor,
        target_type="client",
        target_id=survivor.id,
        details={"merge_id": merge.id, "absorbed_id": absorbed.id},
    )
    await session.flush()
