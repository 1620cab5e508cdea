"""The session engine against its table of cases, plus targeted tests of choices the table cannot show."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from protocol.sessionrules import Role, Shown, shown_for
from server.sessions import (
    CentreRules,
    Correction,
    IgnoredCorrection,
    IgnoreReason,
    SessionStatus,
    Tap,
    TapRole,
    compute_sessions,
)

from .session_cases import (
    CASES,
    Case,
    build_corrections,
    build_now,
    build_rules,
    build_taps,
    event_uuid,
    expected_ignored,
    expected_roles,
    expected_sessions,
    local,
)


def _run(case: Case, *, reverse: bool = False):
    taps = build_taps(case)
    corrections = build_corrections(case)
    if reverse:
        taps.reverse()
        corrections.reverse()
    return compute_sessions(taps, build_rules(case), corrections, now=build_now(case))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case) -> None:
    result = _run(case)
    assert result.sessions == expected_sessions(case)
    assert dict(result.roles) == expected_roles(case)
    assert result.ignored_corrections == expected_ignored(case)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_input_order_does_not_matter(case: Case) -> None:
    assert _run(case, reverse=True) == _run(case)


def test_table_is_large_and_named_uniquely() -> None:
    names = [c.name for c in CASES]
    assert len(names) >= 25
    assert len(set(names)) == len(names)


def test_every_case_lists_a_role_for_every_tap() -> None:
    for case in CASES:
        assert sorted(case.expected_roles) == sorted(label for label, *_ in case.taps), case.name


def test_database_cases_hold_only_corrections_the_schema_accepts() -> None:
    """The database run reuses every case not marked ``engine_only``; keep those storable."""
    for case in CASES:
        if case.engine_only:
            continue
        ids = [c["id"] for c in case.corrections]
        assert len(ids) == len(set(ids)), case.name
        for c in case.corrections:
            assert c["action"] in ("approve", "adjust", "reject", "manual"), case.name
            assert c.get("minutes") is None or c["minutes"] >= 0, case.name
            if c["action"] == "manual":
                assert c.get("member") is not None and c.get("centre") is not None, case.name


# ---- ids and time --------------------------------------------------------------------------------


def test_event_uuid_is_uuid7_and_orders_like_labels_at_equal_times() -> None:
    at = local("09:00")
    first, second = event_uuid("a1", at), event_uuid("a2", at)
    assert uuid.UUID(first).version == 7
    assert str(uuid.UUID(first)) == first
    assert first < second
    assert event_uuid("z9", at) < event_uuid("a1", at + timedelta(milliseconds=1))


def test_result_times_are_utc_whatever_zone_taps_come_in() -> None:
    east8 = timezone(timedelta(hours=8))
    taps = [
        Tap("e1", 1, 1, datetime(2024, 3, 4, 9, 0, tzinfo=east8)),
        Tap("e2", 1, 1, datetime(2024, 3, 4, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))),
    ]
    (session,) = compute_sessions(taps, CentreRules(), now=datetime(2024, 3, 5, tzinfo=UTC)).sessions
    assert session.started_at == datetime(2024, 3, 4, 1, 0, tzinfo=UTC)
    assert session.started_at.tzinfo is UTC
    assert session.ended_at is not None and session.ended_at.tzinfo is UTC
    assert session.credited_minutes == 60


def test_naive_datetimes_are_a_programming_error() -> None:
    aware = datetime(2024, 3, 4, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_sessions([Tap("e1", 1, 1, aware.replace(tzinfo=None))], CentreRules(), now=aware)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_sessions([Tap("e1", 1, 1, aware)], CentreRules(), now=aware.replace(tzinfo=None))


def test_repeated_event_is_counted_once_but_conflicting_ids_raise() -> None:
    at = datetime(2024, 3, 4, 1, tzinfo=UTC)
    tap = Tap("e1", 1, 1, at)
    result = compute_sessions([tap, tap], CentreRules(), now=at)
    assert len(result.sessions) == 1 and dict(result.roles) == {"e1": TapRole.IN}
    with pytest.raises(ValueError, match="different contents"):
        compute_sessions([tap, Tap("e1", 2, 1, at)], CentreRules(), now=at)


# ---- rules ---------------------------------------------------------------------------------------


def test_rules_mapping_falls_back_to_defaults_for_unknown_centres() -> None:
    start = datetime(2024, 3, 4, 0, tzinfo=UTC)
    taps = [Tap("e1", 1, 7, start), Tap("e2", 1, 7, start + timedelta(seconds=30))]
    result = compute_sessions(taps, {1: CentreRules(debounce=timedelta(0))}, now=start + timedelta(hours=1))
    assert result.roles["e2"] == TapRole.DUPLICATE  # the default 60 s debounce, not centre 1's


@pytest.mark.parametrize(
    "kwargs",
    [{"debounce": timedelta(seconds=-1)}, {"max_length": timedelta(0)}, {"closes_at": time(21, tzinfo=UTC)}],
)
def test_nonsense_rules_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CentreRules(**kwargs)


def test_next_closing_in_a_zone_with_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    rules = CentreRules(closes_at=time(21, 0), tz=berlin)
    # 22:00 CET on the night Berlin springs forward: next closing is 21:00 CEST = 19:00 UTC.
    started = datetime(2024, 3, 30, 22, 0, tzinfo=berlin)
    assert rules.next_closing(started) == datetime(2024, 3, 31, 19, 0, tzinfo=UTC)
    assert rules.next_closing(datetime(2024, 3, 30, 20, 0, tzinfo=berlin)) == datetime(
        2024, 3, 30, 20, 0, tzinfo=UTC
    )


def test_closing_time_exactly_at_check_in_means_next_day() -> None:
    rules = CentreRules(closes_at=time(21, 0))
    started = local("21:00")
    assert rules.next_closing(started) == local("2024-03-05 21:00")


# ---- corrections ---------------------------------------------------------------------------------

_T0 = datetime(2024, 3, 4, 1, 0, tzinfo=UTC)


def _closed_session_taps() -> list[Tap]:
    return [Tap("e1", 1, 1, _T0), Tap("e2", 1, 1, _T0 + timedelta(hours=2))]


def test_corrections_with_naive_datetimes_are_ignored_not_raised() -> None:
    bad = Correction(1, "approve", _T0.replace(tzinfo=None) + timedelta(hours=3), "e1")
    result = compute_sessions(_closed_session_taps(), CentreRules(), [bad], now=_T0 + timedelta(hours=4))
    assert result.ignored_corrections == (IgnoredCorrection(1, IgnoreReason.NAIVE_DATETIME),)
    assert result.sessions[0].status == SessionStatus.CLOSED


def test_approve_after_adjust_means_kiosk_times() -> None:
    """Corrections do not stack: approve always credits the observed (kiosk) times."""
    later = _T0 + timedelta(hours=3)
    corrections = [
        Correction(1, "adjust", later, "e1", ended_at=_T0 + timedelta(minutes=30)),
        Correction(2, "approve", later + timedelta(minutes=1), "e1"),
    ]
    result = compute_sessions(_closed_session_taps(), CentreRules(), corrections, now=later)
    (session,) = result.sessions
    assert (session.status, session.credited_minutes) == (SessionStatus.APPROVED, 120)
    assert session.ended_at == _T0 + timedelta(hours=2)


def test_equal_created_at_ordered_by_id() -> None:
    later = _T0 + timedelta(hours=3)
    corrections = [Correction(2, "approve", later, "e1"), Correction(1, "reject", later, "e1")]
    result = compute_sessions(_closed_session_taps(), CentreRules(), corrections, now=later)
    assert result.sessions[0].status == SessionStatus.APPROVED


def test_approving_auto_closed_session_is_ignored_even_after_closing_time() -> None:
    rules = CentreRules(closes_at=time(21, 0))
    taps = [Tap("e1", 1, 1, local("18:00"))]
    approve = Correction(1, "approve", local("2024-03-05 09:00"), "e1")
    result = compute_sessions(taps, rules, [approve], now=local("2024-03-05 09:00"))
    assert result.sessions[0].status == SessionStatus.AUTO_CLOSED
    assert result.sessions[0].credited_minutes == 0
    assert result.ignored_corrections == (IgnoredCorrection(1, IgnoreReason.NO_OBSERVED_END),)


def test_late_upload_that_moves_a_check_in_orphans_its_correction() -> None:
    """A correction names a session by its check-in event; if that event becomes an OUT it is reported."""
    later = _T0 + timedelta(hours=5)
    approve = Correction(1, "approve", later, "e2")
    taps = [*_closed_session_taps(), Tap("e3", 1, 1, _T0 + timedelta(hours=3))]
    before = compute_sessions(taps[1:], CentreRules(), [approve], now=later)
    assert before.sessions[0].status == SessionStatus.APPROVED
    after = compute_sessions(taps, CentreRules(), [approve], now=later)
    assert after.roles["e2"] == TapRole.OUT
    assert after.ignored_corrections == (IgnoredCorrection(1, IgnoreReason.UNKNOWN_SESSION),)
    assert [s.status for s in after.sessions] == [SessionStatus.CLOSED, SessionStatus.OPEN]


def test_corrections_never_change_roles() -> None:
    later = _T0 + timedelta(hours=3)
    plain = compute_sessions(_closed_session_taps(), CentreRules(), now=later)
    corrected = compute_sessions(
        _closed_session_taps(), CentreRules(), [Correction(1, "reject", later, "e1")], now=later
    )
    assert corrected.roles == plain.roles
    assert corrected.sessions[0].status == SessionStatus.REJECTED


# -- what the screen said ---------------------------------------------------------------------------
_T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)


def _tap(n: int, centre: int, minutes: float, shown: Shown | None) -> Tap:
    at = _T0 + timedelta(minutes=minutes)
    return Tap(event_uuid(f"s{n}", at), 1, centre, at, shown)


def _sessions(*taps: Tap, now_minutes: float = 120):
    return compute_sessions(taps, CentreRules(), now=_T0 + timedelta(minutes=now_minutes)).sessions


def test_the_seen_case_a_kiosk_that_showed_out_sends_the_new_session_to_review() -> None:
    """In at A, in at B, then A's kiosk (unaware of B) said "签退成功，本次服务 9 分钟": the server opens a
    new session at A; that session is in review with the reason "the kiosk showed: checked out"."""
    a_in = _tap(1, 1, 0, Shown(Role.IN))
    b_in = _tap(2, 2, 5, Shown(Role.IN))
    a_again = _tap(3, 1, 9, Shown(Role.OUT, 9))
    a, b, new = _sessions(a_in, b_in, a_again)
    assert (a.status, a.reason) == (SessionStatus.NEEDS_REVIEW, "open_elsewhere")
    assert (b.status, b.reason) == (SessionStatus.NEEDS_REVIEW, "open_elsewhere")
    assert new.key == a_again.event_id
    assert (new.status, new.reason, new.credited_minutes) == (SessionStatus.NEEDS_REVIEW, "screen_out", 0)
    assert new.ended_at is None


def test_a_screen_that_agreed_changes_nothing() -> None:
    taps = (
        _tap(1, 1, 0, Shown(Role.IN)),
        _tap(2, 1, 0.5, Shown(Role.DUPLICATE)),
        _tap(3, 1, 30, Shown(Role.OUT, 30)),
    )
    (s,) = _sessions(*taps)
    assert (s.status, s.credited_minutes, s.reason) == (SessionStatus.CLOSED, 30, None)
    assert _sessions(*taps) == _sessions(*(replace(t, shown=None) for t in taps))


def test_other_minutes_on_the_screen_send_the_session_to_review() -> None:
    (s,) = _sessions(_tap(1, 1, 0, Shown(Role.IN)), _tap(2, 1, 30, Shown(Role.OUT, 41)))
    assert (s.status, s.reason, s.credited_minutes) == (SessionStatus.NEEDS_REVIEW, "screen_minutes", 0)
    assert s.ended_at == _T0 + timedelta(minutes=30)


def test_a_screen_that_said_in_for_a_check_out_sends_that_session_to_review() -> None:
    (s,) = _sessions(_tap(1, 1, 0, Shown(Role.IN)), _tap(2, 1, 30, Shown(Role.IN)))
    assert (s.status, s.reason) == (SessionStatus.NEEDS_REVIEW, "screen_in")


def test_a_screen_that_said_duplicate_for_a_toggle_and_a_toggle_for_a_duplicate() -> None:
    (s,) = _sessions(_tap(1, 1, 0, Shown(Role.IN)), _tap(2, 1, 30, Shown(Role.DUPLICATE)))
    assert (s.status, s.reason) == (SessionStatus.NEEDS_REVIEW, "screen_duplicate")
    # a duplicate the screen called a check-out: the session the duplicate fell into goes to review
    (s,) = _sessions(_tap(1, 1, 0, Shown(Role.IN)), _tap(2, 1, 0.5, Shown(Role.OUT, 0)), _tap(3, 1, 40, None))
    assert (s.status, s.reason, s.ended_at) == (
        SessionStatus.NEEDS_REVIEW,
        "screen_out",
        _T0 + timedelta(minutes=40),
    )


def test_taps_without_a_recorded_screen_are_not_compared() -> None:
    (s,) = _sessions(_tap(1, 1, 0, None), _tap(2, 1, 30, None))
    assert (s.status, s.credited_minutes) == (SessionStatus.CLOSED, 30)


@pytest.mark.parametrize(
    ("direction", "reason", "shown"),
    [
        ("in", "shown:in", Shown(Role.IN)),
        ("in", "shown:in:elsewhere", Shown(Role.IN, elsewhere=True)),
        ("out", "shown:out:9", Shown(Role.OUT, 9)),
        ("duplicate", "shown:duplicate", Shown(Role.DUPLICATE)),
        ("in", None, None),  # an older kiosk: not compared
        ("out", "shown:in", None),  # direction and reason disagree: corrupt, not compared
        ("out", "shown:out:x", None),
        ("unknown", "not_in_roster", None),
        ("rejected", "shown:in", None),
    ],
)
def test_what_the_screen_said_round_trips_through_the_tap_reason(direction, reason, shown) -> None:
    assert shown_for(direction, reason) == shown
    if shown is not None:
        assert shown_for(direction, shown.reason()) == shown
