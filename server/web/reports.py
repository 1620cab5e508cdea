"""Report pages: service hours (member / unit / community, month / year), members without service this
quarter, and centre activity by weekday and hour — each with a chart and CSV/XLSX export.

The numbers come from :mod:`server.reports` with the user's scope, so a community's staff see their
community, a unit secretary their unit, admins and auditors the city. ``?format=csv|xlsx`` on any report
URL downloads exactly the table the page shows (all rows, not just the page).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import select

from server import reports
from server.localtime import to_local
from server.models import Unit

from .charts import bar_chart, heatmap, line_chart
from .common import arg_int, db
from .exports import export_format, send_table
from .i18n import t, zone
from .scope import current_scope

logger = logging.getLogger(__name__)
bp = Blueprint("web_reports", __name__, url_prefix="/reports")

GROUPS = ("unit", "community", "member")
PAGE_ROWS = 200  # the HTML table; exports carry every row
CHART_BARS = 30
ACTIVITY_DEFAULT_DAYS = 90


def _today() -> date:
    return to_local(datetime.now(zone()), zone()).date()


def _date(name: str, default: date) -> date:
    try:
        return date.fromisoformat(request.args.get(name, "").strip())
    except ValueError:
        return default


@bp.get("/")
def index() -> Any:
    return redirect(url_for("web_reports.hours"))


@bp.get("/hours")
def hours() -> Any:
    scope = current_scope()
    s = db()
    today = _today()
    group = request.args.get("group", "unit")
    if group not in GROUPS:
        group = "unit"
    year = arg_int("year") or today.year
    if not 2000 <= year <= 2100:
        year = today.year
    month = arg_int("month")
    if month is not None and not 1 <= month <= 12:
        month = None
    if "month" not in request.args:
        month = today.month if year == today.year else None
    unit_id, community_id = arg_int("unit_id"), arg_int("community_id")
    rows = reports.service_hours(
        s, scope, group=group, year=year, month=month, unit_id=unit_id, community_id=community_id, tz=zone()
    )
    fmt = export_format()
    if fmt:
        headers = [t("reports.code"), t("reports.name")]
        if group == "member":
            headers.append(t("reports.unit_col"))
        headers += [t("reports.hours_col"), t("reports.minutes_col"), t("reports.sessions_col")]
        table = (
            [r.code, r.name, *([r.extra] if group == "member" else []), r.hours, r.minutes, r.sessions]
            for r in rows
        )
        period = f"{year}" + (f"-{month:02d}" if month else "")
        return send_table(fmt, f"hours-{group}-{period}", headers, table)
    top = rows[:CHART_BARS]
    bars = bar_chart(
        [r.name for r in top],
        [r.minutes / 60 for r in top],
        title=t("reports.chart_top", n=len(top)),
        unit=t("reports.hours_unit"),
    )
    if month:  # the month view's trend is by day, so the page reads only that month's rows
        days = reports.daily_totals(
            s, scope, year=year, month=month, unit_id=unit_id, community_id=community_id, tz=zone()
        )
        trend = line_chart(
            [str(d) for d in range(1, len(days) + 1)],
            [m / 60 for m in days],
            title=t("reports.chart_month", year=year, month=month),
            unit=t("reports.hours_unit"),
        )
    else:
        months = reports.monthly_totals(
            s, scope, year=year, unit_id=unit_id, community_id=community_id, tz=zone()
        )
        trend = line_chart(
            [t("reports.month_label", m=m) for m in range(1, 13)],
            [m / 60 for m in months],
            title=t("reports.chart_year", year=year),
            unit=t("reports.hours_unit"),
        )
    return render_template(
        "reports/hours.html",
        rows=rows[:PAGE_ROWS],
        count=len(rows),
        total_minutes=sum(r.minutes for r in rows),
        total_sessions=sum(r.sessions for r in rows),
        group=group,
        groups=GROUPS,
        year=year,
        month=month,
        years=range(today.year, today.year - 6, -1),
        bars=bars,
        trend=trend,
    )


@bp.get("/idle")
def idle() -> Any:
    scope = current_scope()
    s = db()
    today = _today()
    unit_id = arg_int("unit_id")
    rows = reports.no_service_this_quarter(s, scope, today=today, unit_id=unit_id, tz=zone())
    fmt = export_format()
    if fmt:
        headers = [t("reports.code"), t("reports.unit_col"), t("export.col.member_no"), t("export.col.name")]
        table = ([r.unit_code, r.unit_name, r.member_no, r.name] for r in rows)
        return send_table(fmt, "no-service-quarter", headers, table)
    per_unit: dict[str, int] = {}
    for r in rows:
        per_unit[r.unit_name] = per_unit.get(r.unit_name, 0) + 1
    ranked = sorted(per_unit.items(), key=lambda kv: -kv[1])[:CHART_BARS]
    chart = bar_chart([k for k, _ in ranked], [v for _, v in ranked], title=t("reports.idle_by_unit"))
    units = list(s.scalars(select(Unit).where(scope.clause(Unit)).order_by(Unit.code)))
    return render_template(
        "reports/idle.html",
        rows=rows[: PAGE_ROWS * 5],
        count=len(rows),
        chart=chart,
        units=units,
        quarter=t("reports.quarter", year=today.year, q=(today.month - 1) // 3 + 1),
    )


@bp.get("/activity")
def activity() -> Any:
    scope = current_scope()
    s = db()
    today = _today()
    last = _date("date_to", today)
    first = _date("date_from", last - timedelta(days=ACTIVITY_DEFAULT_DAYS - 1))
    if first > last:
        first, last = last, first
    centre_id = arg_int("centre_id")
    grid = reports.centre_activity(s, scope, first=first, last=last, centre_id=centre_id, tz=zone())
    weekdays = [t(f"weekday.{d}") for d in range(7)]
    fmt = export_format()
    if fmt:
        headers = [t("reports.weekday"), *[f"{h:02d}" for h in range(24)]]
        table = ([weekdays[d], *grid.counts[d]] for d in range(7))
        return send_table(fmt, f"activity-{first}-{last}", headers, table)
    hours_labels = [f"{h:02d}" for h in range(24)]
    return render_template(
        "reports/activity.html",
        grid=grid,
        first=first,
        last=last,
        centres=reports.centres_in_scope(s, scope),
        heat=heatmap(weekdays, hours_labels, grid.counts, title=t("reports.weekday_hour")),
        by_hour=bar_chart(hours_labels, grid.by_hour, title=t("reports.by_hour")),
    )
