"""Identity resolution through its public functions, on the real database of every backend."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import col, select

from core.db import Database
from core.identity import (
    IdentitySettings,
    MergeError,
    duplicates_report,
    ingest_clients,
    merge_clients,
    save_identity_settings,
    unmerge,
)
from core.models import (
    ChangeFeed,
    Client,
    ClientContact,
    ClientMerge,
    Connector,
    Consent,
    ExternalRef,
    Location,
    Outreach,
    Sale,
    Task,
)
from core.plugin import ClientRecord, ContactRecord

STORE_PHONE = "(212) 555-0199"
DUMPED = ("client", "client_contact", "external_ref", "sale", "outreach", "task", "consent")


async def _setup(db: Database, n: int = 3, *, types: tuple[str, ...] = ()) -> list[tuple[int, dict[str, int]]]:
    """``n`` connectors, each with one US location (with the store's phone); (connector id, location map)."""
    out = []
    async with db.transaction() as s:
        for i in range(n):
            ctype = types[i] if i < len(types) else "lightspeed_r"
            conn = Connector(type=ctype, kind="pos", name=f"pos-{i}")
            loc = Location(name=f"Store {i}", timezone="America/New_York", country="US", phone=STORE_PHONE)
            s.add_all([conn, loc])
            await s.flush()
            assert conn.id is not None and loc.id is not None
            out.append((conn.id, {f"shop-{i}": loc.id}))
    return out


def _rec(ext: str, first: str = "", last: str = "", *contacts: str, **kw: Any) -> ClientRecord:
    items = [ContactRecord(kind="email" if "@" in c else "phone", value=c) for c in contacts]
    return ClientRecord(external_id=ext, first_name=first, last_name=last, contacts=items, **kw)


async def _ingest(db: Database, conn: tuple[int, dict[str, int]], *records: ClientRecord):  # type: ignore[no-untyped-def]
    async with db.transaction() as s:
        return await ingest_clients(
            s, connector_id=conn[0], records=list(records), location_ids=conn[1], origin=f"connector:{conn[0]}"
        )


async def _settings(db: Database, **values: Any) -> None:
    async with db.transaction() as s:
        await save_identity_settings(s, IdentitySettings(**values))


async def _live_clients(db: Database) -> list[Client]:
    async with db.session() as s:
        stmt = select(Client).where(col(Client.merged_into_id).is_(None)).order_by(Client.id)
        return list((await s.exec(stmt)).all())


async def _contacts(db: Database, client_id: int) -> list[tuple[str, str, bool]]:
    async with db.session() as s:
        stmt = select(ClientContact).where(ClientContact.client_id == client_id)
        return sorted((c.kind, c.value, c.unusable) for c in (await s.exec(stmt)).all())


async def _dump(db: Database) -> dict[str, list[dict[str, Any]]]:
    async with db.session() as s:
        out = {}
        for table in DUMPED:
            rows = (await s.exec(text(f"SELECT * FROM {table} ORDER BY id"))).mappings().all()  # type: ignore[call-overload]
            out[table] = [dict(r) for r in rows]
        return out


async def _feed(db: Database) -> list[ChangeFeed]:
    async with db.session() as s:
        return list((await s.exec(select(ChangeFeed).order_by(ChangeFeed.id))).all())


async def test_same_person_at_three_locations_is_one_client(db: Database) -> None:
    conns = await _setup(db)
    r1 = await _ingest(db, conns[0], _rec("a-1", "Jane", "Doe", "Jane.Doe@Example.com ", "(212) 555-0134"))
    r2 = await _ingest(db, conns[1], _rec("b-7", " Jane ", "Doe", "jane.doe@example.com", "+1 212-555-0134"))
    r3 = await _ingest(db, conns[2], _rec("c-9", "Jane", "Doe", "2125550134"))
    assert r1[0].created and not r2[0].created and not r3[0].created
    clients = await _live_clients(db)
    assert len(clients) == 1
    client = clients[0]
    assert {r1[0].client_id, r2[0].client_id, r3[0].client_id} == {client.id}
    assert (client.first_name, client.last_name) == ("Jane", "Doe")
    assert await _contacts(db, client.id) == [
        ("email", "jane.doe@example.com", False),
        ("phone", "+12125550134", False),
    ]
    async with db.session() as s:
        refs = (await s.exec(select(ExternalRef.connector_id, ExternalRef.external_id, ExternalRef.unified_id))).all()
    assert sorted(refs) == sorted(
        [(conns[0][0], "a-1", client.id), (conns[1][0], "b-7", client.id), (conns[2][0], "c-9", client.id)]
    )
    raw = {c.raw for c in await _contact_rows(db, client.id)}
    assert raw == {"Jane.Doe@Example.com ", "(212) 555-0134"}


async def _contact_rows(db: Database, client_id: int) -> list[ClientContact]:
    async with db.session() as s:
        return list((await s.exec(select(ClientContact).where(ClientContact.client_id == client_id))).all())


async def test_a_record_linking_two_clients_merges_them_in_sql(db: Database) -> None:
    conns = await _setup(db)
    a = await _ingest(db, conns[0], _rec("a", "Jane", "Doe", "jane@example.org"))
    b = await _ingest(db, conns[1], _rec("b", "Jane", "Doe", "(212) 555-0134"))
    assert a[0].client_id != b[0].client_id
    c = await _ingest(db, conns[2], _rec("c", "Jane", "Doe", "JANE@example.org", "212.555.0134"))
    clients = await _live_clients(db)
    assert [cl.id for cl in clients] == [a[0].client_id]
    assert c[0].client_id == a[0].client_id
    async with db.session() as s:
        merges = list((await s.exec(select(ClientMerge))).all())
        absorbed = await s.get(Client, b[0].client_id)
    assert [(m.survivor_id, m.absorbed_id, m.reason) for m in merges] == [
        (a[0].client_id, b[0].client_id, "rule:phone")
    ]
    assert absorbed is not None and absorbed.merged_into_id == a[0].client_id
    feed = [(f.entity_id, f.op) for f in await _feed(db) if f.op == "merge"]
    assert feed == [(a[0].client_id, "merge"), (b[0].client_id, "merge")]


async def test_people_sharing_junk_values_are_not_merged(db: Database) -> None:
    conns = await _setup(db, 2)
    await _ingest(db, conns[0], _rec("1", "Ann", "Smith", "noemail@none.com", STORE_PHONE))
    await _ingest(db, conns[0], _rec("2", "Bob", "Jones", "NoEmail@None.com", "212-555-0199", "n/a"))
    await _ingest(db, conns[1], _rec("3", "Cy", "Young", "test@test.com", "000-000-0000", "555-555-5555"))
    await _ingest(db, conns[1], _rec("4", "Di", "Prince", "test@test.com", "123-456-7890"))
    clients = await _live_clients(db)
    assert [c.first_name for c in clients] == ["Ann", "Bob", "Cy", "Di"]
    # Kept for the record, never usable for matching or messaging.
    assert await _contacts(db, clients[0].id) == [("email", "noemail@none.com", True), ("phone", "+12125550199", True)]
    async with db.session() as s:
        report = await duplicates_report(s)
    junk = {(g.key, tuple(g.client_ids)) for g in report if g.reason == "shared_junk"}
    assert ("noemail@none.com", (clients[0].id, clients[1].id)) in junk
    assert ("+12125550199", (clients[0].id, clients[1].id)) in junk
    assert ("test@test.com", (clients[2].id, clients[3].id)) in junk


async def test_junk_list_and_store_phones_from_settings(db: Database) -> None:
    conns = await _setup(db, 1)
    await _settings(db, junk_emails=["Front.Desk@Jeweler.com"], junk_phones=["(646) 555-0100"])
    await _ingest(db, conns[0], _rec("1", "Ann", "A", "front.desk@jeweler.com", "646-555-0100"))
    await _ingest(db, conns[0], _rec("2", "Bob", "B", "FRONT.DESK@JEWELER.COM", "+16465550100"))
    assert len(await _live_clients(db)) == 2


async def test_merge_then_unmerge_restores_every_row(db: Database) -> None:
    conns = await _setup(db, 2)
    await _settings(db, on_match="create")
    one = (
        await _ingest(
            db,
            conns[0],
            _rec(
                "1",
                "Jane",
                "Doe",
                "jane@example.org",
                "(212) 555-0134",
                birthday=date(1980, 5, 17),
                note="likes pearls",
            ),
        )
    )[0].client_id
    two = (
        await _ingest(
            db,
            conns[1],
            _rec(
                "2",
                "Janet",
                "Doe",
                "jane@example.org",
                "janet@example.net",
                anniversary=date(2001, 9, 8),
                address={"city": "NYC"},
                custom_fields={"ring_size": "6"},
            ),
        )
    )[0].client_id
    async with db.transaction() as s:
        loc = (await s.exec(select(Location.id))).first()
        s.add_all(
            [
                Sale(location_id=loc, client_id=two, status="completed", currency="USD", total_minor=129900),
                Sale(location_id=loc, client_id=one, status="completed", currency="USD", total_minor=5000),
                Outreach(client_id=two, body="Hi Janet"),
                Task(client_id=two, title="Call about the ring"),
                Consent(client_id=two, channel="sms", status="opted_in", source="pos"),
            ]
        )
    before = await _dump(db)
    async with db.transaction() as s:
        merge = await merge_clients(s, one, two, actor="user:1")
        merge_id = merge.id
    during = await _dump(db)
    assert during != before
    assert {r["client_id"] for r in during["sale"] + during["outreach"] + during["task"] + during["consent"]} == {one}
    assert {r["unified_id"] for r in during["external_ref"]} == {one}
    merged = next(r for r in during["client"] if r["id"] == one)
    assert merged["anniversary"] is not None and merged["first_name"] == "Janet"  # the more recent record
    assert sorted(r["value"] for r in during["client_contact"]) == sorted(
        ["jane@example.org", "+12125550134", "janet@example.net"]
    )
    assert next(r for r in during["client"] if r["id"] == two)["merged_into_id"] == one
    async with db.transaction() as s:
        await unmerge(s, merge_id, actor="user:1")  # type: ignore[arg-type]
    assert await _dump(db) == before
    feed = [(f.entity_id, f.op) for f in await _feed(db) if f.op in ("merge", "unmerge")]
    assert feed == [(one, "merge"), (two, "merge"), (one, "unmerge"), (two, "unmerge")]
    async with db.transaction() as s:
        with pytest.raises(MergeError):
            await unmerge(s, merge_id, actor="user:1")  # type: ignore[arg-type]


async def test_unmerged_pair_is_not_merged_again(db: Database) -> None:
    conns = await _setup(db, 2)
    one = (await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@example.org")))[0].client_id
    async with db.transaction() as s:
        s.add(Client(first_name="Jane", last_name="Roe"))
        await s.flush()
    other = (await _live_clients(db))[1].id
    async with db.transaction() as s:
        merge = await merge_clients(s, one, other, actor="user:1")
        await unmerge(s, merge.id, actor="user:1")  # type: ignore[arg-type]
    # The second client now gains the first one's email from a POS: a person said they differ.
    async with db.transaction() as s:
        s.add(ExternalRef(connector_id=conns[1][0], object_type="client", external_id="2", unified_id=other))
    res = await _ingest(db, conns[1], _rec("2", "Jane", "Roe", "jane@example.org"))
    assert res[0].client_id == other
    assert len(await _live_clients(db)) == 2


async def test_on_match_create_never_merges(db: Database) -> None:
    conns = await _setup(db, 2)
    await _settings(db, on_match="create")
    a = await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@example.org"))
    b = await _ingest(db, conns[1], _rec("2", "Jane", "Doe", "Jane@Example.org"))
    assert a[0].created and b[0].created and a[0].client_id != b[0].client_id
    async with db.session() as s:
        report = await duplicates_report(s)
    assert [(g.reason, g.key, g.client_ids) for g in report if g.reason == "shared_email"] == [
        ("shared_email", "jane@example.org", [a[0].client_id, b[0].client_id])
    ]


async def test_match_keys_setting(db: Database) -> None:
    conns = await _setup(db, 2)
    await _settings(db, match_keys=["email"])
    a = await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "(212) 555-0134"))
    b = await _ingest(db, conns[1], _rec("2", "Jane", "Doe", "2125550134"))
    assert a[0].client_id != b[0].client_id


async def test_cluster_size_cap(db: Database) -> None:
    conns = await _setup(db, 3)
    await _settings(db, cluster_size_cap=2)
    ids = [(await _ingest(db, c, _rec(f"x{i}", "Pat", "Lee", "family@example.org")))[0] for i, c in enumerate(conns)]
    assert ids[0].client_id == ids[1].client_id != ids[2].client_id
    assert ids[2].created and "cluster size cap" in ids[2].warnings[0]
    async with db.session() as s:
        report = await duplicates_report(s)
    assert ("shared_email", "family@example.org", sorted({ids[0].client_id, ids[2].client_id})) in [
        (g.reason, g.key, g.client_ids) for g in report
    ]


async def test_cluster_cap_stops_a_chain_merge(db: Database) -> None:
    conns = await _setup(db, 3)
    await _settings(db, on_match="create")
    a = (await _ingest(db, conns[0], _rec("a", "A", "A", "a@example.org")))[0].client_id
    b = (await _ingest(db, conns[1], _rec("b", "B", "B", "a@example.org", "b@example.org")))[0].client_id
    await _settings(db, on_match="update", cluster_size_cap=2)
    # c attaches to b (one ref, under the cap); a-b-c is then a cluster of 3 records: not merged.
    c = (await _ingest(db, conns[2], _rec("c", "C", "C", "b@example.org")))[0].client_id
    assert c == b
    assert len(await _live_clients(db)) == 2
    await _settings(db, on_match="update", cluster_size_cap=3)
    await _ingest(db, conns[2], _rec("c", "C", "C", "b@example.org", "c@example.org"))
    assert [cl.id for cl in await _live_clients(db)] == [a]


async def test_survivorship_by_priority_then_recency(db: Database) -> None:
    conns = await _setup(db, 3, types=("lightspeed_r", "lightspeed_x", "lightspeed_x"))
    hi, lo, lo2 = conns
    await _settings(db, source_priority=["lightspeed_r"])
    old, new, newer = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 6, 9))
    await _ingest(db, hi, _rec("h", "Janet", "Doe", "jane@example.org", updated_at=old))
    await _ingest(db, lo, _rec("l", "Jane", "Doe-Smith", "jane@example.org", updated_at=new, note="VIP"))
    (client,) = await _live_clients(db)
    assert client.first_name == "Janet"  # the priority source wins over a more recent one
    assert client.note == "VIP"  # the priority source had no note: any value beats none
    assert client.provenance["first_name"]["connector_id"] == hi[0]
    assert client.provenance["note"] == {
        "source": f"connector:{lo[0]}",
        "connector_id": lo[0],
        "ref": "l",
        "at": new.isoformat(),
    }
    # Among equals the most recent wins, whatever the arrival order.
    await _ingest(db, lo2, _rec("m", "Jane", "Doe", "jane@example.org", updated_at=newer, note="VVIP"))
    await _ingest(db, lo, _rec("l", "Jane", "Doe-Smith", "jane@example.org", updated_at=new, note="VIP!"))
    (client,) = await _live_clients(db)
    assert client.note == "VVIP" and client.provenance["note"]["ref"] == "m"
    assert client.last_name == "Doe"  # hi said Doe too... but lo2 is the most recent among the equals
    # The priority source changing its own value always applies.
    await _ingest(db, hi, _rec("h", "Janette", "Doe", "jane@example.org", updated_at=old))
    (client,) = await _live_clients(db)
    assert client.first_name == "Janette"


async def test_unchanged_reingest_writes_nothing(db: Database) -> None:
    conns = await _setup(db, 1)
    page = [
        _rec("1", "Jane", "Doe", "jane@example.org", "(212) 555-0134", birthday=date(1980, 5, 17)),
        _rec("2", "John", "Roe", "john@example.org"),
    ]
    first = await _ingest(db, conns[0], *page)
    before, feed = await _dump(db), await _feed(db)
    again = await _ingest(db, conns[0], *page)
    assert await _dump(db) == before
    assert len(await _feed(db)) == len(feed) == 2
    assert [(r.client_id, r.created, r.changed) for r in again] == [(r.client_id, False, {}) for r in first]


async def test_changed_record_writes_one_feed_row_with_the_changed_fields(db: Database) -> None:
    conns = await _setup(db, 1)
    cid = conns[0][0]
    await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@example.org", birthday=date(1980, 5, 17)))
    n = len(await _feed(db))
    res = await _ingest(
        db, conns[0], _rec("1", "Jane", "Doe-Smith", "jane@example.org", "(212) 555-0134", birthday=date(1980, 5, 17))
    )
    rows = (await _feed(db))[n:]
    assert len(rows) == 1
    row = rows[0]
    assert (row.entity, row.entity_id, row.op) == ("client", res[0].client_id, "update")
    assert row.changes == {"last_name": "Doe-Smith", "phones": ["+12125550134"]} == res[0].changed
    assert (row.origin, row.origin_connector_id) == (f"connector:{cid}", cid)


async def test_a_contact_the_source_removed_is_removed(db: Database) -> None:
    conns = await _setup(db, 2)
    a = await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@example.org", "old@example.org"))
    await _ingest(db, conns[1], _rec("2", "Jane", "Doe", "jane@example.org", "other@example.org"))
    res = await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@example.org"))
    assert res[0].changed == {"emails": ["jane@example.org", "other@example.org"]}
    assert [v for _, v, _ in await _contacts(db, a[0].client_id)] == ["jane@example.org", "other@example.org"]


async def test_bad_values_are_dropped_with_a_warning_not_the_client(db: Database) -> None:
    conns = await _setup(db, 1)
    res = await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@@example", "call her husband"))
    assert res[0].created and len(res[0].warnings) == 2
    assert await _contacts(db, res[0].client_id) == []


async def test_same_page_duplicates_and_home_location(db: Database) -> None:
    conns = await _setup(db, 1)
    ((loc_ext, loc_id),) = conns[0][1].items()
    res = await _ingest(
        db,
        conns[0],
        _rec("1", "Jane", "Doe", "jane@example.org", home_location_external_id=loc_ext),
        _rec("2", "Jane", "Doe", "JANE@example.org", "(212) 555-0134"),
        _rec("1", "Jane", "Doe", "jane@example.org", home_location_external_id=loc_ext),
    )
    assert res[0].created and not res[1].created and res[0].client_id == res[1].client_id == res[2].client_id
    assert res[2].changed == {}
    (client,) = await _live_clients(db)
    assert client.home_location_id == loc_id


async def test_duplicates_report_names_and_typos(db: Database) -> None:
    conns = await _setup(db, 2)
    a = await _ingest(db, conns[0], _rec("1", "Mary", "Major", "mary.major@gmail.com", birthday=date(1975, 2, 3)))
    b = await _ingest(db, conns[1], _rec("2", "MARY", "major", "mary.major@gmial.com", birthday=date(1975, 2, 3)))
    await _ingest(db, conns[1], _rec("3", "Mary", "Major", "mary.major@yahoo.com", birthday=date(1990, 1, 1)))
    async with db.session() as s:
        report = await duplicates_report(s)
    pairs = sorted((g.reason, g.client_ids) for g in report)
    ids = sorted([a[0].client_id, b[0].client_id])
    assert pairs == [("email_typo", ids), ("name_birthday", ids)]


async def test_manual_merge_refuses_nonsense(db: Database) -> None:
    conns = await _setup(db, 1)
    a = (await _ingest(db, conns[0], _rec("1", "A", "A", "a@example.org")))[0].client_id
    b = (await _ingest(db, conns[0], _rec("2", "B", "B", "b@example.org")))[0].client_id
    async with db.transaction() as s:
        with pytest.raises(MergeError):
            await merge_clients(s, a, a, actor="user:1")
        await merge_clients(s, a, b, actor="user:1")
        with pytest.raises(MergeError):
            await merge_clients(s, a, b, actor="user:1")


async def test_a_deleted_client_is_recreated_from_its_record(db: Database) -> None:
    conns = await _setup(db, 1)
    first = (await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@example.org", "(212) 555-0134")))[0].client_id
    async with db.transaction() as s:
        await s.exec(text("DELETE FROM client WHERE id = :id").bindparams(id=first))  # type: ignore[call-overload]
    res = await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@example.org", note="back"))
    assert res[0].created
    (client,) = await _live_clients(db)
    assert (client.id, client.note) == (res[0].client_id, "back")
    async with db.session() as s:
        refs = (await s.exec(select(ExternalRef.external_id, ExternalRef.unified_id))).all()
    assert list(refs) == [("1", client.id)]


async def test_manual_edits_rank_with_the_best_source(db: Database) -> None:
    from core.identity import manual_provenance

    conns = await _setup(db, 1)
    cid = (await _ingest(db, conns[0], _rec("1", "Jane", "Doe", updated_at=datetime(2026, 1, 1, tzinfo=UTC))))[0]
    async with db.transaction() as s:
        client = await s.get(Client, cid.client_id)
        assert client is not None
        client.last_name = "Doe-Smith"
        manual_provenance(client, {"last_name"}, "user:1")
        s.add(client)
    # A POS record last changed before the edit does not undo it; a later POS change wins.
    await _ingest(db, conns[0], _rec("1", "Jane", "Doe", note="x", updated_at=datetime(2026, 1, 2, tzinfo=UTC)))
    assert (await _live_clients(db))[0].last_name == "Doe-Smith"
    await _ingest(db, conns[0], _rec("1", "Jane", "Roe", updated_at=datetime(2099, 1, 1, tzinfo=UTC)))
    assert (await _live_clients(db))[0].last_name == "Roe"


async def test_archived_in_one_pos_only_is_not_archived(db: Database) -> None:
    conns = await _setup(db, 2)
    await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@example.org"))
    await _ingest(db, conns[1], _rec("2", "Jane", "Doe", "jane@example.org", archived=True))
    assert not (await _live_clients(db))[0].archived
    res = await _ingest(db, conns[0], _rec("solo", "Solo", "Client", "solo@example.org", archived=True))
    assert res[0].changed["archived"] is True


_spellings = st.tuples(
    st.sampled_from(["", " ", "  ", "\t"]),
    st.sampled_from([str.lower, str.upper, str.title]),
    st.sampled_from(["", " ", "\n"]),
)
_phone_formats = st.sampled_from(
    ["({a}) {b}-{c}", "+1 {a}-{b}-{c}", "{a}{b}{c}", "1.{a}.{b}.{c}", "+1 ({a}) {b} {c}", "tel:+1-{a}-{b}-{c}"]
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_any_spelling_of_one_person_resolves_to_one_client(db: Database, data: st.DataObject) -> None:
    async with db.session() as s:
        conns = [(c.id, {}) for c in (await s.exec(select(Connector).order_by(Connector.id))).all()]
    if not conns:
        conns = await _setup(db)
    async with db.session() as s:
        n = len((await s.exec(select(Client.id))).all())
    email, line = f"pat.{n}@example.org", f"{100 + n:04d}"  # 555-0100..0199: valid, fictional
    results = []
    for i, conn in enumerate(conns):
        pre, case, post = data.draw(_spellings)
        contacts = [pre + case(email) + post] if i != 1 else []
        contacts.append(data.draw(_phone_formats).format(a="646", b="555", c=line))
        results += await _ingest(db, conn, _rec(f"p{n}-{i}", "Pat", f"Lee{n}", *contacts))
    assert len({r.client_id for r in results}) == 1
    assert sum(r.created for r in results) == 1


async def test_concurrent_pages_of_two_connectors_do_not_duplicate_a_person(db: Database) -> None:
    import asyncio

    conns = await _setup(db, 2)

    async def page(conn: tuple[int, dict[str, int]], ext: str) -> None:
        async with db.transaction() as s:
            # Both transactions are open and have read before either writes.
            await s.exec(select(Client.id))
            await asyncio.sleep(0.05)
            await ingest_clients(
                s,
                connector_id=conn[0],
                records=[_rec(ext, "Jane", "Doe", "jane@example.org")],
                location_ids=conn[1],
                origin=f"connector:{conn[0]}",
            )
            await asyncio.sleep(0.05)

    await asyncio.gather(page(conns[0], "a"), page(conns[1], "b"))
    # PostgreSQL: the identity lock serialises the pages. SQLite: the second page's lookups ran before
    # the first committed, so it created the person again, and its cluster pass merged them.
    assert len(await _live_clients(db)) == 1


async def test_resolve_existing_applies_changed_rules(db: Database) -> None:
    from core.identity import resolve_existing

    conns = await _setup(db, 3)
    await _settings(db, on_match="create")
    for i, conn in enumerate(conns):
        await _ingest(db, conn, _rec(f"r{i}", "Jane", "Doe", "jane@example.org", "noemail@none.com"))
    await _ingest(db, conns[0], _rec("other", "Bob", "Roe", "noemail@none.com", "+1 646 555 0100"))
    assert len(await _live_clients(db)) == 4
    await _settings(db, on_match="update")
    async with db.transaction() as s:
        merged = await resolve_existing(s)
    clients = await _live_clients(db)
    assert [c.first_name for c in clients] == ["Jane", "Bob"]
    assert merged == {clients[0].id + 1: clients[0].id, clients[0].id + 2: clients[0].id}
    async with db.transaction() as s:
        assert await resolve_existing(s) == {}


async def test_unmerge_keeps_what_changed_after_the_merge(db: Database) -> None:
    conns = await _setup(db, 2)
    await _settings(db, on_match="create")
    one = (await _ingest(db, conns[0], _rec("1", "Jane", "Doe", "jane@example.org")))[0].client_id
    two = (await _ingest(db, conns[1], _rec("2", "Janet", "Doe", "janet@example.org", note="two's note")))[0].client_id
    async with db.transaction() as s:
        merge_id = (await merge_clients(s, one, two, actor="user:1")).id
    # After the merge, record 1 changes its last name and adds a phone.
    await _ingest(db, conns[0], _rec("1", "Jane", "Doe-Smith", "jane@example.org", "(212) 555-0134"))
    async with db.transaction() as s:
        await unmerge(s, merge_id, actor="user:1")  # type: ignore[arg-type]
    async with db.session() as s:
        survivor, absorbed = await s.get(Client, one), await s.get(Client, two)
    assert survivor is not None and absorbed is not None
    assert (survivor.first_name, survivor.last_name, survivor.note) == ("Jane", "Doe-Smith", None)
    assert (absorbed.first_name, absorbed.note, absorbed.merged_into_id) == ("Janet", "two's note", None)
    assert [v for _, v, _ in await _contacts(db, one)] == ["jane@example.org", "+12125550134"]
    assert [v for _, v, _ in await _contacts(db, two)] == ["janet@example.org"]
    # Record 2 still belongs to client two.
    res = await _ingest(db, conns[1], _rec("2", "Janet", "Doe", "janet@example.org", note="changed"))
    assert res[0].client_id == two


async def test_an_older_version_of_a_record_does_not_roll_values_back(db: Database) -> None:
    conns = await _setup(db, 1)
    new, old = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    await _ingest(db, conns[0], _rec("1", "Jane", "Doe-Smith", note="new", updated_at=new))
    # e.g. an error-queue replay of a payload stored before the newer one arrived
    res = await _ingest(db, conns[0], _rec("1", "Jane", "Doe", updated_at=old))
    assert res[0].changed == {}
    (client,) = await _live_clients(db)
    assert (client.last_name, client.note) == ("Doe-Smith", "new")
