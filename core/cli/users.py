"""``clasp user``: panel users (owners, managers, associates) and their passwords."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.cli.state import CliError, actor, run_with_runtime
from core.models.org import ROLES
from core.runtime import Runtime


def read_password(password_stdin: bool) -> str:
    """From stdin (scripts), or prompted twice on a terminal; never from the command line."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: nothing was read from standard input")
        return password
    if not sys.stdin.isatty():
        raise CliError("no password: pipe it with --password-stdin, or run this in a terminal to be prompted")
    return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password", err=True)


async def resolve_locations(session: AsyncSession, values: tuple[str, ...]) -> list[int]:
    """Location ids from ids or names (case-insensitive); an unknown or ambiguous name is an error."""
    from core.models import Location

    ids: list[int] = []
    for value in values:
        value = value.strip()
        if value.isdigit() and await session.get(Location, int(value)) is not None:
            ids.append(int(value))
            continue
        matches = (await session.exec(select(Location).where(func.lower(col(Location.name)) == value.lower()))).all()
        if not matches:
            known = (await session.exec(select(Location.name).order_by(Location.name).limit(20))).all()
            hint = f" (locations: {', '.join(known)})" if known else " (there are no locations yet: sync a POS first)"
            raise CliError(f"no location {value!r}{hint}")
        if len(matches) > 1:
            ids_ = ", ".join(str(m.id) for m in matches)
            raise CliError(f"{len(matches)} locations are named {value!r}; use the id: {ids_}")
        assert matches[0].id is not None
        ids.append(matches[0].id)
    return list(dict.fromkeys(ids))


@click.group()
def user() -> None:
    """Add and list the people who sign in to the admin panel."""


@user.command()
@click.argument("email")
@click.option(
    "--role", type=click.Choice(ROLES), required=True, help="owner: everything; manager / associate: their locations."
)
@click.option(
    "--location", "locations", multiple=True, metavar="ID_OR_NAME", help="A location this user works at (repeatable)."
)
@click.option("--name", default="", help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def add(email: str, role: str, locations: tuple[str, ...], name: str, password_stdin: bool) -> None:
    """Add a user who signs in with EMAIL."""
    from core import audit
    from core.users import create_user

    password = read_password(password_stdin)

    async def go(rt: Runtime) -> tuple[int, str]:
        async with rt.db.transaction() as session:
            location_ids = await resolve_locations(session, locations)
            row = await create_user(
                session, email=email, password=password, role=role, name=name, location_ids=location_ids
            )
            await audit.record(
                session,
                "user.create",
                actor=actor(),
                target_type="user",
                target_id=row.id,
                details={"email": row.email, "role": role, "location_ids": location_ids},
            )
            assert row.id is not None
            return row.id, row.email

    user_id, normalised = run_with_runtime(go)
    click.echo(f"Added {role} {normalised} (id {user_id}).")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List users with their roles and locations."""
    from core.export import iso_datetime
    from core.models import Location, User, UserLocation

    async def go(rt: Runtime) -> list[dict[str, Any]]:
        async with rt.db.session() as session:
            users = (await session.exec(select(User).order_by(col(User.id)))).all()
            links = (
                await session.exec(
                    select(UserLocation.user_id, Location.id, Location.name).join(
                        Location, col(Location.id) == col(UserLocation.location_id)
                    )
                )
            ).all()
        by_user: dict[int, list[dict[str, Any]]] = {}
        for user_id, loc_id, loc_name in links:
            by_user.setdefault(user_id, []).append({"id": loc_id, "name": loc_name})
        return [
            {
                "id": u.id,
                "email": u.email,
                "name": u.name,
                "role": u.role,
                "active": u.active,
                "locations": by_user.get(u.id or 0, []),
                "last_login_at": iso_datetime(u.last_login_at),
            }
            for u in users
        ]

    rows = run_with_runtime(go)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("No users yet. Add one with `clasp user add EMAIL --role owner`.")
        return
    table = Table("id", "email", "name", "role", "locations", "active", "last login", box=None)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["email"],
            r["name"],
            r["role"],
            ", ".join(loc["name"] for loc in r["locations"]) or ("all" if r["role"] == "owner" else "-"),
            "yes" if r["active"] else "no",
            r["last_login_at"] or "never",
        )
    Console(soft_wrap=True).print(table)


@user.command()
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of standard input.")
def password(email: str, password_stdin: bool) -> None:
    """Set a new password for the user with EMAIL."""
    from core import audit
    from core.models import User
    from core.users import hash_password, normalise_email

    new_password = read_password(password_stdin)
    if len(new_password) < 8:
        raise CliError("passwords must be at least 8 characters")

    async def go(rt: Runtime) -> str:
        address = normalise_email(email)
        async with rt.db.transaction() as session:
            row = (await session.exec(select(User).where(col(User.email) == address))).first()
            if row is None:
                raise CliError(f"no user with email {address}")
            row.password_hash = hash_password(new_password)
            session.add(row)
            await audit.record(session, "user.password", actor=actor(), target_type="user", target_id=row.id)
            return row.email

    click.echo(f"Password of {run_with_runtime(go)} changed.")
