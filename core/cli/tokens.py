"""``clasp token``: API bearer tokens — create (shown once), list, revoke."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from core.cli.state import CliError, actor, run_with_runtime
from core.runtime import Runtime


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _short(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


@click.group()
def token() -> None:
    """API tokens for the JSON API (/api/v1). A token acts with its user's role and locations."""


@token.command()
@click.option("--user", "email", required=True, metavar="EMAIL", help="The user the token acts as.")
@click.option("--name", required=True, help="What uses the token (e.g. 'website sync').")
def create(email: str, name: str) -> None:
    """Create a token and print it once: it cannot be shown again.

    The token alone goes to stdout (so `TOKEN=$(clasp token create ...)` works); the rest to stderr.
    """
    from core.tokens import TokenError, create_token, user_by_email

    async def go(rt: Runtime) -> tuple[Any, str, str]:
        async with rt.db.transaction() as session:
            try:
                user = await user_by_email(session, email)
                row, plaintext = await create_token(session, user_id=user.id, name=name, actor=actor())  # type: ignore[arg-type]
            except TokenError as exc:
                raise CliError(str(exc)) from None
            return row, plaintext, user.email

    row, plaintext, user_email = run_with_runtime(go)
    click.echo(f"Created API token {row.id} ({row.name!r}) for {user_email}. Copy it now: it is not stored.", err=True)
    click.echo(plaintext)


@token.command("list")
@click.option("--user", "email", metavar="EMAIL", help="Only this user's tokens.")
@click.option("--active", "active_only", is_flag=True, help="Hide revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(email: str | None, active_only: bool, as_json: bool) -> None:
    """List tokens, newest first (their prefix only — never the token)."""
    from core.tokens import TokenError, list_tokens, user_by_email

    async def go(rt: Runtime) -> list[Any]:
        async with rt.db.session() as session:
            user_id = None
            if email:
                try:
                    user_id = (await user_by_email(session, email)).id
                except TokenError as exc:
                    raise CliError(str(exc)) from None
            return await list_tokens(session, user_id=user_id, include_revoked=not active_only)

    tokens = run_with_runtime(go)
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "prefix": t.prefix,
            "user": t.user_email,
            "created_at": _iso(t.created_at),
            "last_used_at": _iso(t.last_used_at),
            "revoked_at": _iso(t.revoked_at),
        }
        for t in tokens
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No API tokens.")
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True)
    table.add_column("name")
    table.add_column("prefix", no_wrap=True)
    table.add_column("user")
    table.add_column("created", no_wrap=True)
    table.add_column("last used", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for t in tokens:
        table.add_row(
            str(t.id),
            t.name,
            f"{t.prefix}…",
            t.user_email,
            t.created_at.strftime("%Y-%m-%d"),
            _short(t.last_used_at) or "never",
            "revoked" if t.revoked_at else "active",
        )
    Console(soft_wrap=True).print(table)


@token.command()
@click.argument("token_id", type=int)
def revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID: requests with it are refused from now on."""
    from core.tokens import TokenError, revoke_token

    async def go(rt: Runtime) -> tuple[Any, bool]:
        async with rt.db.transaction() as session:
            try:
                from core.models import ApiToken

                existing = await session.get(ApiToken, token_id)
                was_live = existing is not None and existing.revoked_at is None
                row = await revoke_token(session, token_id, actor=actor())
            except TokenError as exc:
                raise CliError(str(exc)) from None
            return row, was_live

    row, was_live = run_with_runtime(go)
    if was_live:
        click.echo(f"Revoked API token {row.id} ({row.name!r}, {row.prefix}…).")
    else:
        click.echo(f"API token {row.id} ({row.name!r}) was already revoked.")
