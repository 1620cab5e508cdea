"""Whether a session span typed by a person makes sense, before it becomes a correction.

The engine (:mod:`server.sessions.corrections`) only refuses what it cannot apply at all (end before
start, minutes outside the span, overlaps). People can still type what the engine accepts but nobody
meant: an end in 2027, a 52-hour session built on taps of another day. This module is the one judge of
such spans, for every path that writes one (adjust, manual entry, approve and bulk approve), so that a
change of form library (Flask-WTF) swaps only the form layer. It is pure: the caller passes the centre's
maximum (from the centre's rules, the value the engine uses), the session's own tap times and ``now``.

The rules, in the order a person reads them:

* ``end_not_after_start`` — the end must be strictly after the start. Spans are compared at full
  precision: a session whose taps fall in the same minute is valid (the form keeps the taps' seconds).
* ``in_future`` — neither time may be later than ``now``.
* ``before_programme`` — no time before ``SESSION_TIMES[0]`` (2000-01-01; the same bound ingest uses for
  taps), which catches a mistyped year such as 0025.
* ``minutes_out_of_range`` — credited minutes between 0 and the whole minutes of the span.
* ``starts_too_early`` / ``ends_too_late`` — *within reach of the session's own taps*: a kiosk session's
  span may start no earlier than the centre's maximum length before its first tap and end no later than
  the maximum after its last tap (a span further away is more likely another session, a manual entry).
  An admin may confirm it: a member who really served 14 hours on one check-in is credited only that way.
  Manual sessions have no taps, so the rule does not apply to them.
* ``too_long`` — longer than the centre's maximum session length. An admin may confirm it.
* ``other_day`` — the span touches a local day (Asia/Shanghai by default, the centre's zone) on which
  none of its taps lies; for a session without taps (manual), it starts and ends on different local days.
  An admin may confirm it. The end's day is that of the last instant inside the span, so a session
  ending exactly at midnight stays on its day.

Every problem is reported, not only the first, so the form can say everything that is wrong at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from protocol.sessionrules import SHANGHAI, whole_minutes

from .rules import require_aware
from .store import SESSION_TIMES

logger = logging.getLogger(__name__)

_TICK = timedelta(microseconds=1)


class SpanProblem(StrEnum):
    """What is wrong with a span; stable strings that the web layer turns into messages."""

    END_NOT_AFTER_START = "end_not_after_start"
    IN_FUTURE = "in_future"
    BEFORE_PROGRAMME = "before_programme"
    MINUTES_OUT_OF_RANGE = "minutes_out_of_range"
    STARTS_TOO_EARLY = "starts_too_early"
    ENDS_TOO_LATE = "ends_too_late"
    TOO_LONG = "too_long"
    OTHER_DAY = "other_day"


#: Problems an admin may confirm (the span is unusual, not impossible).
CONFIRMABLE = frozenset(
    {SpanProblem.STARTS_TOO_EARLY, SpanProblem.ENDS_TOO_LATE, SpanProblem.TOO_LONG, SpanProblem.OTHER_DAY}
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a span, with the values a message needs (``span_minutes``, a bound, …)."""

    code: SpanProblem
    params: dict[str, object] = field(default_factory=dict)

    @property
    def confirmable(self) -> bool:
        return self.code in CONFIRMABLE


@dataclass(frozen=True, slots=True)
class SpanRequest:
    """A span to judge. ``tap_times`` are the session's own taps (empty for a manual session)."""

    started_at: datetime
    ended_at: datetime
    minutes: int | None
    max_length: timedelta
    now: datetime
    tap_times: Sequence[datetime] = ()
    tz: ZoneInfo = SHANGHAI


def _day(value: datetime, tz: ZoneInfo) -> date:
    return value.astimezone(tz).date()


def validate_span(request: SpanRequest, *, confirmed: bool = False) -> list[Problem]:
    """Every problem of ``request``; ``confirmed`` (an admin ticked "confirm") drops the confirmable ones.

    An empty list means the span may be written. The caller decides who may confirm: only admins.
    """
    start = require_aware(request.started_at, "started_at")
    end = require_aware(request.ended_at, "ended_at")
    now = require_aware(request.now, "now")
    taps = sorted(require_aware(t, "tap time") for t in request.tap_times)
    tz = request.tz
    problems: list[Problem] = []
    ordered = end > start
    if not ordered:
        problems.append(Problem(SpanProblem.END_NOT_AFTER_START))
    if max(start, end) > now:
        problems.append(Problem(SpanProblem.IN_FUTURE, {"now": now}))
    if min(start, end) < SESSION_TIMES[0]:
        problems.append(Problem(SpanProblem.BEFORE_PROGRAMME, {"earliest": SESSION_TIMES[0]}))
    if ordered and request.minutes is not None:
        span = whole_minutes(start, end)
        if not 0 <= request.minutes <= span:
            problems.append(Problem(SpanProblem.MINUTES_OUT_OF_RANGE, {"span_minutes": span}))
    if taps:
        earliest, latest = taps[0] - request.max_length, taps[-1] + request.max_length
        if start < earliest:
            problems.append(Problem(SpanProblem.STARTS_TOO_EARLY, {"bound": earliest}))
        if end > latest:
            problems.append(Problem(SpanProblem.ENDS_TOO_LATE, {"bound": latest}))
    if ordered and end - start > request.max_length:
        problems.append(
            Problem(SpanProblem.TOO_LONG, {"max_minutes": whole_minutes(start, start + request.max_length)})
        )
    if ordered:
        days = {_day(start, tz), _day(end - _TICK, tz)}
        allowed = {_day(t, tz) for t in taps} if taps else {_day(start, tz)}
        if not days <= allowed:
            problems.append(Problem(SpanProblem.OTHER_DAY, {"days": sorted(allowed)}))
    if confirmed:
        problems = [p for p in problems if not p.confirmable]
    if problems:
        logger.debug("span %s–%s refused: %s", start, end, [str(p.code) for p in problems])
    return problems
