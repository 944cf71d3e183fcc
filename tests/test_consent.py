"""The consent ledger: purposes, which row wins, POS evidence from the Lightspeed sandbox, CSV import,
and the automations' reach and dry run agreeing with the real send (both backends)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from core.automations.evaluate import evaluate
from core.automations.review import dry_run, history, reach
from core.models import Client, ClientContact, Consent, ExternalRef, Outreach
from core.outreach.consent import current_consent, record_consent, record_for_number
from core.outreach.sender import flush
from core.runtime import Runtime
from core.settings import Settings
from tests.automations.fixtures import World, automation_runtime, build_world, setup, utc

# ------------------------------------------------------------------------------------ the ledger


async def _client(rt: Runtime, phone: str = "+12125550100") -> int:
    async with rt.db.transaction() as s:
        c = Client(first_name="Ivy", last_name="Ledger")
        s.add(c)
        await s.flush()
        s.add(ClientContact(client_id=c.id, kind="phone", value=phone, is_primary=True))  # type: ignore[arg-type]
        return c.id  # type: ignore[return-value]


async def _status(rt: Runtime, cid: int, channel: str = "sms", purpose: str = "marketing") -> str:
    async with rt.db.session() as s:
        return await current_consent(s, cid, channel, purpose)


async def test_consent_is_per_channel_and_purpose_and_the_latest_row_wins(rt: Runtime) -> None:
    cid = await _client(rt)
    assert await _status(rt, cid) == "unknown"
    async with rt.db.transaction() as s:
        await record_consent(s, cid, "sms", "opted_in", source="t", source_kind="in_store", at=utc("2026-01-01T10:00"))
        await record_consent(s, cid, "email", "opted_out", source="t", source_kind="in_store",
                             at=utc("2026-01-02T10:00"))
    assert await _status(rt, cid) == "opted_in"
    assert await _status(rt, cid, "sms", "transactional") == "unknown"  # another purpose
    assert await _status(rt, cid, "email") == "opted_out"
    assert await _status(rt, cid, "mms") == "opted_in"  # a picture message is a text
    async with rt.db.transaction() as s:
        await record_consent(s, cid, "sms", "opted_out", source="t", source_kind="in_store",
                             at=utc("2026-02-01T10:00"))
        # Recorded later but about an earlier moment (an import of an old list): time order decides.
        await record_consent(s, cid, "sms", "opted_in", source="t", source_kind="import", at=utc("2025-06-01T10:00"))
    assert await _status(rt, cid) == "opted_out"
    with pytest.raises(ValueError, match="purpose"):
        async with rt.db.transaction() as s:
            await record_consent(s, cid, "sms", "opted_in", source="t", purpose="gossip")


async def test_stop_is_never_lifted_by_the_pos_an_import_or_the_store_only_by_start(rt: Runtime) -> None:
    cid = await _client(rt, "+12125550101")
    async with rt.db.transaction() as s:
        await record_consent(s, cid, "sms", "opted_in", source="Contact", source_kind="pos_flag",
                             at=utc("2026-01-01T10:00"), overrides_opt_out=True)
        ids = await record_for_number(s, "+12125550101", "opted_out", source="sms:STOP", source_kind="keyword")
        assert ids == [cid]
    assert await _status(rt, cid) == await _status(rt, cid, "sms", "transactional") == "opted_out"
    async with rt.db.transaction() as s:
        for kind in ("pos_flag", "import", "in_store", "web_form"):
            await record_consent(s, cid, "sms", "opted_in", source="later", source_kind=kind, overrides_opt_out=True)
    assert await _status(rt, cid) == "opted_out"
    async with rt.db.transaction() as s:
        await record_for_number(s, "+12125550101", "opted_in", source="sms:START", source_kind="keyword")
    assert await _status(rt, cid) == await _status(rt, cid, "sms", "transactional") == "opted_in"


async def test_a_pos_opt_in_lifts_an_in_store_opt_out_only_when_its_policy_says_so(rt: Runtime) -> None:
    cid = await _client(rt, "+12125550102")
    async with rt.db.transaction() as s:
        await record_consent(s, cid, "email", "opted_out", source="panel", source_kind="in_store",
                             at=utc("2026-01-01T10:00"))
        await record_consent(s, cid, "email", "opted_in", source="Contact.noEmail", source_kind="pos_flag",
                             at=utc("2026-01-02T10:00"))
    assert await _status(rt, cid, "email") == "opted_out"
    async with rt.db.transaction() as s:
        await record_consent(s, cid, "email", "opted_in", source="Contact.noEmail", source_kind="pos_flag",
                             overrides_opt_out=True, at=utc("2026-01-03T10:00"))
    assert await _status(rt, cid, "email") == "opted_in"
    # "No permission" from the POS withdraws what the POS gave, never what a person recorded.
    async with rt.db.transaction() as s:
        await record_consent(s, cid, "call", "opted_in", source="panel", source_kind="in_store",
                             at=utc("2026-01-01T10:00"))
        await record_consent(s, cid, "call", "unknown", source="Contact.noPhone", source_kind="pos_flag",
                             at=utc("2026-01-02T10:00"))
        await record_consent(s, cid, "email", "unknown", source="Contact.noEmail", source_kind="pos_flag",
                             at=utc("2026-01-04T10:00"))
    assert await _status(rt, cid, "call") == "opted_in"
    assert await _status(rt, cid, "email") == "unknown"


# ------------------------------------------------------------------------ Lightspeed R evidence


async def _ledger(rt: Runtime) -> list[Consent]:
    async with rt.db.session() as s:
        return list((await s.exec(select(Consent).order_by(col(Consent.id)))).all())


async def test_lightspeed_flags_and_fields_become_ledger_rows_once(rt: Runtime) -> None:
    from core.sync import run_sync
    from tests.lightspeed_r.fixtures import add_lightspeed_connector, authorize, serve_sandbox

    with serve_sandbox(shops=2, clients=40, years=1, sales_per_day=0.2, seed=5) as server:
        ctx = await add_lightspeed_connector(rt, server, name="ls-consent", history_years=1)
        await authorize(ctx)
        truth = server.truth
        assert truth["customers_text_opt_in"] > 0 and truth["customers_email_ok"] > 0
        run = await run_sync(rt, "ls-consent", full=True)
        assert run.status == "succeeded", run.message
        rows = await _ledger(rt)
        assert rows and {r.source_kind for r in rows} == {"pos_flag"}
        assert all(r.connector_id == ctx.connector_id and r.recorded_by == f"connector:{ctx.connector_id}"
                   for r in rows)
        texts = [r for r in rows if r.channel == "sms"]
        # Every customer record with "Text Opt-In" ticked gave its client a text opt-in (two records of
        # one person merge into one client, so compare clients).
        async with rt.db.session() as s:
            refs = {r.external_id: r.unified_id for r in (await s.exec(
                select(ExternalRef).where(ExternalRef.object_type == "client"))).all()}
            merged = {c.id: c.merged_into_id for c in (await s.exec(select(Client))).all()}

        def survivor(cid: int) -> int:
            while merged.get(cid):
                cid = merged[cid]  # type: ignore[assignment]
            return cid

        customers = server.app.state.sandbox.ds.customers
        ticked = {survivor(refs[str(k)]) for k, c in customers.items()
                  if any(v["name"] == "Text Opt-In" and v["value"] == "true" for v in c.get("CustomFieldValues", []))}
        assert {r.client_id for r in texts if r.status == "opted_in"} == ticked
        assert all(r.wording and "STOP" in r.wording for r in texts if r.status == "opted_in")
        # A set noEmail (Lightspeed's default) is no permission, so it records nothing on its own.
        assert not [r for r in rows if r.status == "unknown"]
        assert not [r for r in rows if r.status == "opted_out"]
        emails = {r.client_id for r in rows if r.channel == "email"}
        assert emails and len(emails) < len({survivor(v) for v in refs.values()})

        # A full re-read of unchanged customers appends nothing.
        again = await run_sync(rt, "ls-consent", full=True)
        assert again.status == "succeeded", again.message
        assert len(await _ledger(rt)) == len(rows)

        # The till unticks a client's text opt-in: one row withdraws it; the other flags are unchanged.
        persons = list(truth["person_of_customer"].values())
        customer_id, _ = next((k, c) for k, c in customers.items() if survivor(refs[str(k)]) in ticked
                              and not c["archived"] and persons.count(truth["person_of_customer"][str(k)]) == 1)
        client_id = survivor(refs[str(customer_id)])
        server.admin("PATCH", f"/_sandbox/customers/{customer_id}", {"custom": {"Text Opt-In": ""}})
        third = await run_sync(rt, "ls-consent")
        assert third.status == "succeeded", third.message
        new = (await _ledger(rt))[len(rows):]
        assert [(r.client_id, r.channel, r.status) for r in new] == [(client_id, "sms", "unknown")]
        assert await _status(rt, client_id) == "unknown"
        # Ticked again: one opt-in row; the email flag rows are untouched.
        server.admin("PATCH", f"/_sandbox/customers/{customer_id}", {"custom": {"Text Opt-In": "true"}})
        assert (await run_sync(rt, "ls-consent")).status == "succeeded"
        assert [(r.channel, r.status) for r in (await _ledger(rt))[len(rows) + 1:]] == [("sms", "opted_in")]
        assert await _status(rt, client_id) == "opted_in"


async def test_a_pos_never_lifts_a_stop_and_respects_an_in_store_opt_out(rt: Runtime) -> None:
    from core.sync import run_sync
    from tests.lightspeed_r.fixtures import add_lightspeed_connector, authorize, serve_sandbox

    with serve_sandbox(shops=1, clients=12, years=1, sales_per_day=0.1, seed=3) as server:
        ctx = await add_lightspeed_connector(rt, server, name="ls-stop", history_years=1,
                                             consent_overrides_opt_out=True)
        await authorize(ctx)
        assert (await run_sync(rt, "ls-stop", full=True)).status == "succeeded"
        customers = server.app.state.sandbox.ds.customers
        customer_id = next(k for k, c in customers.items() if c["Contact"]["Phones"] and c["Contact"]["Emails"]
                           and not c["archived"])
        async with rt.db.session() as s:
            ref = (await s.exec(select(ExternalRef).where(
                ExternalRef.object_type == "client", ExternalRef.external_id == str(customer_id)))).one()
            client = await s.get(Client, ref.unified_id)
            while client.merged_into_id:  # type: ignore[union-attr]
                client = await s.get(Client, client.merged_into_id)  # type: ignore[union-attr]
            phone = (await s.exec(select(ClientContact.value).where(
                ClientContact.client_id == client.id, ClientContact.kind == "phone"))).first()  # type: ignore[union-attr]
        cid = client.id  # type: ignore[union-attr]
        async with rt.db.transaction() as s:
            await record_for_number(s, phone, "opted_out", source="sms:STOP", source_kind="keyword")  # type: ignore[arg-type]
        server.admin("PATCH", f"/_sandbox/customers/{customer_id}",
                     {"custom": {"Text Opt-In": "true"}, "noEmail": False})
        assert (await run_sync(rt, "ls-stop")).status == "succeeded"
        assert await _status(rt, cid) == "opted_out"  # STOP stands, whatever the policy says
        assert await _status(rt, cid, "email") == "opted_in"  # the override policy lets email through


# -------------------------------------------------------------------------------- CSV import


async def test_csv_import_matches_reports_bad_rows_and_is_idempotent(rt: Runtime, clasp_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ann = await _client(rt, "+13125550177")
    async with rt.db.transaction() as s:
        s.add(ClientContact(client_id=ann, kind="email", value="ann@example.com"))
    file = tmp_path / "optins.csv"
    file.write_text(
        "Email,Phone,Channel,Purpose,Status,Recorded_At,Wording\n"
        ",(312) 555-0177,sms,marketing,yes,2025-03-01T12:00:00Z,Text me offers. Reply STOP to stop.\n"
        "ANN@Example.com,,email,,opted_in,2025-03-02,Email me news\n"
        "nobody@example.com,,email,,opted_in,,\n"
        ",not a phone,sms,,yes,,\n"
        "ann@example.com,,carrier pigeon,,yes,,\n"
        "ann@example.com,,email,,maybe,,\n"
    )
    dry = clasp_cli("consent", "import", str(file), "--dry-run")
    assert dry.returncode == 1, dry.stderr
    assert "would record 2 consent(s)" in dry.stdout and "4 problem(s)" in dry.stdout
    for line in ("line 4:", "line 5:", "line 6:", "line 7:"):
        assert line in dry.stderr
    assert "no client with nobody@example.com" in dry.stderr and "carrier pigeon" in dry.stderr
    assert await _ledger(rt) == []
    first = clasp_cli("consent", "import", str(file))
    assert "recorded 2 consent(s)" in first.stdout, first.stderr
    rows = await _ledger(rt)
    assert {(r.client_id, r.channel, r.status, r.source_kind) for r in rows} == {
        (ann, "sms", "opted_in", "import"), (ann, "email", "opted_in", "import")}
    sms = next(r for r in rows if r.channel == "sms")
    assert sms.wording == "Text me offers. Reply STOP to stop." and sms.recorded_at == utc("2025-03-01T12:00")
    assert await _status(rt, ann) == "opted_in"
    second = clasp_cli("consent", "import", str(file))
    assert "recorded 0 consent(s), 2 already imported" in second.stdout
    assert len(await _ledger(rt)) == 2


# --------------------------------------------------------------- reach, dry run and the real send


@pytest.fixture
async def art(settings: Settings, db: object) -> AsyncIterator[Runtime]:
    runtime = automation_runtime(settings)
    yield runtime
    await runtime.close()


@pytest.fixture
async def world(art: Runtime) -> World:
    return await build_world(art)


async def test_reach_dry_run_and_the_real_send_agree_and_history_shows_why(
    art: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.twilio.fixtures import add_twilio, closed_port_url, serve_sandbox

    monkeypatch.setenv("CLASP_BASE_URL", closed_port_url())
    await setup(art, "birthday", action="send", settings={"send_time": "10:00"})
    # 10:00 in New York: ann (opted in) and dan (no consent) are due; cleo's Tokyo birthday fell due
    # at 01:00 UTC (caught up), but it is 23:00 there now.
    now = utc("2026-07-01T14:00")
    r = await reach(art, "birthday", now=now)
    # Six live clients; zed has no birthday, dan no consent; Tokyo (23:00) and LA (07:00) are in quiet
    # hours: cleo and ben are reachable, their texts wait.
    assert (r.population, r.reachable, r.waiting) == (6, 4, 2)
    assert r.reasons == {"no_date": 1, "no_consent": 1}
    nyc = await reach(art, "birthday", now=now, location_ids=[world.locations["nyc"]])
    assert (nyc.population, nyc.reachable, nyc.reasons) == (4, 2, {"no_date": 1, "no_consent": 1})

    run = await dry_run(art, "birthday", now=now)
    assert (run.created, run.would_send, run.would_wait, run.would_skip) == (3, 1, 1, 1)
    assert run.skip_reasons == {"no_consent": 1}
    assert "1 would be sent" in run.summary() and "no text consent on record: 1" in run.summary()
    outcomes = {s.client_id: (s.outcome, s.reason) for s in run.samples}
    assert outcomes[world.clients["ann"]][0] == "send"
    assert outcomes[world.clients["cleo"]][0] == "defer" and "quiet hours" in outcomes[world.clients["cleo"]][1]
    assert outcomes[world.clients["dan"]] == (
        "skip", "no marketing consent on record (the client has not opted in to texts)")

    with serve_sandbox() as sandbox:
        await add_twilio(art, sandbox)
        real = (await evaluate(art, now=now, names=["birthday"]))[0]
        assert real.created == run.created
        report = await flush(art, now=now)
        assert len(report.sent) == run.would_send and len(report.skipped) == run.would_skip
        assert len(report.deferred) == run.would_wait
        assert [m["to"] for m in sandbox.messages(direction="outbound-api")] == ["+12125550134"]
    async with art.db.session() as s:
        past = await history(s, "birthday")
        dan = next(row for row in past.recent if row["client_id"] == world.clients["dan"])
        assert dan["state"] == "skipped" and outcomes[world.clients["dan"]][1] == dan["state_reason"]
    # Ann was just texted: for the next day she is held back by the frequency cap, and says so.
    later = await reach(art, "birthday", now=now + timedelta(hours=1))
    assert later.reasons.get("frequency_cap") == 1 and later.reachable == 3


async def test_in_store_opt_in_then_the_birthday_text_goes_out(art: Runtime, world: World) -> None:
    now = utc("2026-07-01T14:00")
    await setup(art, "birthday", action="send", settings={"send_time": "10:00"})
    async with art.db.transaction() as s:
        await record_consent(s, world.clients["dan"], "sms", "opted_in", source="panel", source_kind="in_store",
                             recorded_by="maya@store.test", wording="Yes, text me.", at=now - timedelta(minutes=5))
    run = await dry_run(art, "birthday", now=now)
    assert (run.created, run.would_send, run.would_wait, run.would_skip) == (3, 2, 1, 0)
    async with art.db.session() as s:
        n = (await s.exec(select(func.count()).select_from(Outreach))).one()
    assert n == 0  # a dry run writes nothing
