"""``clasp automations``: list, enable, configure, preview (dry run) and run the outreach automations."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

import click

from core.cli.state import CliError, json_default, parse_pairs, run_with_runtime
from core.runtime import Runtime


@click.group()
def automations() -> None:
    """Outreach automations: birthdays, thank-yous, reminders — as texts or Today tasks.

    Every installed automation type has one automation, created disabled. Check who it would reach
    with `clasp automations preview NAME`, then `clasp automations enable NAME`.
    """


def _fail(exc: Exception) -> CliError:
    return CliError(str(exc))


async def _list(rt: Runtime) -> list[dict[str, Any]]:
    from core.automations.store import ensure_automations

    async with rt.db.transaction() as session:
        rows = await ensure_automations(session, rt.registry)
        return [r.model_dump() for r in rows]


@automations.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def list_(as_json: bool) -> None:
    """List automations with their type, action, scope and state."""
    rows = run_with_runtime(_list)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=json_default, sort_keys=True))
        return
    if not rows:
        click.echo("No automation types are installed.")
        return
    for r in rows:
        ids = (r["scope"] or {}).get("location_ids")
        scope = "all locations" if ids is None else "locations " + ",".join(map(str, ids))
        state = "enabled " if r["enabled"] else "disabled"
        click.echo(f"{r['name']:<16} {state}  {r['action']:<5} {scope:<24} type {r['type']}")
        settings = ", ".join(f"{k}={json.dumps(v, default=json_default)}" for k, v in sorted(r["settings"].items()))
        if settings:
            click.echo(f"{'':18}{settings}")


def _toggle(name: str, enabled: bool) -> None:
    from core.automations.store import AutomationError, configure, ensure_automations

    async def go(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            await ensure_automations(session, rt.registry)
            try:
                await configure(session, rt.registry, name, enabled=enabled)
            except AutomationError as exc:
                raise _fail(exc) from None
            from core import audit
            from core.cli.state import actor

            await audit.record(session, "automation.enable" if enabled else "automation.disable", actor=actor(),
                               target_type="automation", target_id=name)

    run_with_runtime(go)
    click.echo(f"{'Enabled' if enabled else 'Disabled'} {name}.")


@automations.command()
@click.argument("name")
def enable(name: str) -> None:
    """Turn an automation on (it fires from the next evaluation)."""
    _toggle(name, True)


@automations.command()
@click.argument("name")
def disable(name: str) -> None:
    """Turn an automation off (what it already created stays)."""
    _toggle(name, False)


def _value(raw: str) -> Any:
    # JSON when it parses (numbers, true/false, lists, objects), else the text as given.
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@automations.command()
@click.argument("name")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
              help="A setting (repeatable); VALUE is JSON or text; dotted keys reach into maps: every_months.rings=6.")
@click.option("--template", help="The message template (sandboxed Jinja2).")
@click.option("--template-file", type=click.File("r"), help="Read the template from a file.")
@click.option("--action", type=click.Choice(["send", "task"]), help="send: a text via the outbox; task: a Today task.")
@click.option("--locations", help='Comma-separated location ids the automation covers, or "all".')
def configure(name: str, pairs: tuple[str, ...], template: str | None, template_file: Any, action: str | None,
              locations: str | None) -> None:
    """Change an automation's settings, template, action or location scope."""
    from core.automations.store import AutomationError, ensure_automations
    from core.automations.store import configure as do_configure

    settings = {k: _value(v) for k, v in parse_pairs(pairs, "--set").items()}
    if template is not None and template_file is not None:
        raise CliError("give --template or --template-file, not both")
    if template_file is not None:
        template = template_file.read()
    scope: Any = "keep"
    if locations is not None:
        if locations.strip().lower() == "all":
            scope = None
        else:
            try:
                scope = [int(x) for x in locations.split(",") if x.strip()]
            except ValueError:
                raise CliError(f'--locations expects ids like 1,2 or "all", got {locations!r}') from None
    if not settings and template is None and action is None and locations is None:
        raise CliError("nothing to change (use --set, --template, --action or --locations)")

    async def go(rt: Runtime) -> dict[str, Any]:
        async with rt.db.transaction() as session:
            await ensure_automations(session, rt.registry)
            try:
                row = await do_configure(session, rt.registry, name, settings=settings or None, template=template,
                                         action=action, location_ids=scope)
            except AutomationError as exc:
                raise _fail(exc) from None
            from core import audit
            from core.cli.state import actor

            await audit.record(session, "automation.configure", actor=actor(), target_type="automation",
                               target_id=name, details={"settings": settings, "template": template is not None,
                                                        "action": action, "locations": locations})
            return row.model_dump()

    row = run_with_runtime(go)
    click.echo(f"Updated {name}: {row['action']}, settings {json.dumps(row['settings'], default=json_default)}.")


def _instant(day: date | None, at: datetime | None) -> datetime:
    if at is not None:
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    if day is not None:
        # The end of that day in UTC: every location west of Asia has reached its local send time.
        return datetime.combine(day, time(23, 59), tzinfo=UTC)
    return datetime.now(UTC)


def _print_run(run: Any, locations: dict[int, str]) -> None:
    click.echo(run.summary() + ".")
    for lid, n in sorted(run.per_location.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        label = locations.get(lid, f"location {lid}") if lid is not None else "no location"
        click.echo(f"  {label:<28} {n}")
    for problem in run.problems:
        click.echo(f"  template error: {problem}", err=True)


@automations.command()
@click.argument("name")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="Evaluate as of 23:59 UTC that day.")
@click.option("--at", type=click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]),
              help="Evaluate at this instant (UTC unless an offset is given).")
@click.option("--client", "client_id", type=int, help="Render the template for this client instead.")
@click.option("--samples", type=click.IntRange(0, 20), default=5, show_default=True, help="Texts to show.")
def preview(name: str, day: datetime | None, at: datetime | None, client_id: int | None, samples: int) -> None:
    """Dry run: who would get what (counts per location and sample texts); nothing is written.

    Works on a disabled automation, so you can check it before enabling it.
    """
    from core.automations.store import AutomationError
    from core.automations.templates import TemplateProblem

    when = _instant(day.date() if day else None, at)

    async def go(rt: Runtime) -> tuple[Any, dict[int, str]]:
        from core.automations.context import load_locations
        from core.automations.review import dry_run, preview_for_client

        try:
            if client_id is not None:
                return await preview_for_client(rt, name, client_id, now=when), {}
            run = await dry_run(rt, name, now=when)
        except (AutomationError, TemplateProblem) as exc:
            raise _fail(exc) from None
        async with rt.db.session() as session:
            locs = {k: v["name"] for k, v in (await load_locations(session)).items()}
        return run, locs

    result, locs = run_with_runtime(go)
    if client_id is not None:
        if result.title:
            click.echo(f"Task: {result.title}")
        click.echo(result.body)
        return
    click.echo(f"As of {when:%Y-%m-%d %H:%M} UTC:")
    _print_run(result, locs)
    for f in result.samples[:samples]:
        head = f"  client {f.client_id} → " + (f"[{f.title}] " if f.title else "")
        if f.outcome:
            head += f"({'would send' if f.outcome == 'send' else f.reason}) "
        click.echo(head + f.body.replace("\n", " "))


@automations.command("reach")
@click.argument("name")
def reach_cmd(name: str) -> None:
    """How many clients an automation can text now, and why the rest cannot (nothing is written)."""
    from core.automations.store import AutomationError

    async def go(rt: Runtime) -> Any:
        from core.automations.review import reach

        try:
            return await reach(rt, name)
        except AutomationError as exc:
            raise _fail(exc) from None

    r = run_with_runtime(go)
    waiting = f" ({r.waiting} in quiet hours now: their texts wait)" if r.waiting else ""
    click.echo(f"{name}: {r.reachable} of {r.population} client(s) can get its texts{waiting}.")
    for _code, words, n in r.reason_rows():
        click.echo(f"  {words:<44} {n}")


@automations.command()
@click.option("--name", "names", multiple=True, help="Only this automation (repeatable; runs it even if disabled).")
@click.option("--at", type=click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
              help="Evaluate as if it were this instant (UTC); for catching up or testing.")
def run(names: tuple[str, ...], at: datetime | None) -> None:
    """Run one evaluation now, in the foreground (owners first, then every enabled automation)."""
    from core.automations.evaluate import evaluate
    from core.automations.jobs import consume_feed
    from core.automations.store import AutomationError

    when = _instant(None, at)

    async def go(rt: Runtime) -> tuple[list[Any], dict[int, str]]:
        from core.automations.context import load_locations

        await consume_feed(rt)
        try:
            runs = await evaluate(rt, now=when, names=list(names) or None)
        except AutomationError as exc:
            raise _fail(exc) from None
        async with rt.db.session() as session:
            locs = {k: v["name"] for k, v in (await load_locations(session)).items()}
        return runs, locs

    runs, locs = run_with_runtime(go)
    if not runs:
        click.echo("No automation is enabled (`clasp automations list`).")
    for r in runs:
        _print_run(r, locs)


@automations.command()
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def history(name: str, limit: int) -> None:
    """What an automation has fired: counts by state and the latest texts or tasks."""
    from core.automations.review import history as load_history
    from core.automations.store import AutomationError, ensure_automations

    async def go(rt: Runtime) -> Any:
        async with rt.db.transaction() as session:
            await ensure_automations(session, rt.registry)
            try:
                return await load_history(session, name, limit=limit)
            except AutomationError as exc:
                raise _fail(exc) from None

    h = run_with_runtime(go)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(h.counts.items())) or "nothing yet"
    click.echo(f"{name}: {counts}.")
    for r in h.recent:
        body = (r["body"] or "").replace("\n", " ")
        body = body if len(body) <= 60 else body[:59] + "…"
        when = f"{r['due_at']:%Y-%m-%d %H:%M}"
        click.echo(f"{r['type']:<4} {r['id']:>6} {r['state']:<9} client {r['client_id']}  {when}  {body}")
        if r.get("state_reason"):
            click.echo(f"{'':12}{r['state_reason']}")


@automations.command("assign-owners")
def assign_owners_cmd() -> None:
    """Re-apply the owner rule to every client now (the worker keeps it current from the change feed)."""
    from core.automations.owners import assign_owners

    async def go(rt: Runtime) -> int:
        async with rt.db.transaction() as session:
            return await assign_owners(session)

    click.echo(f"{run_with_runtime(go)} client(s) changed owner.")
