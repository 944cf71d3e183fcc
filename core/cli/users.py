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


def echo_warnings(email: str, warnings: list[str]) -> None:
    for warning in warnings:
        click.echo(f"warning: {email}: {warning}", err=True)


async def describe(session: AsyncSession, role: str, location_ids: list[int], associate_id: int | None) -> str:
    """ ", linked to Ann Lee (Downtown, downtown:12), at Downtown": what the user now sees."""
    from core.models import Location
    from core.users import associate_options

    parts = []
    if associate_id is not None:
        parts.append(f"linked to {(await associate_options(session, [associate_id]))[0].label}")
    if role != "owner":
        names = [(await session.get(Location, loc_id)).name for loc_id in location_ids]  # type: ignore[union-attr]
        parts.append(f"at {', '.join(names)}")
    return "".join(f", {p}" for p in parts)


async def said_changes(session: AsyncSession, changes: dict[str, list[Any]]) -> list[str]:
    """ "role associate → manager", "locations Downtown → Downtown, Uptown", "associate none → Ann Lee (…)"."""
    from core.models import Location
    from core.users import associate_options

    async def shown(key: str, value: Any) -> str:
        if key == "location_ids":
            names = [(await session.get(Location, i)).name for i in value]  # type: ignore[union-attr]
            return ", ".join(names) or "none"
        if key == "associate_id":
            return (await associate_options(session, [value]))[0].label if value is not None else "none"
        if key == "active":
            return "yes" if value else "no"
        return str(value) or "none"

    labels = {"location_ids": "locations", "associate_id": "associate"}
    return [
        f"{labels.get(key, key)} {await shown(key, old)} → {await shown(key, new)}"
        for key, (old, new) in changes.items()
    ]


ASSOCIATE_HELP = (
    "The POS associate whose clients this user sees: an external id (CONNECTOR:ID if two POS share it), "
    "#ID, or the name (either order, any case or accents)."
)


@user.command()
@click.argument("email")
@click.option(
    "--role", type=click.Choice(ROLES), required=True, help="owner: everything; manager / associate: their locations."
)
@click.option(
    "--location",
    "locations",
    multiple=True,
    metavar="ID_OR_NAME",
    help="A location this user works at (repeatable; default: the linked associate's).",
)
@click.option("--associate", "associate", metavar="EXTERNAL_ID_OR_NAME", help=ASSOCIATE_HELP)
@click.option("--name", default="", help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def add(
    email: str, role: str, locations: tuple[str, ...], associate: str | None, name: str, password_stdin: bool
) -> None:
    """Add a user who signs in with EMAIL."""
    from core.users import create_user, find_associate, location_ids_of, user_warnings, validate_user_email

    validate_user_email(email)  # before the password prompt: a typo should not cost a password
    password = read_password(password_stdin)

    async def go(rt: Runtime) -> tuple[int, str, str, list[str]]:
        async with rt.db.transaction() as session:
            location_ids = await resolve_locations(session, locations)
            associate_id = (await find_associate(session, associate)).id if associate is not None else None
            row = await create_user(
                session,
                email=email,
                password=password,
                role=role,
                name=name,
                location_ids=location_ids,
                associate_id=associate_id,
                audit_actor={"actor": actor()},
            )
            assert row.id is not None
            location_ids = await location_ids_of(session, row.id)
            warnings = await user_warnings(
                session, role=role, location_ids=location_ids, associate_id=associate_id, user_id=row.id
            )
            return row.id, row.email, await describe(session, role, location_ids, associate_id), warnings

    user_id, normalised, described, warnings = run_with_runtime(go)
    click.echo(f"Added {role} {normalised} (id {user_id}){described}.")
    echo_warnings(normalised, warnings)


@user.command()
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), help="A new role.")
@click.option(
    "--location", "locations", multiple=True, metavar="ID_OR_NAME", help="Replace the locations (repeatable)."
)
@click.option("--add-location", "add_locations", multiple=True, metavar="ID_OR_NAME", help="Add a location.")
@click.option("--remove-location", "remove_locations", multiple=True, metavar="ID_OR_NAME", help="Remove a location.")
@click.option("--associate", "associate", metavar="EXTERNAL_ID_OR_NAME", help=ASSOCIATE_HELP)
@click.option("--no-associate", is_flag=True, help="Remove the link to a POS associate.")
@click.option("--name", default=None, help="A new display name.")
@click.option("--activate/--deactivate", "active", default=None, help="Let the user sign in, or stop them at once.")
def edit(
    email: str,
    role: str | None,
    locations: tuple[str, ...],
    add_locations: tuple[str, ...],
    remove_locations: tuple[str, ...],
    associate: str | None,
    no_associate: bool,
    name: str | None,
    active: bool | None,
) -> None:
    """Change the role, locations, associate link, name or access of the user with EMAIL."""
    from core.models import User
    from core.users import edit_user, find_associate, validate_user_email

    if associate is not None and no_associate:
        raise CliError("--associate and --no-associate contradict each other: choose one")
    address = validate_user_email(email)

    async def go(rt: Runtime) -> tuple[list[str], list[str], str]:
        async with rt.db.transaction() as session:
            row = (await session.exec(select(User).where(col(User.email) == address).with_for_update())).first()
            if row is None:
                raise CliError(f"no user with email {address}")
            result = await edit_user(
                session,
                row,
                audit_actor={"actor": actor()},
                name=name,
                role=role,
                location_ids=await resolve_locations(session, locations) if locations else None,
                add_locations=await resolve_locations(session, add_locations),
                remove_locations=await resolve_locations(session, remove_locations),
                associate_id=(await find_associate(session, associate)).id if associate is not None else None,
                unlink_associate=no_associate,
                active=active,
            )
            location_ids = result.changes.get("location_ids", [None, None])[1]
            if location_ids is None:
                from core.users import location_ids_of

                location_ids = await location_ids_of(session, row.id or 0)
            said = await said_changes(session, result.changes)
            return said, result.warnings, await describe(session, row.role, location_ids, row.associate_id)

    said, warnings, described = run_with_runtime(go)
    if said:
        click.echo(f"Updated {address}: {'; '.join(said)}. Now {described.lstrip(', ') or 'an owner'}.")
    else:
        click.echo(f"Nothing to change for {address}.")
    echo_warnings(address, warnings)


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List users with their roles and locations."""
    from core.export import iso_datetime
    from core.models import Location, User, UserLocation
    from core.users import UNLINKED_WARNING, associate_options

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
            linked = {
                o.id: o for o in await associate_options(session, [u.associate_id for u in users if u.associate_id])
            }
        by_user: dict[int, list[dict[str, Any]]] = {}
        for user_id, loc_id, loc_name in links:
            by_user.setdefault(user_id, []).append({"id": loc_id, "name": loc_name})

        def associate_of(u: User) -> dict[str, Any] | None:
            option = linked.get(u.associate_id or 0)
            if option is None:
                return None
            return {"id": option.id, "name": option.name, "location": option.location_name,
                    "external_ids": option.external_ids}  # fmt: skip

        return [
            {
                "id": u.id,
                "email": u.email,
                "name": u.name,
                "role": u.role,
                "active": u.active,
                "locations": by_user.get(u.id or 0, []),
                "associate": associate_of(u),
                "warnings": [UNLINKED_WARNING] if u.role == "associate" and u.associate_id is None else [],
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
    table = Table("id", "email", "name", "role", "locations", "associate", "active", "last login", box=None)
    for r in rows:
        link = r["associate"]
        table.add_row(
            str(r["id"]),
            r["email"],
            r["name"],
            r["role"],
            ", ".join(loc["name"] for loc in r["locations"]) or ("all" if r["role"] == "owner" else "-"),
            f"{link['name']} ({', '.join(link['external_ids']) or '#' + str(link['id'])})"
            if link
            else ("NOT LINKED: they will see an empty book" if r["warnings"] else "-"),
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
