"""The schema enforces what the architecture relies on, on every backend, and migrates both ways."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, StatementError

from core import migrate
from core.db import Database
from core.models import Client, Connector, ExternalRef, FeedConsumer, Location, Outreach, Sale


async def _connector(db: Database, name: str = "pos") -> int:
    async with db.transaction() as s:
        c = Connector(type="lightspeed_r", kind="pos", name=name)
        s.add(c)
        await s.flush()
        assert c.id is not None
        return c.id


async def test_external_ref_is_unique_per_connector_type_and_id(db: Database) -> None:
    cid = await _connector(db)
    async with db.transaction() as s:
        s.add(ExternalRef(connector_id=cid, object_type="client", external_id="42", unified_id=1))
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            s.add(ExternalRef(connector_id=cid, object_type="client", external_id="42", unified_id=2))
    # The same external id is fine for another object type or another connector.
    other = await _connector(db, "pos-2")
    async with db.transaction() as s:
        s.add(ExternalRef(connector_id=cid, object_type="sale", external_id="42", unified_id=1))
        s.add(ExternalRef(connector_id=other, object_type="client", external_id="42", unified_id=3))


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (Connector, {"type": "x", "kind": "fax", "name": "bad-kind"}),
        (Outreach, {"state": "teleported"}),
        (Location, {"name": "L", "outreach_mode": "anarchy"}),
    ],
)
async def test_check_constraints_reject_unknown_states(db: Database, model: type, values: dict) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            s.add(model(**values))


async def test_occasion_key_fires_once(db: Database) -> None:
    async with db.transaction() as s:
        s.add(Outreach(body="Happy birthday", occasion_key="client:1:birthday:2027"))
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            s.add(Outreach(body="Happy birthday again", occasion_key="client:1:birthday:2027"))


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            s.add(
                Sale(
                    location_id=999_999,
                    status="completed",
                    currency="USD",
                    occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
                )
            )


async def test_unique_names(db: Database) -> None:
    await _connector(db, "same")
    with pytest.raises(IntegrityError):
        await _connector(db, "same")
    async with db.transaction() as s:
        s.add(FeedConsumer(name="writeback"))
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            s.add(FeedConsumer(name="writeback"))


async def test_times_are_utc_aware_and_naive_is_refused(db: Database) -> None:
    async with db.transaction() as s:
        loc = Location(name="Downtown", timezone="America/New_York")
        s.add(loc)
        await s.flush()
        s.add(
            Sale(
                location_id=loc.id,
                status="completed",
                currency="USD",
                total_minor=12345,
                occurred_at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC),
            )
        )
    async with db.session() as s:
        sale = (await s.exec(text("SELECT id FROM sale"))).first()  # type: ignore[call-overload]
        got = await s.get(Sale, sale[0])
        assert got is not None
        assert got.occurred_at == datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
        assert got.occurred_at.tzinfo is not None
    with pytest.raises(StatementError):
        async with db.transaction() as s:
            s.add(Client(first_name="Naive", created_at=datetime(2026, 1, 1)))


async def test_migrations_go_down_and_up(db: Database) -> None:
    head = migrate.head_revision()
    assert await migrate.current(db) == head
    await migrate.downgrade(db, "base")
    assert await migrate.current(db) is None
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda c: __import__("sqlalchemy").inspect(c).get_table_names())
    assert "client" not in names
    with pytest.raises(migrate.SchemaOutOfDate, match="clasp db upgrade"):
        await migrate.ensure_up_to_date(db)
    await migrate.upgrade(db)
    assert await migrate.current(db) == head
    await migrate.ensure_up_to_date(db)


async def test_migrating_keeps_the_rows_that_point_at_rebuilt_tables(db: Database) -> None:
    # SQLite rebuilds a table to alter it; with foreign keys on, dropping the old copy would cascade
    # to every contact and unlink every sale and text of the clients.
    from core.models import ClientContact

    async with db.transaction() as s:
        loc = Location(name="Fifth Avenue")
        s.add(loc)
        await s.flush()
        client = Client(first_name="Ann", last_name="Lee", home_location_id=loc.id)
        s.add(client)
        await s.flush()
        s.add(ClientContact(client_id=client.id, kind="email", value="ann@example.com"))  # type: ignore[arg-type]
        s.add(Sale(location_id=loc.id, client_id=client.id, status="completed", currency="USD"))  # type: ignore[arg-type]
        s.add(Outreach(client_id=client.id, body="Hello"))
    await migrate.downgrade(db, "0005")
    await migrate.upgrade(db)
    async with db.session() as s:
        counts = (await s.exec(text(  # type: ignore[call-overload]
            "SELECT (SELECT count(*) FROM client_contact), (SELECT count(*) FROM sale WHERE client_id IS NOT NULL),"
            " (SELECT count(*) FROM outreach WHERE client_id IS NOT NULL), (SELECT count(*) FROM client)"
        ))).one()
    assert tuple(counts) == (1, 1, 1, 1)
