"""Times are stored in UTC and shown in the centre's zone (Asia/Shanghai by default).

A "day" in reports and on screens is the local calendar day: it starts at local midnight, which is 16:00 UTC
the previous day in Asia/Shanghai. Every query by day goes through :func:`local_day_bounds` so that a tap at
07:30 local time is never counted on the previous UTC date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


def to_local(value: datetime, tz: ZoneInfo = DEFAULT_TZ) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: stored times are UTC and must be aware")
    return value.astimezone(tz)


def local_date(value: datetime, tz: ZoneInfo = DEFAULT_TZ) -> date:
    return to_local(value, tz).date()


def local_day_bounds(day: date, tz: ZoneInfo = DEFAULT_TZ) -> tuple[datetime, datetime]:
    """UTC [start, end) of the local calendar day ``day``."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def local_range_bounds(first: date, last: date, tz: ZoneInfo = DEFAULT_TZ) -> tuple[datetime, datetime]:
    """UTC [start, end) covering local days ``first`` … ``last`` inclusive."""
    if last < first:
        raise ValueError("range ends before it starts")
    return local_day_bounds(first, tz)[0], local_day_bounds(last, tz)[1]


def format_local(value: datetime | None, tz: ZoneInfo = DEFAULT_TZ, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "" if value is None else to_local(value, tz).strftime(fmt)
