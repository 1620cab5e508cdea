"""Report queries of the staff app ("all-weather supervision"), kept apart from the pages that show them.

Each function takes a SQLAlchemy session and a :class:`server.web.scope.Scope` and returns plain rows, so
the HTML pages, the CSV/XLSX exports and the benchmark all run the very same scoped query. See
:mod:`server.reports.queries`.
"""

from .queries import (
    CREDITED_STATUSES,
    ActivityGrid,
    HoursRow,
    IdleMember,
    centre_activity,
    centres_in_scope,
    daily_totals,
    month_bounds,
    monthly_totals,
    no_service_this_quarter,
    quarter_bounds,
    service_hours,
    year_bounds,
)

__all__ = [
    "CREDITED_STATUSES",
    "ActivityGrid",
    "HoursRow",
    "IdleMember",
    "centre_activity",
    "centres_in_scope",
    "daily_totals",
    "month_bounds",
    "monthly_totals",
    "no_service_this_quarter",
    "quarter_bounds",
    "service_hours",
    "year_bounds",
]
