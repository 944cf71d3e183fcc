"""One evaluation of the automations: find due occasions in SQL, render, and fire each exactly once.

The same statement (``occasions.candidates``) serves the dry run and the real run; the real run
writes outbox rows (kind ``marketing``: the outbox applies consent, quiet hours and the frequency cap
when it sends) or Today tasks. The dry run of a texting automation also applies those send rules,
through the sender's own implementation (``core.outreach.eligibility``), so it says how many texts
would go out, wait for quiet hours or be skipped, and why. The real run writes rows with
``INSERT … ON CONFLICT (occasion_key) DO NOTHING``. The unique occasion key is what makes a
re-run, a crash halfway or two concurrent workers fire each occasion once. A template that cannot
be rendered for a client sends nothing: the occasion goes to the error queue (``sync_error``, stage
``automation``) and fires on a later evaluation once the template is fixed (while it is still within
its catch-up window).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.automations import context as ctx_mod
from core.automations.occasions import Branch, OccasionSet, SqlOccasionQuery, candidates, due_at
from core.automations.store import (
    AutomationError,
    default_timezone,
    ensure_automations,
    load_org_settings,
    load_watermark,
    save_watermark,
    scope_ids,
    settings_of,
    type_of,
)
from core.automations.store import conn as _conn
from core.automations.templates import TemplateProblem, render, variables_used
from core.models import Automation, Outreach, SyncError, Task, utcnow
from core.outreach import eligibility
from core.outreach.eligibility import REASONS
from core.outreach.outbox import MAX_BODY
from core.runtime import Runtime

log = logging.getLogger(__name__)

BATCH = 1000
# How far before the last complete evaluation a new one looks again: covers clock skew between
# workers and transactions that committed out of order around the previous run.
OVERLAP = timedelta(hours=1)
SAMPLES = 20
outreach_t = Outreach.__table__  # type: ignore[attr-defined]
task_t = Task.__table__  # type: ignore[attr-defined]


@dataclass
class Fired:
    """One occasion as it would be (or was) fired."""

    client_id: int
    occasion_key: str
    location_id: int | None
    associate_id: int | None
    due_at: datetime
    body: str
    title: str | None = None
    # Dry run of a text: what the send rules would do with it (send, defer, skip) and why.
    outcome: str | None = None
    reason: str | None = None


@dataclass
class AutomationRun:
    """What one evaluation of one automation found and did (or, in a dry run, would do)."""

    automation: str
    action: str
    dry_run: bool
    due: int = 0  # occasions found due and not yet fired
    created: int = 0  # rows written (dry run: rows that would be written)
    already: int = 0  # lost to a concurrent evaluation (the occasion key existed)
    errors: int = 0  # template problems: nothing sent, recorded in the error queue
    per_location: dict[int | None, int] = field(default_factory=dict)
    samples: list[Fired] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the automation was not evaluated at all
    # Dry run of a texting automation: the send rules applied to each text it would create.
    would_send: int = 0
    would_wait: int = 0
    would_skip: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)  # reason code → count
    seconds: float = 0.0
    query_seconds: float = 0.0  # of which finding the due occasions

    def summary(self) -> str:
        if self.skipped:
            return f"{self.automation}: skipped ({self.skipped})"
        verb = "would create" if self.dry_run else "created"
        noun = "text(s)" if self.action == "send" else "task(s)"
        parts = [f"{self.automation}: {verb} {self.created} {noun}"]
        if self.dry_run and self.action == "send" and self.created:
            parts.append(f"{self.would_send} would be sent")
            if self.would_wait:
                parts.append(f"{self.would_wait} would wait for quiet hours")
            if self.would_skip:
                why = ", ".join(f"{REASONS.get(k, k)}: {n}" for k, n in sorted(self.skip_reasons.items()))
                parts.append(f"{self.would_skip} would be skipped ({why})")
        if self.already:
            parts.append(f"{self.already} already fired")
        if self.errors:
            parts.append(f"{self.errors} template error(s)")
        return ", ".join(parts)


async def evaluate(
    rt: Runtime,
    *,
    now: datetime | None = None,
    names: Sequence[str] | None = None,
    dry_run: bool = False,
    client_ids: Sequence[int] | None = None,
) -> list[AutomationRun]:
    """Evaluate the enabled automations (or the named ones, enabled or not) at ``now``.

    ``dry_run`` runs the same SQL and renders the same texts but writes nothing. ``client_ids``
    limits the evaluation to those clients (the change-feed trigger uses it).
    """
    now = now or utcnow()
    async with rt.db.transaction() as session:
        automations = await ensure_automations(session, rt.registry)
        org = await load_org_settings(session)
        tz = await default_timezone(session, org)
        locations = await ctx_mod.load_locations(session)
    if names is not None:
        wanted = set(names)
        unknown = wanted - {a.name for a in automations}
        if unknown:
            raise AutomationError(f"no automation named {', '.join(sorted(unknown))}")
        chosen = [a for a in automations if a.name in wanted]
    else:
        chosen = [a for a in automations if a.enabled]
    runs = []
    for automation in chosen:
        runs.append(
            await evaluate_one(
                rt, automation, now=now, dry_run=dry_run, client_ids=client_ids, locations=locations, default_tz=tz
            )
        )
    if not dry_run and any(r.created for r in runs if r.action == "send"):
        from core.outreach.jobs import kick

        await kick(rt)
    return runs


async def evaluate_one(
    rt: Runtime,
    automation: Automation,
    *,
    now: datetime,
    dry_run: bool,
    locations: dict[int, dict[str, Any]],
    default_tz: str,
    client_ids: Sequence[int] | None = None,
) -> AutomationRun:
    run = AutomationRun(automation=automation.name, action=automation.action, dry_run=dry_run)
    started = time.perf_counter()
    try:
        return await _evaluate_one(
            rt,
            automation,
            run,
            now=now,
            dry_run=dry_run,
            locations=locations,
            default_tz=default_tz,
            client_ids=client_ids,
        )
    finally:
        run.seconds = time.perf_counter() - started


async def _evaluate_one(
    rt: Runtime,
    automation: Automation,
    run: AutomationRun,
    *,
    now: datetime,
    dry_run: bool,
    locations: dict[int, dict[str, Any]],
    default_tz: str,
    client_ids: Sequence[int] | None,
) -> AutomationRun:
    try:
        atype = type_of(rt.registry, automation)
        settings = settings_of(atype, automation)
    except AutomationError as exc:
        run.skipped = str(exc)
        return run
    assert automation.id is not None
    since = None
    if client_ids is None:
        async with rt.db.session() as session:
            mark = await load_watermark(session, automation.id)
        since = mark - OVERLAP if mark is not None else None
    query = SqlOccasionQuery(
        since=since,
        now=now,
        automation_id=automation.id,
        locations={lid: loc["timezone"] for lid, loc in locations.items()},
        default_timezone=default_tz,
    )
    try:
        occasions = atype.occasions(query, settings)
    except NotImplementedError:
        run.skipped = f"automation type {atype.name!r} does not describe its occasions"
        return run
    if not isinstance(occasions, OccasionSet):
        run.skipped = f"automation type {atype.name!r} returned {type(occasions).__name__}, not Occasions"
        return run
    only = None if client_ids is None else list(client_ids)
    title_source = atype.task_title if automation.action == "task" else None
    used = variables_used(automation.template) | (variables_used(title_source) if title_source else frozenset())
    stmt = candidates(occasions, location_ids=scope_ids(automation), client_ids=only, with_products="product" in used)
    if stmt is None:
        if not dry_run and client_ids is None:
            async with rt.db.transaction() as session:
                await save_watermark(session, automation.id, now)
        return run
    t = time.perf_counter()
    async with rt.db.session() as session:
        rows = [dict(r) for r in (await (await _conn(session)).execute(stmt)).mappings().all()]
    run.query_seconds = time.perf_counter() - t
    run.due = len(rows)
    failures: dict[str, list[dict[str, Any]]] = defaultdict(list)
    batch_marketing: dict[int, datetime] = {}
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        async with rt.db.session() as session:
            fired, failed = await _render_batch(
                session, batch, occasions.branches, automation, title_source, used, locations
            )
        for reason, row in failed:
            failures[reason].append(row)
        run.errors += len(failed)
        if dry_run:
            if automation.action == "send":
                async with rt.db.session() as session:
                    await _apply_send_rules(session, fired, run, now=now, batch_marketing=batch_marketing)
            run.created += len(fired)
            counts = Counter(f.location_id for f in fired)
            for lid, n in counts.items():
                run.per_location[lid] = run.per_location.get(lid, 0) + n
            run.samples.extend(fired[: max(0, SAMPLES - len(run.samples))])
            continue
        async with rt.db.transaction() as session:
            written = await _insert(session, automation, fired, task_kind=atype.task_kind)
        written_keys = set(written)
        for f in fired:
            if f.occasion_key in written_keys:
                run.per_location[f.location_id] = run.per_location.get(f.location_id, 0) + 1
        run.created += len(written_keys)
        run.already += len(fired) - len(written_keys)
        run.samples.extend([f for f in fired if f.occasion_key in written_keys][: max(0, SAMPLES - len(run.samples))])
    run.per_location = {k: v for k, v in run.per_location.items() if v}
    run.problems = [f"{reason} ({len(items)} occasion(s))" for reason, items in failures.items()]
    if not dry_run:
        async with rt.db.transaction() as session:
            await _record_errors(session, automation, failures, now=now)
            if client_ids is None and not failures:
                # Failed occasions keep the mark where it was, so they are looked at again after a fix.
                await save_watermark(session, automation.id, now)
    return run


async def _apply_send_rules(
    session: AsyncSession,
    fired: list[Fired],
    run: AutomationRun,
    *,
    now: datetime,
    batch_marketing: dict[int, datetime],
) -> None:
    """What the outbox would do with each text when it falls due: the sender's facts and rules.

    Texts of the same run to one client count against the frequency cap like texts claimed earlier
    in one sender batch do."""
    facts = await eligibility.load_facts(
        session,
        [f.client_id for f in fired],
        kind="marketing",
        fallback_locations={f.client_id: f.location_id for f in fired},
    )
    for f in fired:
        item = facts.get(f.client_id)
        if item is None:
            continue
        at = max(now, f.due_at)
        base = item.last_marketing_at if not isinstance(item, ValueError) else None
        last = max(filter(None, (base, batch_marketing.get(f.client_id))), default=None)
        decision = eligibility.decide(item, kind="marketing", now=at, last_marketing_at=last)
        f.outcome, f.reason = decision.action, decision.reason
        if decision.action == "send":
            run.would_send += 1
            batch_marketing[f.client_id] = at
        elif decision.action == "defer":
            run.would_wait += 1
            # The cap is checked again when the deferred text goes out; count it then as sent.
            batch_marketing[f.client_id] = decision.until or at
        else:
            run.would_skip += 1
            code = decision.code or "other"
            run.skip_reasons[code] = run.skip_reasons.get(code, 0) + 1


async def _render_batch(
    session: AsyncSession,
    rows: list[dict[str, Any]],
    branches: list[Branch],
    automation: Automation,
    title_source: str | None,
    used: frozenset[str],
    locations: dict[int, dict[str, Any]],
) -> tuple[list[Fired], list[tuple[str, dict[str, Any]]]]:
    clients = {int(r["client_id"]): ctx_mod.client_from_row(r) for r in rows}
    associates = await ctx_mod.load_associates(session, (c["owner_associate_id"] for c in clients.values()))
    purchases = await ctx_mod.last_purchases(session, clients.keys(), locations) if "last_purchase" in used else {}
    sales = (
        await ctx_mod.load_sales(session, (r["sale_id"] for r in rows if r["sale_id"] is not None), locations)
        if "sale" in used
        else {}
    )
    pieces = {int(r["line_id"]): ctx_mod.piece_from_row(r) for r in rows if r["line_id"] is not None and "p_name" in r}
    fired: list[Fired] = []
    failed: list[tuple[str, dict[str, Any]]] = []
    for row in rows:
        client = clients[int(row["client_id"])]
        branch = branches[int(row["branch"])]
        when, day = due_at(branch, row, client["home_location_id"])
        owner = associates.get(client["owner_associate_id"]) if client["owner_associate_id"] else None
        location_id = row["location_id"]
        years = None
        if branch.field_name and day is not None and client.get(branch.field_name):
            years = day.year - client[branch.field_name].year
        context = {
            "client": client,
            "associate": owner,
            "location": locations.get(location_id) if location_id is not None else None,
            "last_purchase": purchases.get(client["id"]),
            "sale": sales.get(row["sale_id"]) if row["sale_id"] is not None else None,
            "product": pieces.get(row["line_id"]) if row["line_id"] is not None else None,
            "occasion": {
                "name": branch.occasion,
                "key": row["occasion_key"],
                "date": day,
                "due_at": when,
                "years": years,
                "number": row["number"],
            },
        }
        try:
            body = render(automation.template, context)
            if not body:
                raise TemplateProblem("the template rendered an empty message")
            if automation.action == "send" and len(body) > MAX_BODY:
                raise TemplateProblem(f"the message has {len(body)} characters; at most {MAX_BODY}")
            title = render(title_source, context)[:300] if title_source else None
        except TemplateProblem as exc:
            failed.append((str(exc), {"client_id": client["id"], "occasion_key": row["occasion_key"]}))
            continue
        fired.append(
            Fired(
                client_id=client["id"],
                occasion_key=row["occasion_key"],
                location_id=location_id,
                associate_id=owner["id"] if owner else None,
                due_at=when,
                body=body,
                title=title or None,
            )
        )
    return fired, failed


def _insert_ignoring_conflicts(session: AsyncSession, table: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing(index_elements=["occasion_key"])
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing(index_elements=["occasion_key"])
    return sa_insert(table)  # pragma: no cover - only the two supported dialects exist


async def _insert(session: AsyncSession, automation: Automation, fired: list[Fired], *, task_kind: str) -> list[str]:
    """Write the rows; returns the occasion keys this call wrote (not those another run had written)."""
    if not fired:
        return []
    now = utcnow()
    if automation.action == "send":
        table = outreach_t
        values = [
            {
                "client_id": f.client_id,
                "associate_id": f.associate_id,
                "location_id": f.location_id,
                "automation_id": automation.id,
                "channel": "sms",
                "direction": "outbound",
                "kind": "marketing",
                # Left empty: the outbox picks the client's current number when it sends.
                "to_address": None,
                "body": f.body,
                "media_urls": [],
                "occasion_key": f.occasion_key,
                "state": "pending",
                "attempts": 0,
                "due_at": f.due_at,
                "created_at": now,
                "updated_at": now,
            }
            for f in fired
        ]
    else:
        table = task_t
        values = [
            {
                "client_id": f.client_id,
                "associate_id": f.associate_id,
                "location_id": f.location_id,
                "automation_id": automation.id,
                "kind": task_kind,
                "title": f.title or automation.name,
                "body": f.body,
                "occasion_key": f.occasion_key,
                "state": "open",
                "due_at": f.due_at,
                "created_at": now,
            }
            for f in fired
        ]
    stmt = _insert_ignoring_conflicts(session, table).returning(table.c.occasion_key)
    result = await (await _conn(session)).execute(stmt, values)
    return [r[0] for r in result.all()]


async def _record_errors(
    session: AsyncSession, automation: Automation, failures: dict[str, list[dict[str, Any]]], *, now: datetime
) -> None:
    """One open error-queue row per automation and problem (repeats count as attempts); closed once a
    changed template no longer has the problem."""
    ref = f"automation:{automation.id}"
    stmt = select(SyncError).where(
        col(SyncError.stage) == "automation", col(SyncError.external_id) == ref, col(SyncError.state) == "open"
    )
    open_rows = list((await session.exec(stmt)).all())
    by_reason = {r.reason: r for r in open_rows}
    for reason, items in failures.items():
        payload = {
            "automation": automation.name,
            "automation_id": automation.id,
            "occasions": items[:50],
            "count": len(items),
        }
        context = {
            "template": automation.template,
            "action": automation.action,
            "fix": f"fix the template (`clasp automations configure {automation.name} --template ...`); "
            "the occasions fire on the next evaluation while they are still due",
            "last_seen": now.isoformat(),
        }
        row = by_reason.get(reason)
        if row is None:
            session.add(
                SyncError(
                    stage="automation",
                    stream=automation.name[:100],
                    external_id=ref,
                    payload=payload,
                    context=context,
                    reason=reason,
                )
            )
        else:
            row.attempts += 1
            row.payload = payload
            row.context = context
            session.add(row)
    for reason, row in by_reason.items():
        # Fixed: the template changed since, and the problem did not come back with the new one.
        if reason not in failures and (row.context or {}).get("template") != automation.template:
            row.state = "replayed"
            row.replayed_at = now
            session.add(row)
    await session.flush()
