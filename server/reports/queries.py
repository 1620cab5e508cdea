"""Scoped report queries: service hours, members without service this quarter, centre activity.

Why here and not in the views: the page, its CSV/XLSX export and ``bench/reports.py`` must agree to the
row, so there is exactly one query per report. Every query takes the user's :class:`Scope` and adds its
``clause`` for each model it reads, so a report can never show more than the lists do.

Periods are *local* calendar months, quarters and years (Asia/Shanghai by default): their UTC bounds come
from :mod:`server.localtime`, so a session at 07:30 on the 1st counts in that month, not the previous one.
Grouping by month is done with a ``CASE`` over the twelve UTC bounds rather than a database date function,
so it is the same SQL on SQLite and PostgreSQL and still uses the ``started_at`` indexes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, case, cast, exists, extract, func, select
from sqlalchemy.orm import Session

from server.localtime import DEFAULT_TZ, local_range_bounds, to_local
from server.models import Community, Member, ServiceCentre, ServiceSession, Unit

logger = logging.getLogger(__name__)

#: Statuses whose ``credited_minutes`` count as service time (open, auto-closed and rejected credit 0).
CREDITED_STATUSES = ("closed", "approved", "adjusted")
Group = Literal["member", "unit", "community"]


@dataclass(frozen=True)
class HoursRow:
    """One line of the service-hours report."""

    id: int
    code: str
    name: str
    minutes: int
    sessions: int
    extra: str = ""  # the member's unit name on the per-member report

    @property
    def hours(self) -> float:
        return round(self.minutes / 60, 1)


@dataclass(frozen=True)
class IdleMember:
    unit_id: int
    unit_code: str
    unit_name: str
    member_id: int
    member_no: str
    name: str


@dataclass
class ActivityGrid:
    """Check-ins by local weekday (0 = Monday) and hour: ``counts[weekday][hour]``."""

    counts: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])

    @property
    def total(self) -> int:
        return sum(map(sum, self.counts))

    @property
    def by_hour(self) -> list[int]:
        return [sum(day[h] for day in self.counts) for h in range(24)]

    @property
    def by_weekday(self) -> list[int]:
        return [sum(day) for day in self.counts]


def month_bounds(year: int, month: int, tz: ZoneInfo = DEFAULT_TZ) -> tuple[datetime, datetime]:
    """UTC [start, end) of a local calendar month."""
    last = (date(year + (month == 12), month % 12 + 1, 1)) - timedelta(days=1)
    return local_range_bounds(date(year, month, 1), last, tz)


def year_bounds(year: int, tz: ZoneInfo = DEFAULT_TZ) -> tuple[datetime, datetime]:
    return local_range_bounds(date(year, 1, 1), date(year, 12, 31), tz)


def quarter_bounds(day: date, tz: ZoneInfo = DEFAULT_TZ) -> tuple[datetime, datetime]:
    """UTC [start, end) of the local calendar quarter holding ``day``."""
    first_month = 3 * ((day.month - 1) // 3) + 1
    start = month_bounds(day.year, first_month, tz)[0]
    end = month_bounds(day.year, first_month + 2, tz)[1]
    return start, end


def _credited(scope: Any, start: datetime, end: datetime) -> Any:
    return and_(
        scope.clause(ServiceSession),
        ServiceSession.status.in_(CREDITED_STATUSES),
        ServiceSession.started_at >= start,
        ServiceSession.started_at < end,
    )


def service_hours(
    s: Session,
    scope: Any,
    *,
    group: Group,
    year: int,
    month: int | None = None,
    unit_id: int | None = None,
    community_id: int | None = None,
    tz: ZoneInfo = DEFAULT_TZ,
) -> list[HoursRow]:
    """Credited minutes and session count per member, unit or community in a local month or year.

    Sorted by minutes, most first. Rows are aggregated in the database first and names joined after, so
    a city-wide month touches the ``started_at`` index once and the name tables once per group.
    """
    start, end = month_bounds(year, month, tz) if month else year_bounds(year, tz)
    key = {
        "member": ServiceSession.member_id,
        "unit": ServiceSession.unit_id,
        "community": ServiceSession.community_id,
    }[group]
    where = [_credited(scope, start, end)]
    if unit_id is not None:
        where.append(ServiceSession.unit_id == unit_id)
    if community_id is not None:
        where.append(ServiceSession.community_id == community_id)
    totals = (
        select(
            key.label("gid"),
            func.sum(ServiceSession.credited_minutes).label("minutes"),
            func.count().label("sessions"),
        )
        .where(*where)
        .group_by(key)
        .subquery()
    )
    if group == "member":
        stmt = (
            select(totals, Member.member_no, Member.name, Unit.name)
            .join(Member, Member.id == totals.c.gid)
            .join(Unit, Unit.id == Member.unit_id)
        )
    elif group == "unit":
        stmt = select(totals, Unit.code, Unit.name, None).join(Unit, Unit.id == totals.c.gid)
    else:
        stmt = select(totals, Community.code, Community.name, None).join(
            Community, Community.id == totals.c.gid
        )
    rows = s.execute(stmt.order_by(totals.c.minutes.desc(), totals.c.gid)).all()
    return [
        HoursRow(id=r[0], code=r[3], name=r[4], minutes=int(r[1] or 0), sessions=int(r[2]), extra=r[5] or "")
        for r in rows
    ]


def monthly_totals(
    s: Session,
    scope: Any,
    *,
    year: int,
    unit_id: int | None = None,
    community_id: int | None = None,
    member_id: int | None = None,
    tz: ZoneInfo = DEFAULT_TZ,
) -> list[int]:
    """Credited minutes for each local month of ``year`` (twelve numbers), for the year chart."""
    bounds = [month_bounds(year, m, tz) for m in range(1, 13)]
    bucket = case(*((ServiceSession.started_at < end, m) for m, (_s, end) in enumerate(bounds, 1)))
    where = [_credited(scope, bounds[0][0], bounds[-1][1])]
    if unit_id is not None:
        where.append(ServiceSession.unit_id == unit_id)
    if community_id is not None:
        where.append(ServiceSession.community_id == community_id)
    if member_id is not None:
        where.append(ServiceSession.member_id == member_id)
    stmt = select(bucket, func.sum(ServiceSession.credited_minutes)).where(*where).group_by(bucket)
    months = [0] * 12
    for month, minutes in s.execute(stmt):
        months[int(month) - 1] = int(minutes or 0)
    return months


def daily_totals(
    s: Session,
    scope: Any,
    *,
    year: int,
    month: int,
    unit_id: int | None = None,
    community_id: int | None = None,
    tz: ZoneInfo = DEFAULT_TZ,
) -> list[int]:
    """Credited minutes for each local day of one month (the month view's trend: reads only that month)."""
    start, end = month_bounds(year, month, tz)
    days = round((end - start).total_seconds() / 86400)
    edges = [start + timedelta(days=d + 1) for d in range(days)]
    bucket = case(*((ServiceSession.started_at < edge, d) for d, edge in enumerate(edges, 1)))
    where = [_credited(scope, start, end)]
    if unit_id is not None:
        where.append(ServiceSession.unit_id == unit_id)
    if community_id is not None:
        where.append(ServiceSession.community_id == community_id)
    totals = [0] * days
    for day, minutes in s.execute(
        select(bucket, func.sum(ServiceSession.credited_minutes)).where(*where).group_by(bucket)
    ):
        totals[int(day) - 1] = int(minutes or 0)
    return totals


def no_service_this_quarter(
    s: Session,
    scope: Any,
    *,
    today: date | None = None,
    unit_id: int | None = None,
    tz: ZoneInfo = DEFAULT_TZ,
) -> list[IdleMember]:
    """Active members in scope with no credited session in the current local quarter, by unit."""
    today = today or to_local(datetime.now(tz), tz).date()
    start, end = quarter_bounds(today, tz)
    served = exists().where(
        ServiceSession.member_id == Member.id,
        ServiceSession.status.in_(CREDITED_STATUSES),
        ServiceSession.started_at >= start,
        ServiceSession.started_at < end,
    )
    stmt = (
        select(Unit.id, Unit.code, Unit.name, Member.id, Member.member_no, Member.name)
        .join(Unit, Unit.id == Member.unit_id)
        .where(scope.clause(Member), Member.status == "active", ~served)
    )
    if unit_id is not None:
        stmt = stmt.where(Member.unit_id == unit_id)
    rows = s.execute(stmt.order_by(Unit.code, Member.member_no)).all()
    return [IdleMember(*r) for r in rows]


def _local_parts(s: Session, column: Any, tz: ZoneInfo, at: datetime) -> tuple[Any, Any]:
    """SQL expressions for the local weekday (0 = Monday) and hour of a UTC ``column``.

    PostgreSQL converts with the zone's rules; SQLite has no zone database, so it shifts by the zone's
    UTC offset at ``at`` (exact for zones without daylight saving time, such as Asia/Shanghai).
    """
    if s.get_bind().dialect.name == "postgresql":
        local = func.timezone(tz.key, column)
        return extract("isodow", local) - 1, extract("hour", local)
    offset = int((at.astimezone(tz).utcoffset() or timedelta()).total_seconds())
    shift = f"{offset:+d} seconds"
    weekday = (cast(func.strftime("%w", column, shift), Integer()) + 6) % 7
    return weekday, cast(func.strftime("%H", column, shift), Integer())


def centre_activity(
    s: Session,
    scope: Any,
    *,
    first: date,
    last: date,
    centre_id: int | None = None,
    tz: ZoneInfo = DEFAULT_TZ,
) -> ActivityGrid:
    """Check-ins (session starts) per local weekday and hour at the centres in scope, days ``first``-``last``."""
    start, end = local_range_bounds(first, last, tz)
    weekday, hour = _local_parts(s, ServiceSession.started_at, tz, start)
    stmt = (
        select(weekday, hour, func.count())
        .where(
            scope.clause(ServiceSession),
            ServiceSession.started_at >= start,
            ServiceSession.started_at < end,
        )
        .group_by(weekday, hour)
    )
    if centre_id is not None:
        stmt = stmt.where(ServiceSession.centre_id == centre_id)
    grid = ActivityGrid()
    for wd, hr, count in s.execute(stmt):
        grid.counts[int(wd)][int(hr)] = int(count)
    return grid


def centres_in_scope(s: Session, scope: Any) -> list[ServiceCentre]:
    return list(
        s.scalars(select(ServiceCentre).where(scope.clause(ServiceCentre)).order_by(ServiceCentre.code))
    )
