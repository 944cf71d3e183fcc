"""``clasp attribution``: recompute sales' credit now (the worker keeps it current on its own)."""

from __future__ import annotations

import click

from core.cli.state import run_with_runtime
from core.runtime import Runtime


@click.group()
def attribution() -> None:
    """Credit sales to the outreach that led to them (the worker does this from the change feed)."""


@attribution.command()
@click.option("--sale", "sale_ids", type=int, multiple=True, help="Only this sale (repeatable). Default: every sale.")
def recompute(sale_ids: tuple[int, ...]) -> None:
    """Recompute credit by every registered model, e.g. after installing a model plugin."""
    from core.attribution.jobs import recompute as recompute_sales
    from core.attribution.jobs import recompute_all

    async def go(rt: Runtime) -> tuple[int, int, int, list[str]]:
        result = await (recompute_sales(rt, sale_ids) if sale_ids else recompute_all(rt))
        return result.sales, result.credited, result.rows, result.errors

    sales, credited, rows, errors = run_with_runtime(go)
    click.echo(f"{sales} sale(s) looked at, {credited} credited, {rows} credit row(s).")
    for problem in errors:
        click.echo(f"error: {problem} (in the error queue: clasp errors list)", err=True)


@attribution.command("catch-up")
def catch_up() -> None:
    """Read the change feed up to a few seconds ago and recompute what it touched, in the foreground."""
    from core.attribution.jobs import consume_feed

    async def go(rt: Runtime) -> list[dict[str, int]]:
        passes = []
        while True:
            done = await consume_feed(rt)
            passes.append(done)
            if not done["rows"] and not done["full_pass"]:
                return passes

    passes = run_with_runtime(go)
    sales = sum(p["sales"] for p in passes)
    credited = sum(p["credited"] for p in passes)
    click.echo(f"{sales} sale(s) recomputed, {credited} credited.")
