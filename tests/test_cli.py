"""The ``clasp`` command line, run for real in a subprocess against the test backend's database."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import col, select

from core import migrate
from core.cli import build_cli, load_state
from core.connectors import load_settings
from core.db import Database
from core.models import Associate, AuditLog, Connector, ExternalRef, Location, User, UserLocation
from core.runtime import Runtime
from core.users import verify_password

ROOT = Path(__file__).resolve().parent.parent


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """A user mistake: non-zero exit, no traceback, exactly one line on stderr, starting `error:`."""
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    return proc.stdout


def walk(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            out.extend(walk(command, (*path, name)))
        else:
            out.append((*path, name))
    return out


def test_help_on_every_command() -> None:
    state = load_state()
    group = build_cli(state)
    paths = walk(group)
    expected = {
        ("demo",),
        ("serve",),
        ("worker",),
        ("db", "upgrade"),
        ("db", "downgrade"),
        ("db", "current"),
        ("plugins",),
        ("connector", "add"),
        ("connector", "list"),
        ("connector", "show"),
        ("connector", "set"),
        ("connector", "enable"),
        ("connector", "disable"),
        ("connector", "remove"),
        ("sync",),
        ("errors", "list"),
        ("errors", "replay"),
        ("export",),
        ("user", "add"),
        ("user", "edit"),
        ("sandbox",),
    }
    assert expected <= set(paths)
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(group, [*path, "--help"], obj=state, prog_name="clasp")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: clasp" in result.output, path
        # Every command explains itself: a summary line, not just the usage.
        summary = result.output.split("\n\n")[1].strip()
        assert len(summary) > 10, (path, result.output)
    # And the real console entry point, once.
    proc = subprocess.run([sys.executable, "-m", "core.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "connector" in proc.stdout and not proc.stderr, proc


async def test_connector_round_trip_stores_secrets_encrypted(clasp_cli, rt: Runtime, db: Database) -> None:  # type: ignore[no-untyped-def]
    secret = "s3cret-client-value-98765"
    out = ok(
        clasp_cli(
            "connector", "add", "lightspeed_r", "--name", "Downtown",
            "--set", "client_id=abc", "--set", f"client_secret={secret}", "--set", "history_years=3",
        )
    )  # fmt: skip
    assert "Downtown" in out
    listed = json.loads(ok(clasp_cli("connector", "list", "--json")))
    assert [(c["name"], c["type"], c["kind"], c["enabled"]) for c in listed] == [
        ("Downtown", "lightspeed_r", "pos", True)
    ]
    shown = ok(clasp_cli("connector", "show", "Downtown"))
    assert secret not in shown
    assert "client_secret: ••••8765" in shown
    assert "history_years: 3" in shown
    # A secret can come from standard input instead of the command line (shell history, `ps`).
    ok(clasp_cli("connector", "set", "Downtown", "--set", "history_years=7", "--set", "writeback=true",
                 "--secret", "refresh_token", input="rt-from-stdin-4321\n"))  # fmt: skip
    ok(clasp_cli("connector", "disable", "Downtown"))

    async with db.session() as s:
        row = (await s.exec(select(Connector))).one()
        assert row.enabled is False
        assert row.settings["history_years"] == 7 and row.settings["writeback"] is True
        assert "client_secret" not in row.settings
        assert row.secrets and secret not in row.secrets
        # Nowhere in the raw row either (JSON columns, text columns, any backend).
        raw = (await s.exec(text("SELECT * FROM connector"))).one()  # type: ignore[call-overload]
        assert secret not in repr(tuple(raw))

        # The secret survived the settings update (secrets not given keep their value).
        stored = load_settings(rt, row)
        assert stored.client_secret.get_secret_value() == secret
        assert stored.refresh_token.get_secret_value() == "rt-from-stdin-4321"
        assert "rt-from-stdin-4321" not in repr(tuple(raw))

    ok(clasp_cli("connector", "enable", "Downtown"))
    ok(clasp_cli("connector", "remove", "Downtown", "--yes"))

    async with db.session() as s:
        assert (await s.exec(select(Connector))).all() == []
        actions = [a.action for a in (await s.exec(select(AuditLog).order_by(AuditLog.id))).all()]  # type: ignore[arg-type]
        actors = {a.actor for a in (await s.exec(select(AuditLog))).all()}
    assert actions == [
        "connector.add",
        "connector.settings",
        "connector.disable",
        "connector.enable",
        "connector.remove",
    ]
    assert all(a.startswith("cli:") for a in actors)


async def test_connector_mistakes_are_one_line(clasp_cli, db: Database) -> None:  # type: ignore[no-untyped-def]
    line = one_error_line(clasp_cli("connector", "add", "lightspeed_r", "--name", "x", "--set", "history_years=lots"))
    assert "history_years" in line
    assert "--set" in one_error_line(clasp_cli("connector", "add", "lightspeed_r", "--name", "x", "--set", "oops"))
    line = one_error_line(clasp_cli("connector", "add", "square_pos", "--name", "x"))
    assert "square_pos" in line and "lightspeed_r" in line
    assert "Nowhere" in one_error_line(clasp_cli("connector", "show", "Nowhere"))
    # Usage mistakes too: one line pointing at the help.
    line = one_error_line(clasp_cli("connector", "add", "lightspeed_r"))
    assert "--name" in line and "--help" in line
    async with db.session() as s:
        assert (await s.exec(select(Connector))).all() == []


async def test_db_current_upgrade_downgrade(clasp_cli, db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    head = migrate.head_revision()
    assert head is not None
    try:
        assert ok(clasp_cli("db", "current")).startswith(f"{head} (up to date)")
        assert "Downgraded" in ok(clasp_cli("db", "downgrade", "base", "--yes"))
        assert await migrate.current(db) is None
        assert "out of date" in ok(clasp_cli("db", "current"))
        if settings.database_url:
            # A shared server is upgraded on purpose: commands refuse to run on an old schema.
            line = one_error_line(clasp_cli("connector", "list"))
            assert "clasp db upgrade" in line
            assert "Upgraded" in ok(clasp_cli("db", "upgrade"))
        else:
            # The embedded SQLite default upgrades itself.
            proc = clasp_cli("connector", "list")
            ok(proc)
            assert "Upgraded the embedded database schema" in proc.stderr
        assert await migrate.current(db) == head
        assert "locate revision" in one_error_line(clasp_cli("db", "upgrade", "nonsense"))
    finally:
        await migrate.upgrade(db)


def test_plugins_lists_builtins_with_kinds_and_hooks(clasp_cli, settings) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(ok(clasp_cli("plugins", "--json")))
    plugins = {p["name"]: p for p in data["plugins"]}
    assert {"pos_lightspeed_r", "pos_lightspeed_x", "sms_twilio", "catalog_vendors", "crm_salesforce", "admin"} <= set(
        plugins
    )
    assert all(p["version"] for p in plugins.values())
    assert "clasp_register_connector_types" in plugins["pos_lightspeed_r"]["hooks"]
    types = {c["name"]: c for c in data["connector_types"]}
    assert {name: c["kind"] for name, c in types.items()} == {
        "lightspeed_r": "pos",
        "lightspeed_x": "pos",
        "twilio": "messaging",
        "vendor_catalog": "catalog",
        "salesforce": "crm",
    }
    assert "sync" in types["lightspeed_r"]["capabilities"]
    assert "client_secret" in types["lightspeed_r"]["secret_settings"]
    assert types["lightspeed_r"]["plugin"] == "pos_lightspeed_r"
    human = ok(clasp_cli("plugins"))
    for name in ("admin", "lightspeed_r", "twilio", "clasp_register_connector_types"):
        assert name in human


async def test_user_add(clasp_cli, db: Database) -> None:  # type: ignore[no-untyped-def]
    async with db.transaction() as s:
        downtown, uptown = Location(name="Downtown"), Location(name="Uptown")
        s.add_all([downtown, uptown])
        await s.flush()
        downtown_id, uptown_id = downtown.id, uptown.id

    ok(clasp_cli("user", "add", "Owner@Example.COM", "--role", "owner", "--name", "Olive", "--password-stdin",
                 input="correct horse battery\n"))  # fmt: skip
    ok(clasp_cli("user", "add", "mgr@example.com", "--role", "manager", "--location", "downtown",
                 "--location", str(uptown_id), "--password-stdin", input="manager-pass-1\n"))  # fmt: skip
    assert "already exists" in one_error_line(
        clasp_cli("user", "add", "owner@example.com", "--role", "owner", "--password-stdin", input="another-pass\n")
    )
    assert "invalid email" in one_error_line(
        clasp_cli("user", "add", "not-an-email", "--role", "owner", "--password-stdin", input="another-pass\n")
    )
    # The product's own test domain (the demo signs in as demo@clasp.local) is an address like any other.
    ok(clasp_cli("user", "add", "Manager@Clasp.Local", "--role", "manager", "--location", "Uptown",
                 "--password-stdin", input="manager-pass-2\n"))  # fmt: skip
    assert "Midtown" in one_error_line(
        clasp_cli(
            "user",
            "add",
            "a@example.com",
            "--role",
            "associate",
            "--location",
            "Midtown",
            "--password-stdin",
            input="another-pass\n",
        )
    )
    # No terminal and no --password-stdin: refuse rather than hang or invent a password.
    assert "--password-stdin" in one_error_line(clasp_cli("user", "add", "b@example.com", "--role", "owner", input=""))

    async with db.session() as s:
        users = {u.email: u for u in (await s.exec(select(User))).all()}
        assert set(users) == {"owner@example.com", "mgr@example.com", "manager@clasp.local"}
        assert users["owner@example.com"].role == "owner" and users["owner@example.com"].name == "Olive"
        assert verify_password(users["owner@example.com"].password_hash, "correct horse battery")
        assert verify_password(users["mgr@example.com"].password_hash, "manager-pass-1")
        links = (
            await s.exec(select(UserLocation.location_id).where(UserLocation.user_id == users["mgr@example.com"].id))
        ).all()
        assert sorted(links) == sorted([downtown_id, uptown_id])
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "user.create"))).all()
        assert len(audit) == 3 and all(a.actor.startswith("cli:") for a in audit)



async def _two_stores_of_associates(db: Database) -> dict[str, int]:
    """Downtown and Uptown, two POS connectors, and associates with namesakes and a shared external id."""
    async with db.transaction() as s:
        downtown, uptown = Location(name="Downtown"), Location(name="Uptown")
        s.add_all([downtown, uptown])
        await s.flush()
        dt_pos = Connector(type="lightspeed_r", kind="pos", name="downtown-pos", settings={})
        up_pos = Connector(type="lightspeed_x", kind="pos", name="uptown-pos", settings={})
        renee = Associate(location_id=downtown.id, first_name="Renée", last_name="García")
        ann_dt = Associate(location_id=downtown.id, first_name="Ann", last_name="Lee")
        ann_up = Associate(location_id=uptown.id, first_name="Ann", last_name="Lee")
        s.add_all([dt_pos, up_pos, renee, ann_dt, ann_up])
        await s.flush()
        for connector, associate, ext in ((dt_pos, renee, "12"), (dt_pos, ann_dt, "7"), (up_pos, ann_up, "7")):
            s.add(ExternalRef(connector_id=connector.id, object_type="associate", external_id=ext,
                              unified_id=associate.id))  # fmt: skip
        ids = {"downtown": downtown.id, "uptown": uptown.id, "renee": renee.id, "ann_dt": ann_dt.id,
               "ann_up": ann_up.id}  # fmt: skip
    return ids  # type: ignore[return-value]


async def _user(db: Database, email: str) -> tuple[User, list[int]]:
    async with db.session() as s:
        row = (await s.exec(select(User).where(User.email == email))).one()
        locations = (await s.exec(select(UserLocation.location_id).where(UserLocation.user_id == row.id))).all()
    return row, sorted(locations)


async def test_user_add_links_the_pos_associate(clasp_cli, db: Database) -> None:  # type: ignore[no-untyped-def]
    ids = await _two_stores_of_associates(db)

    def add(email: str, *args: str) -> subprocess.CompletedProcess[str]:
        return clasp_cli("user", "add", email, "--role", "associate", *args, "--password-stdin", input="assoc-pass-1\n")

    # By name, in the other order, without the accents or the case: linked, and working at her store.
    out = ok(add("renee@clasp.local", "--associate", "garcia RENEE"))
    assert "linked to Renée García (Downtown, downtown-pos:12)" in out and "at Downtown" in out
    renee, locations = await _user(db, "renee@clasp.local")
    assert renee.associate_id == ids["renee"] and locations == [ids["downtown"]]
    # Namesakes, or one external id in two POS: an error naming every candidate, and nothing written.
    by_name = one_error_line(add("ann@example.com", "--associate", "ann lee"))
    assert "2 associates are named" in by_name and "Downtown, downtown-pos:7" in by_name
    assert "Uptown, uptown-pos:7" in by_name
    by_id = one_error_line(add("ann@example.com", "--associate", "7"))
    assert "CONNECTOR:ID" in by_id and "downtown-pos:7" in by_id and "uptown-pos:7" in by_id
    unknown = one_error_line(add("ann@example.com", "--associate", "Ann Smith"))
    assert "no associate matches 'Ann Smith'" in unknown and "did you mean" in unknown and "Ann Lee" in unknown
    async with db.session() as s:
        assert (await s.exec(select(User).where(User.email == "ann@example.com"))).first() is None
    # CONNECTOR:ID settles it (any case for the connector's name).
    out = ok(add("ann@example.com", "--associate", "Uptown-POS:7"))
    ann, locations = await _user(db, "ann@example.com")
    assert ann.associate_id == ids["ann_up"] and locations == [ids["uptown"]]
    # An explicit --location wins over the associate's store; linking outside it is said.
    proc = add("ann2@example.com", "--associate", "#" + str(ids["ann_dt"]), "--location", "Uptown")
    assert proc.returncode == 0 and "not one of this user's locations" in proc.stderr
    # No link: allowed, and the owner is told exactly what the associate will see.
    proc = add("nolink@example.com", "--location", "Downtown")
    assert proc.returncode == 0 and "not linked to a POS associate — they will see an empty book" in proc.stderr
    async with db.session() as s:
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "user.create"))).all()
    assert {a.details["associate_id"] for a in audit} == {ids["renee"], ids["ann_up"], ids["ann_dt"], None}

    listed = {row["email"]: row for row in json.loads(ok(clasp_cli("user", "list", "--json")))}
    assert listed["renee@clasp.local"]["associate"] == {
        "id": ids["renee"], "name": "Renée García", "location": "Downtown", "external_ids": ["downtown-pos:12"]
    }  # fmt: skip
    assert listed["nolink@example.com"]["associate"] is None
    assert listed["nolink@example.com"]["warnings"] == ["not linked to a POS associate — they will see an empty book"]
    assert "NOT LINKED" in ok(clasp_cli("user", "list"))


async def test_user_edit(clasp_cli, db: Database) -> None:  # type: ignore[no-untyped-def]
    ids = await _two_stores_of_associates(db)
    ok(clasp_cli("user", "add", "boss@example.com", "--role", "owner", "--password-stdin", input="owner-pass-1\n"))
    ok(clasp_cli("user", "add", "Renee@Clasp.local", "--role", "associate", "--associate", "12",
                 "--password-stdin", input="assoc-pass-1\n"))  # fmt: skip

    # Promoted to manager of both stores: the role and the locations change together.
    out = ok(clasp_cli("user", "edit", "renee@clasp.local", "--role", "manager",
                       "--location", "Downtown", "--location", "uptown"))  # fmt: skip
    assert "role associate → manager" in out and "locations Downtown → Downtown, Uptown" in out
    renee, locations = await _user(db, "renee@clasp.local")
    assert renee.role == "manager" and locations == sorted([ids["downtown"], ids["uptown"]])
    ok(clasp_cli("user", "edit", "renee@clasp.local", "--remove-location", "Downtown", "--name", "Renée G."))
    renee, locations = await _user(db, "renee@clasp.local")
    assert locations == [ids["uptown"]] and renee.name == "Renée G."
    # A manager needs a store; --associate and --no-associate together make no sense: refused, unchanged.
    assert "at least one location" in one_error_line(
        clasp_cli("user", "edit", "renee@clasp.local", "--remove-location", "Uptown")
    )
    assert "contradict" in one_error_line(
        clasp_cli("user", "edit", "renee@clasp.local", "--associate", "12", "--no-associate")
    )
    assert "no user with email" in one_error_line(clasp_cli("user", "edit", "nobody@example.com", "--name", "X"))
    assert (await _user(db, "renee@clasp.local"))[1] == [ids["uptown"]]

    # Back to associate, unlinked: allowed, with the warning; then linked to her Uptown namesake's record.
    proc = clasp_cli("user", "edit", "renee@clasp.local", "--role", "associate", "--no-associate")
    assert proc.returncode == 0 and "not linked to a POS associate — they will see an empty book" in proc.stderr
    assert (await _user(db, "renee@clasp.local"))[0].associate_id is None
    out = ok(clasp_cli("user", "edit", "renee@clasp.local", "--associate", "uptown-pos:7"))
    assert "associate none → Ann Lee (Uptown, uptown-pos:7)" in out
    assert (await _user(db, "renee@clasp.local"))[0].associate_id == ids["ann_up"]
    assert "Nothing to change" in ok(clasp_cli("user", "edit", "renee@clasp.local", "--associate", "uptown-pos:7"))

    # Deactivated and back; the only owner cannot lock everyone out.
    ok(clasp_cli("user", "edit", "renee@clasp.local", "--deactivate"))
    assert not (await _user(db, "renee@clasp.local"))[0].active
    ok(clasp_cli("user", "edit", "renee@clasp.local", "--activate"))
    assert "only active owner" in one_error_line(clasp_cli("user", "edit", "boss@example.com", "--role", "manager",
                                                           "--location", "Downtown"))  # fmt: skip
    assert "only active owner" in one_error_line(clasp_cli("user", "edit", "boss@example.com", "--deactivate"))

    async with db.session() as s:
        edits = (await s.exec(select(AuditLog).where(AuditLog.action == "user.edit").order_by(AuditLog.id))).all()
        toggled = col(AuditLog.action).in_(["user.activate", "user.deactivate"])
        toggles = (await s.exec(select(AuditLog.action).where(toggled))).all()
    assert len(edits) == 6 and all(e.actor.startswith("cli:") for e in edits)
    assert edits[0].details["changes"] == {
        "role": ["associate", "manager"],
        "location_ids": [[ids["downtown"]], sorted([ids["downtown"], ids["uptown"]])],
    }
    assert edits[3].details["changes"] == {"associate_id": [None, ids["ann_up"]]}
    assert sorted(toggles) == ["user.activate", "user.deactivate"]


PLUGIN = textwrap.dedent(
    '''
    import click
    from core.plugin import Sandbox, hookimpl


    def greeter(greeting="hello", times=1):
        async def app(scope, receive, send):
            assert scope["type"] == "http"
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": " ".join([greeting] * times).encode()})

        return app


    @hookimpl
    def clasp_register_sandboxes(register):
        register(Sandbox(name="greeter", app_factory=greeter, description="Says hello", connector_type="greeting"))


    @hookimpl
    def clasp_register_commands(cli):
        @cli.command()
        def hello():
            """Say hello from a plugin."""
            click.echo("hello from a plugin")

        @cli.command()
        def boom():
            """Fail in a way nobody planned for."""
            raise RuntimeError("kaboom")
    '''
)


def test_plugin_commands_and_unexpected_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cli_test_plugin.py").write_text(PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASP_")}
    env.update(PYTHONPATH=str(tmp_path), CLASP_DATA_DIR=str(tmp_path / "data"), CLASP_PLUGINS="cli_test_plugin")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core.cli", *args], capture_output=True, text=True, cwd=ROOT, env={**env, **extra}
        )

    assert ok(run("hello")).strip() == "hello from a plugin"
    line = one_error_line(run("boom"))
    assert "RuntimeError: kaboom" in line and "--debug" in line
    debug = run("--debug", "boom")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "kaboom" in debug.stderr

    # Its sandbox: listed, and served with options (JSON values where they parse, strings otherwise).
    assert ok(run("sandbox")).strip() == "greeter (for greeting): Says hello"
    assert "no sandbox named 'nope'" in one_error_line(run("sandbox", "nope"))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "sandbox", "greeter", "--port", str(port),
         "--option", "greeting=hey", "--option", "times=2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        body = _wait_for(f"http://127.0.0.1:{port}/", proc).text
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert body == "hey hey"
    assert proc.returncode == 0 and f"http://127.0.0.1:{port}" in out and "Traceback" not in err, err

    # A plugin that cannot be loaded: one clear line, and the rest of the command line still works.
    proc = run("--help", CLASP_PLUGINS="no_such_plugin_module")
    assert proc.returncode == 0 and "Commands:" in proc.stdout and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "no_such_plugin_module" in proc.stderr
    # ... but a command that needs the plugins says why it cannot run (after the warning line).
    proc = run("plugins", CLASP_PLUGINS="no_such_plugin_module")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: ")


def test_unreachable_servers_are_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASP_")}
    env.update(CLASP_DATA_DIR=str(tmp_path), CLASP_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core.cli", *args], capture_output=True, text=True, cwd=ROOT, env={**env, **extra}
        )

    line = one_error_line(run("connector", "list"))
    assert "cannot reach the database" in line and "127.0.0.1:1" in line
    line = one_error_line(run("db", "current"))
    assert "cannot reach the database" in line
    # Redis down: the worker says so instead of retrying forever (embedded SQLite for the database,
    # which upgrades itself first and says so on a line of its own).
    env.pop("CLASP_DATABASE_URL")
    proc = run("worker", CLASP_REDIS_URL="redis://127.0.0.1:1/0")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = proc.stderr.splitlines()[-1]
    assert line.startswith("error: cannot reach Redis") and "127.0.0.1:1" in line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()}")
        try:
            resp = httpx.get(url, timeout=2)
            if resp.status_code == 200:
                return resp
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"not up in time: {proc.communicate()}")


def _wait_healthy(url: str, proc: subprocess.Popen[str]) -> dict:  # type: ignore[type-arg]
    return _wait_for(url + "/healthz", proc).json()


def _popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ},
    )


@pytest.mark.slow
async def test_serve_and_demo_start_and_stop_cleanly(db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    serve = _popen("serve", "--port", str(port))
    try:
        health = _wait_healthy(f"http://127.0.0.1:{port}", serve)
        assert health["ok"] is True
    finally:
        serve.terminate()
        out, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err
    assert "Traceback" not in err

    port = _free_port()
    env_password = "demo-password-123"
    os.environ["CLASP_DEMO_PASSWORD"] = env_password
    try:
        demo = _popen("demo", "--port", str(port))
    finally:
        del os.environ["CLASP_DEMO_PASSWORD"]
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", demo)
        async with db.session() as s:
            owner = (await s.exec(select(User))).one()
        assert owner.email == "demo@clasp.local" and owner.role == "owner"
        assert verify_password(owner.password_hash, env_password)
    finally:
        demo.send_signal(2)  # Ctrl-C
        out, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out and "demo@clasp.local" in out and env_password in out
    assert "Ctrl-C" in out and "Traceback" not in err
