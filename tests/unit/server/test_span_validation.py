"""The span judge of adjust, manual entry and approve (server.sessions.validation), as a table of cases.

Times are local Asia/Shanghai text; ``now`` is 2025-03-10 18:00 local and the centre's maximum 12 h unless
a case says otherwise.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from protocol.sessionrules import SHANGHAI
from server.sessions.validation import CONFIRMABLE, SpanProblem, SpanRequest, validate_span

P = SpanProblem
NOW = "2025-03-10 18:00"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


# (name, start, end, minutes, taps, max hours, expected problems)
CASES: list[tuple[str, str, str, int | None, tuple[str, ...], int, set[SpanProblem]]] = [
    ("ordinary adjust", "2025-03-10 09:00", "2025-03-10 11:00", None, ("2025-03-10 09:05",), 12, set()),
    ("minutes inside span", "2025-03-10 09:00", "2025-03-10 11:00", 120, ("2025-03-10 09:00",), 12, set()),
    ("zero minutes", "2025-03-10 09:00", "2025-03-10 09:00:40", 0, ("2025-03-10 09:00",), 12, set()),
    (
        "same minute, seconds apart",
        "2025-03-10 09:00:10",
        "2025-03-10 09:00:50",
        None,
        ("2025-03-10 09:00:10", "2025-03-10 09:00:50"),
        12,
        set(),
    ),
    (
        "end equals start",
        "2025-03-10 09:00",
        "2025-03-10 09:00",
        None,
        ("2025-03-10 09:00",),
        12,
        {P.END_NOT_AFTER_START},
    ),
    (
        "end before start",
        "2025-03-10 11:00",
        "2025-03-10 09:00",
        30,
        ("2025-03-10 09:00",),
        12,
        {P.END_NOT_AFTER_START},
    ),
    (
        "minutes above span",
        "2025-03-10 09:00",
        "2025-03-10 10:00",
        61,
        ("2025-03-10 09:00",),
        12,
        {P.MINUTES_OUT_OF_RANGE},
    ),
    (
        "negative minutes",
        "2025-03-10 09:00",
        "2025-03-10 10:00",
        -1,
        ("2025-03-10 09:00",),
        12,
        {P.MINUTES_OUT_OF_RANGE},
    ),
    (
        "end in the future",
        "2025-03-10 17:00",
        "2025-03-10 18:01",
        None,
        ("2025-03-10 17:00",),
        12,
        {P.IN_FUTURE},
    ),
    ("end exactly now", "2025-03-10 17:00", "2025-03-10 18:00", None, ("2025-03-10 17:00",), 12, set()),
    (
        "end in 2027",
        "2025-03-10 09:00",
        "2027-03-10 11:00",
        None,
        ("2025-03-10 09:00",),
        12,
        {P.IN_FUTURE, P.ENDS_TOO_LATE, P.TOO_LONG, P.OTHER_DAY},
    ),
    (
        "52 hours on taps of another day",
        "2025-03-05 08:00",
        "2025-03-07 12:00",
        None,
        ("2025-03-08 09:00", "2025-03-08 10:00"),
        12,
        {P.STARTS_TOO_EARLY, P.TOO_LONG, P.OTHER_DAY},
    ),
    (
        "longer than the maximum, within reach of both taps",
        "2025-03-10 06:00",
        "2025-03-10 17:00",
        None,
        ("2025-03-10 06:00", "2025-03-10 16:30"),
        10,
        {P.TOO_LONG},
    ),
    ("exactly the maximum", "2025-03-10 06:00", "2025-03-10 16:00", None, ("2025-03-10 06:00",), 10, set()),
    (
        "auto-closed session stretched past the maximum after its only tap",
        "2025-03-10 06:00",
        "2025-03-10 17:00",
        None,
        ("2025-03-10 06:00",),
        10,
        {P.ENDS_TOO_LATE, P.TOO_LONG},
    ),
    (
        "start just inside reach",
        "2025-03-10 01:00",
        "2025-03-10 10:00",
        None,
        ("2025-03-10 13:00",),
        12,
        set(),
    ),
    (
        "start beyond reach",
        "2025-03-10 00:59",
        "2025-03-10 10:00",
        None,
        ("2025-03-10 13:00",),
        12,
        {P.STARTS_TOO_EARLY},
    ),
    (
        "end beyond reach after the last tap",
        "2025-03-10 02:00",
        "2025-03-10 10:01",
        None,
        ("2025-03-09 20:00", "2025-03-09 22:00"),
        12,
        {P.ENDS_TOO_LATE, P.OTHER_DAY},
    ),
    (
        "crossing midnight like its taps",
        "2025-03-09 22:00",
        "2025-03-10 02:00",
        None,
        ("2025-03-09 22:00", "2025-03-10 02:00"),
        12,
        set(),
    ),
    (
        "ending at midnight stays on its day",
        "2025-03-09 20:00",
        "2025-03-10 00:00",
        None,
        ("2025-03-09 20:00",),
        12,
        set(),
    ),
    ("manual on one day", "2025-03-08 14:00", "2025-03-08 16:00", None, (), 12, set()),
    ("manual across midnight", "2025-03-08 22:00", "2025-03-09 01:00", None, (), 12, {P.OTHER_DAY}),
    ("manual far from anything", "2024-01-02 09:00", "2024-01-02 10:00", None, (), 12, set()),
    (
        "manual with a mistyped year",
        "0025-03-08 09:00",
        "0025-03-08 10:00",
        None,
        (),
        12,
        {P.BEFORE_PROGRAMME},
    ),
]


@pytest.mark.parametrize(
    ("start", "end", "minutes", "taps", "hours", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_span_cases(start, end, minutes, taps, hours, expected) -> None:  # type: ignore[no-untyped-def]
    request = SpanRequest(
        started_at=local(start),
        ended_at=local(end),
        minutes=minutes,
        max_length=timedelta(hours=hours),
        now=local(NOW),
        tap_times=tuple(local(t) for t in taps),
    )
    assert {p.code for p in validate_span(request)} == expected
    # An admin's confirmation removes exactly the confirmable problems, nothing else.
    assert {p.code for p in validate_span(request, confirmed=True)} == expected - CONFIRMABLE


def test_every_problem_is_exercised_by_the_table() -> None:
    assert set().union(*(case[-1] for case in CASES)) == set(SpanProblem)


def test_problems_carry_what_the_message_needs() -> None:
    request = SpanRequest(
        started_at=local("2025-03-10 06:00"),
        ended_at=local("2025-03-10 19:00"),
        minutes=900,
        max_length=timedelta(hours=12),
        now=local(NOW),
        tap_times=(local("2025-03-10 06:00"),),
    )
    by_code = {p.code: p.params for p in validate_span(request)}
    assert by_code[P.MINUTES_OUT_OF_RANGE] == {"span_minutes": 780}
    assert by_code[P.TOO_LONG] == {"max_minutes": 720}
    assert by_code[P.IN_FUTURE] == {"now": local(NOW)}
    assert by_code[P.ENDS_TOO_LATE] == {"bound": local("2025-03-10 18:00")}


def test_naive_times_are_a_programming_error() -> None:
    with pytest.raises(ValueError):
        validate_span(
            SpanRequest(
                started_at=datetime(2025, 3, 10, 9),
                ended_at=local("2025-03-10 10:00"),
                minutes=None,
                max_length=timedelta(hours=12),
                now=local(NOW),
            )
        )
