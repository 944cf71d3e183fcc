"""Reports: outreach and the sales it earned, per associate and per store, over a period, for one
attribution model; a leaderboard, the cross-store credit matrix, trend charts and CSV exports.

Scoped like everything else (``core.attribution.reports``): owners see the chain, managers their
stores, associates their own numbers. Owners also set how credit is given (window, default model,
report timezone); a changed setting is audited.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter
from litestar.response import Response
from markupsafe import Markup, escape
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from admin.auth import require_role
from admin.charts import PALETTE, Series, bar_chart, bar_line_chart, plain
from admin.render import flash, redirect, render, runtime_of
from admin.routes.sales import format_money
from core import audit
from core.access import Principal
from core.attribution.reports import MAX_DAYS, Money, Report, build_report, currencies_of, period_for
from core.attribution.settings import (
    AttributionSettings,
    load_attribution_settings,
    report_zone,
    save_attribution_settings,
)
from core.models import User, utcnow

DEFAULT_DAYS = 30
EXPORTS = ("associate", "location", "leaderboard", "matrix")
SETTINGS_FIELDS = ("window_days", "report_model", "report_timezone")
owners = require_role("owner")


@dataclass
class Filters:
    first: date
    last: date
    model: str
    models: list[tuple[str, str]]  # (name, title)
    problems: list[str] = field(default_factory=list)

    def query(self, **extra: str) -> str:
        return urlencode({"from": self.first.isoformat(), "to": self.last.isoformat(), "model": self.model, **extra})

    @property
    def model_title(self) -> str:
        return dict(self.models).get(self.model, self.model)


def _models(request: Request[Any, Any, Any], settings: AttributionSettings) -> list[tuple[str, str]]:
    """Registered models; the setting's model too (its rows may exist before its plugin loads)."""
    registered = runtime_of(request).registry.attribution_models
    models = [(name, getattr(m, "title", "") or name) for name, m in registered.items()]
    if settings.report_model not in registered:
        models.insert(0, (settings.report_model, settings.report_model))
    return models


def _day(raw: str | None, label: str, problems: list[str]) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems.append(f"“{raw}” is not a date (YYYY-MM-DD); the {label} date was left at its default.")
        return None


async def _filters(
    request: Request[Any, Any, Any], session: AsyncSession, settings: AttributionSettings, params: dict[str, str]
) -> Filters:
    problems: list[str] = []
    today = utcnow().astimezone(await report_zone(session, settings)).date()
    last = _day(params.get("to"), "end", problems) or today
    first = _day(params.get("from"), "start", problems) or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        first, last = last, first
        problems.append("The start date was after the end date: they were swapped.")
    if (last - first).days + 1 > MAX_DAYS:
        first = last - timedelta(days=MAX_DAYS - 1)
        problems.append(f"Reports cover at most {MAX_DAYS} days: the start date was moved to {first.isoformat()}.")
    models = _models(request, settings)
    model = (params.get("model") or "").strip() or settings.report_model
    if model not in dict(models):
        problems.append(f"There is no attribution model “{model}”: showing {settings.report_model}.")
        model = settings.report_model
    return Filters(first, last, model, models, problems)


# -------------------------------------------------------------------------------------- formatting


def money_lines(money: Money) -> Markup:
    """One line per currency; a dash for none."""
    if not any(money.values()):
        return Markup('<span class="muted">—</span>')
    return Markup("<br>").join(escape(format_money(money[c], c)) for c in currencies_of(money) if money[c])


def count(value: float) -> str:
    """Credited sales: whole numbers plainly, shares of sales with up to two decimals."""
    if abs(value - round(value)) < 0.005:
        return f"{round(value):,}"
    return f"{value:,.2f}".rstrip("0")


def rate(clients: int, repeat: int) -> str:
    return f"{round(100 * repeat / clients)}%" if clients else "—"


def major(minor: int, currency: str) -> str:
    """Minor units as a plain decimal for spreadsheets ('-1234.50')."""
    text = format_money(minor, currency).rsplit(" ", 1)[0]
    return text.replace(",", "").replace("−", "-")


def whole_money(minor: float, currency: str) -> str:
    """An axis label: whole major units without the currency code ('1,250')."""
    return format_money(round(minor), currency).split(" ")[0].split(".")[0]


def _csv_text(value: str) -> str:
    # A name from the POS could start a spreadsheet formula.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _charts(report: Report) -> list[Markup]:
    labels = [p.bucket.label for p in report.trend]
    step = "day" if report.period.daily else "week"
    out = []
    for i, cur in enumerate(report.currencies or []):
        values = [p.revenue.get(cur, 0) for p in report.trend]
        out.append(
            bar_chart(
                labels,
                [Series(f"Attributed revenue ({cur})", values, PALETTE[i % len(PALETTE)])],
                title=f"Attributed revenue per {step} ({cur})",
                fmt=lambda v, cur=cur: whole_money(v, cur),
            )
        )
    out.append(
        bar_line_chart(
            labels,
            Series("Outreach delivered", [p.delivered for p in report.trend], PALETTE[0]),
            Series("Attributed sales", [p.sales for p in report.trend], PALETTE[2]),
            title=f"Outreach delivered and attributed sales per {step}",
            line_fmt=plain,
        )
    )
    return out


# ------------------------------------------------------------------------------------------ context


async def _report(
    request: Request[Any, Any, Any], params: dict[str, str]
) -> tuple[Report, Filters, AttributionSettings]:
    principal: Principal = request.state.principal
    async with runtime_of(request).db.session() as session:
        settings = await load_attribution_settings(session)
        filters = await _filters(request, session, settings, params)
        period = await period_for(session, filters.first, filters.last)
        report = await build_report(session, principal, period, filters.model)
    return report, filters, settings


async def _context(
    request: Request[Any, Any, Any],
    params: dict[str, str],
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    report, filters, settings = await _report(request, params)
    values = form or {k: getattr(settings, k) for k in SETTINGS_FIELDS}
    return {
        "report": report,
        "filters": filters,
        "settings": settings,
        "settings_values": values,
        "settings_errors": errors or {},
        "charts": [] if report.unlinked else _charts(report),
        "zone": report.period.zone.key,
        "money_lines": money_lines,
        "count": count,
        "rate": rate,
        "exports": {by: f"/admin/reports.csv?{filters.query(by=by)}" for by in EXPORTS},
    }


def _params(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in ("from", "to", "model")}


@get("/reports", name="admin:reports")
async def reports_page(request: Request[Any, Any, Any]) -> Response[Any]:
    return render(request, "reports/page.html", await _context(request, _params(request)))


# ---------------------------------------------------------------------------------------------- CSV


def _share(value: float) -> str:
    """Credited sales for a spreadsheet: '3', '0.5', '0.3333'."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _csv(report: Report, by: str) -> list[list[str]]:
    curs = report.currencies

    def money_cols(money: Money) -> list[str]:
        return [major(money.get(c, 0), c) for c in curs]

    def heads(prefix: str) -> list[str]:
        return [f"{prefix}_{c}" for c in curs]

    if by == "associate":
        rows = [[
            "associate", "store", "sent", "delivered", "replies", "tasks_done", "attributed_sales",
            *heads("attributed_revenue"), *heads("cross_store_revenue"), "credited_clients", "repeat_clients",
            "repeat_client_rate",
        ]]
        for a in report.associates:
            f = a.figures
            rows.append([
                _csv_text(a.name), _csv_text(a.location), str(f.sent), str(f.delivered), str(f.replies),
                str(f.tasks_done), _share(f.sales),
                *money_cols(f.revenue), *money_cols(f.cross_store_revenue), str(f.clients),
                str(f.repeat_clients), "" if f.repeat_rate is None else f"{f.repeat_rate:.4f}",
            ])
        return rows
    if by == "location":
        rows = [[
            "store", "sent", "delivered", "replies", "tasks_done", "attributed_sales",
            *heads("attributed_revenue"), *heads("sold_at_other_stores"), "credited_clients", "repeat_clients",
            "repeat_client_rate", "sales_here_credited", *heads("sales_here_revenue"),
            *heads("sales_here_from_other_stores"),
        ]]
        for loc in report.locations:
            f = loc.figures
            rows.append([
                _csv_text(loc.name), str(f.sent), str(f.delivered), str(f.replies), str(f.tasks_done),
                _share(f.sales), *money_cols(f.revenue),
                *money_cols(f.cross_store_revenue), str(f.clients), str(f.repeat_clients),
                "" if f.repeat_rate is None else f"{f.repeat_rate:.4f}",
                _share(loc.sold_here_sales), *money_cols(loc.sold_here_revenue),
                *money_cols(loc.sold_here_from_elsewhere),
            ])
        return rows
    if by == "leaderboard":
        rows = [["rank", "associate", "store", "points", "attributed_sales", *heads("attributed_revenue")]]
        for r in report.leaderboard:
            rows.append([
                str(r.rank), _csv_text(r.name), _csv_text(r.location), str(r.points),
                _share(r.sales), *money_cols(r.revenue),
            ])
        return rows
    m = report.matrix
    rows = [["outreach_store", "sale_store", "cross_store", "attributed_sales", *heads("attributed_revenue")]]
    for o, o_name in m.outreach_locations:
        for s, s_name in m.sale_locations:
            if (o, s) in m.revenue:
                cross = o is not None and s is not None and o != s
                rows.append([
                    _csv_text(o_name), _csv_text(s_name), "yes" if cross else "no",
                    _share(m.sales[(o, s)]), *money_cols(m.revenue[(o, s)]),
                ])
    return rows


@get("/reports.csv", name="admin:reports-csv")
async def reports_csv(
    request: Request[Any, Any, Any], by: Annotated[str, QueryParameter(name="by")] = "associate"
) -> Response[bytes]:
    if by not in EXPORTS:
        raise NotFoundException(f"no such export: {by}")
    report, _, _ = await _report(request, _params(request))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(_csv(report, by))
    name = f"clasp-{by}-{report.period.first.isoformat()}-{report.period.last.isoformat()}-{report.model}.csv"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return Response(
        content=buffer.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{safe}"'},
    )


# ----------------------------------------------------------------------------------------- settings


@post("/reports/settings", name="admin:reports-settings", guards=[owners])
async def save_settings(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    submitted = {k: str(form.get(k) or "").strip() for k in SETTINGS_FIELDS}
    back = {k: str(form.get(k) or "") for k in ("from", "to", "model")}
    rt = runtime_of(request)
    errors: dict[str, str] = {}
    async with rt.db.session() as session:
        before = await load_attribution_settings(session)
    known = dict(_models(request, before))
    if submitted["report_model"] not in known:
        errors["report_model"] = "Choose one of the registered models."
    try:
        after = AttributionSettings.model_validate({**before.model_dump(), **submitted})
    except ValidationError as exc:
        for err in exc.errors():
            errors.setdefault(str(err["loc"][0]), str(err["msg"]).removeprefix("Value error, "))
    if errors:
        ctx = await _context(request, back, form=submitted, errors=errors)
        return render(request, "reports/page.html", ctx, status_code=422)
    changed = {
        k: [getattr(before, k), getattr(after, k)] for k in SETTINGS_FIELDS if getattr(before, k) != getattr(after, k)
    }
    user: User = request.state.user
    async with rt.db.transaction() as session:
        await save_attribution_settings(session, after)
        await audit.record(
            session, "attribution.settings", actor=user.email, actor_user_id=user.id,
            target_type="setting", target_id="attribution", details={"changed": changed},
        )
    if "window_days" in changed:
        flash(request, "Settings saved. Credit for every sale will be recomputed with the new window.")
    else:
        flash(request, "Settings saved.")
    query = urlencode({k: v for k, v in back.items() if v})
    return redirect(request, f"/admin/reports?{query}" if query else "/admin/reports")


route_handlers = [reports_page, reports_csv, save_settings]
