"""``clasp connector``: configure connectors (instances of the connector types plugins register)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlmodel import select

from core.cli.state import CliError, actor, parse_pairs, run_with_runtime
from core.runtime import Runtime

SET_HELP = "A setting as KEY=VALUE (repeatable). See `clasp plugins` for each type's settings."
SECRET_HELP = (
    "A setting whose value is prompted for without echo, or read as one line from standard input when "
    "that is not a terminal (repeatable): keeps secrets out of shell history and `ps`."
)


def read_secrets(keys: tuple[str, ...], pairs: dict[str, str]) -> dict[str, str]:
    """Add ``--secret KEY`` values to the ``--set`` pairs: prompted (terminal) or one line each from stdin."""
    out = dict(pairs)
    for key in keys:
        if key in out:
            raise CliError(f"{key} is given both with --set and --secret")
        if sys.stdin.isatty():
            value = click.prompt(key, hide_input=True, err=True)
        else:
            line = sys.stdin.readline()
            if not line:
                raise CliError(f"--secret {key}: nothing left to read on standard input")
            value = line.rstrip("\r\n")
        out[key] = value
    return out


@click.group()
def connector() -> None:
    """Add, configure, enable, disable and remove connectors."""


@connector.command("add")
@click.argument("kind", metavar="TYPE")
@click.option("--name", required=True, help="A unique name for this connector, e.g. 'Downtown Lightspeed'.")
@click.option("--set", "values", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--secret", "secret_keys", multiple=True, metavar="KEY", help=SECRET_HELP)
@click.option("--disabled", is_flag=True, help="Create it disabled (no scheduled syncs until enabled).")
def add(kind: str, name: str, values: tuple[str, ...], secret_keys: tuple[str, ...], disabled: bool) -> None:
    """Add a connector of connector type TYPE (e.g. lightspeed_r); secrets are stored encrypted."""
    from core import audit
    from core.connectors import ConnectorError, add_connector, coerce_cli_values

    pairs = read_secrets(secret_keys, parse_pairs(values, "--set"))
    name = name.strip()
    if not name:
        raise CliError("--name must not be empty")

    async def go(rt: Runtime) -> tuple[int, str]:
        try:
            ctype = rt.registry.connector_type(kind)
        except KeyError as exc:
            raise ConnectorError(str(exc.args[0])) from None
        coerced = coerce_cli_values(ctype.settings_model, pairs)
        async with rt.db.transaction() as session:
            row = await add_connector(rt, session, type_name=kind, name=name, values=coerced)
            row.enabled = not disabled
            await audit.record(
                session,
                "connector.add",
                actor=actor(),
                target_type="connector",
                target_id=row.id,
                # Setting names only: values may be secrets, and the row holds them anyway.
                details={"type": row.type, "name": row.name, "settings": sorted(pairs), "enabled": row.enabled},
            )
            assert row.id is not None
            return row.id, row.type

    connector_id, type_name = run_with_runtime(go)
    click.echo(f"Added connector {name!r} (id {connector_id}, type {type_name}).")


@connector.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(as_json: bool) -> None:
    """List configured connectors."""
    from core.models import Connector

    async def go(rt: Runtime) -> list[dict[str, Any]]:
        async with rt.db.session() as session:
            rows = (await session.exec(select(Connector).order_by(Connector.id))).all()  # type: ignore[arg-type]
            return [_summary(c) for c in rows]

    rows = run_with_runtime(go)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No connectors yet. Add one with `clasp connector add TYPE --name NAME --set KEY=VALUE`.")
        return
    table = Table("id", "name", "type", "kind", "enabled", "state", "last success", "next sync", box=None)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["type"],
            r["kind"],
            "yes" if r["enabled"] else "no",
            r["state"] + (f" ({r['state_message']})" if r["state_message"] else ""),
            r["last_success_at"] or "never",
            r["next_sync_at"] or "-",
        )
    Console(soft_wrap=True).print(table)


def _summary(c: Any) -> dict[str, Any]:
    from core.export import iso_datetime

    return {
        "id": c.id,
        "name": c.name,
        "type": c.type,
        "kind": c.kind,
        "enabled": c.enabled,
        "state": c.state,
        "state_message": c.state_message,
        "last_success_at": iso_datetime(c.last_success_at),
        "next_sync_at": iso_datetime(c.next_sync_at),
        "created_at": iso_datetime(c.created_at),
    }


@connector.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(name: str, as_json: bool) -> None:
    """Show one connector and its settings (secrets masked)."""
    from core.connectors import get_connector, masked_settings

    async def go(rt: Runtime) -> dict[str, Any]:
        async with rt.db.session() as session:
            row = await get_connector(session, name)
            if row.type not in rt.registry.connector_types:
                # The plugin was uninstalled: the plain settings are still worth seeing.
                return {**_summary(row), "settings": {**row.settings, "(secrets)": "type not installed"}}
            return {**_summary(row), "settings": masked_settings(rt, row)}

    data = run_with_runtime(go)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for key in ("id", "name", "type", "kind", "enabled", "state", "state_message", "last_success_at", "next_sync_at"):
        click.echo(f"{key}: {data[key] if data[key] is not None else '-'}")
    click.echo("settings:")
    for key, value in data["settings"].items():
        click.echo(f"  {key}: {'-' if value is None else value}")


@connector.command("set")
@click.argument("name")
@click.option("--set", "values", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--secret", "secret_keys", multiple=True, metavar="KEY", help=SECRET_HELP)
def set_(name: str, values: tuple[str, ...], secret_keys: tuple[str, ...]) -> None:
    """Change settings of connector NAME; settings not given keep their value."""
    from core import audit
    from core.connectors import coerce_cli_values, get_connector, update_settings

    pairs = read_secrets(secret_keys, parse_pairs(values, "--set"))
    if not pairs:
        raise CliError("nothing to change: give --set KEY=VALUE or --secret KEY")

    async def go(rt: Runtime) -> str:
        async with rt.db.transaction() as session:
            row = await get_connector(session, name)
            ctype = rt.registry.connector_type(row.type)
            await update_settings(rt, session, row, coerce_cli_values(ctype.settings_model, pairs))
            await audit.record(
                session,
                "connector.settings",
                actor=actor(),
                target_type="connector",
                target_id=row.id,
                details={"name": row.name, "settings": sorted(pairs)},
            )
            return row.name

    updated = run_with_runtime(go)
    click.echo(f"Updated {', '.join(sorted(pairs))} of connector {updated!r}.")


def _toggle(name: str, enabled: bool) -> None:
    from core import audit
    from core.connectors import get_connector
    from core.models import utcnow

    async def go(rt: Runtime) -> tuple[str, bool]:
        async with rt.db.transaction() as session:
            row = await get_connector(session, name)
            changed = row.enabled != enabled
            if changed:
                row.enabled = enabled
                row.updated_at = utcnow()
                session.add(row)
                await audit.record(
                    session,
                    "connector.enable" if enabled else "connector.disable",
                    actor=actor(),
                    target_type="connector",
                    target_id=row.id,
                    details={"name": row.name},
                )
            return row.name, changed

    shown, changed = run_with_runtime(go)
    word = "enabled" if enabled else "disabled"
    click.echo(f"Connector {shown!r} {word}." if changed else f"Connector {shown!r} was already {word}.")


@connector.command()
@click.argument("name")
def enable(name: str) -> None:
    """Enable connector NAME (scheduled syncs resume)."""
    _toggle(name, True)


@connector.command()
@click.argument("name")
def disable(name: str) -> None:
    """Disable connector NAME (no scheduled syncs; its data stays)."""
    _toggle(name, False)


@connector.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def remove(name: str, yes: bool) -> None:
    """Remove connector NAME with its checkpoints, sync history, error queue and external references.

    Unified clients, sales and outreach stay; they simply lose their link to this connector.
    """
    from core import audit
    from core.connectors import get_connector, remove_connector
    from core.models import utcnow

    async def lookup(rt: Runtime) -> tuple[int, str, str]:
        async with rt.db.session() as session:
            row = await get_connector(session, name)
            assert row.id is not None
            return row.id, row.name, row.type

    connector_id, shown, type_name = run_with_runtime(lookup)
    if not yes:
        click.confirm(
            f"Remove connector {shown!r} ({type_name}) with its checkpoints, sync history, error queue and "
            "external references?",
            abort=True,
            err=True,
        )

    async def go(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            row = await get_connector(session, connector_id)
            if row.lease_expires_at is not None and row.lease_expires_at > utcnow():
                raise CliError(
                    f"connector {shown!r} is syncing right now ({row.lease_owner}); try again when it is done"
                )
            await audit.record(
                session,
                "connector.remove",
                actor=actor(),
                target_type="connector",
                target_id=row.id,
                details={"name": row.name, "type": row.type},
            )
            await remove_connector(session, row)

    run_with_runtime(go)
    click.echo(f"Removed connector {shown!r}.")


@connector.command()
@click.argument("name")
def check(name: str) -> None:
    """Test the connection of connector NAME with its stored settings."""
    from core.connectors import context_for, get_connector

    async def go(rt: Runtime) -> tuple[bool, str]:
        async with rt.db.session() as session:
            row = await get_connector(session, name)
        ctype = rt.registry.connector_type(row.type)
        result = await ctype.check(context_for(rt, row))
        return result.ok, result.message

    ok, message = run_with_runtime(go)
    if not ok:
        raise CliError(f"check failed: {message}")
    click.echo(f"OK: {message}")
