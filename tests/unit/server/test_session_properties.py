"""Properties of the session engine over generated taps, rules and corrections (hypothesis).

Taps are generated as one shared clock with gaps drawn from three scales (seconds, hours, most of a day),
so debounce windows, equal instants, max-length and closing-time limits are all hit often.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.sessionrules import Shown, whole_minutes
from server.sessions import (
    CentreRules,
    Correction,
    EngineResult,
    Session,
    SessionStatus,
    Tap,
    TapRole,
    compute_sessions,
)

from .session_cases import event_uuid

BASE = datetime(2024, 3, 4, 0, 0, tzinfo=UTC)
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

gaps = st.one_of(st.integers(0, 120), st.integers(0, 6 * 3600), st.integers(0, 20 * 3600))
# centre 1 is the member's usual centre; 2 and 3 make open-elsewhere common but not dominant
tap_specs = st.lists(st.tuples(st.integers(1, 3), st.sampled_from([1, 1, 1, 2, 3]), gaps), max_size=40)
closing_times = st.one_of(st.none(), st.builds(time, st.integers(0, 23), st.sampled_from([0, 30])))
centre_rules = st.builds(
    CentreRules,
    debounce=st.integers(0, 300).map(lambda s: timedelta(seconds=s)),
    max_length=st.integers(30, 24 * 60).map(lambda m: timedelta(minutes=m)),
    closes_at=closing_times,
)
rules_args = st.one_of(centre_rules, st.dictionaries(st.integers(1, 3), centre_rules, max_size=3))


def make_taps(specs: list[tuple[int, int, int]]) -> list[Tap]:
    taps, at = [], BASE
    for i, (member, centre, gap) in enumerate(specs):
        at += timedelta(seconds=gap)
        taps.append(Tap(event_uuid(f"t{i}", at), member, centre, at))
    return taps


def by_member(sessions: Iterable[Session]) -> dict[int, list[Session]]:
    grouped: dict[int, list[Session]] = defaultdict(list)
    for s in sessions:
        grouped[s.member_id].append(s)
    return grouped


def assert_no_overlap(sessions: Iterable[Session]) -> None:
    """Half-open intervals; an open session runs to infinity."""
    for member_sessions in by_member(sessions).values():
        ordered = sorted(member_sessions, key=lambda s: (s.started_at, s.key))
        for earlier, later in pairwise(ordered):
            assert earlier.ended_at is not None, (earlier, later)
            assert earlier.ended_at <= later.started_at, (earlier, later)


def assert_at_most_one_open(result: EngineResult) -> None:
    opens = Counter(s.member_id for s in result.sessions if s.status == SessionStatus.OPEN)
    assert all(n == 1 for n in opens.values()), opens


def observed_span_minutes(base: Session) -> int:
    """Whole minutes between a kiosk session's own first and last tap (0 if only the check-in is known)."""
    if base.status in (SessionStatus.CLOSED, SessionStatus.NEEDS_REVIEW) and base.ended_at is not None:
        return whole_minutes(base.started_at, base.ended_at)
    return 0


@SETTINGS
@given(specs=tap_specs, rules=rules_args, now_after=st.integers(-3600, 2 * 86400), data=st.data())
def test_tap_invariants(specs, rules, now_after, data) -> None:
    taps = make_taps(specs)
    now = (taps[-1].at if taps else BASE) + timedelta(seconds=now_after)
    result = compute_sessions(taps, rules, now=now)

    # every event gets exactly one role; one kiosk session per IN
    assert set(result.roles) == {t.event_id for t in taps}
    assert sum(role == TapRole.IN for role in result.roles.values()) == len(result.sessions)
    assert {s.key for s in result.sessions} == {k for k, r in result.roles.items() if r == TapRole.IN}

    member_taps: dict[int, list[datetime]] = defaultdict(list)
    for t in taps:
        member_taps[t.member_id].append(t.at)
    for s in result.sessions:
        assert s.source == "kiosk"
        assert s.credited_minutes >= 0
        assert s.credited_minutes <= observed_span_minutes(s)
        wall = whole_minutes(min(member_taps[s.member_id]), max(member_taps[s.member_id]))
        assert s.credited_minutes <= wall
        assert s.ended_at is None or s.ended_at >= s.started_at
        assert (s.status == SessionStatus.OPEN) == (s.ended_at is None)
    assert_at_most_one_open(result)
    assert_no_overlap(result.sessions)
    assert result.sessions == tuple(sorted(result.sessions, key=lambda s: (s.started_at, s.key)))

    # deterministic and idempotent
    shuffled = data.draw(st.permutations(taps), label="shuffled taps")
    assert compute_sessions(shuffled, rules, now=now) == result
    assert compute_sessions(taps, rules, now=now) == result

    # duplicates change nothing: dropping them gives the same sessions
    kept = [t for t in taps if result.roles[t.event_id] != TapRole.DUPLICATE]
    assert compute_sessions(kept, rules, now=now).sessions == result.sessions


def corrections_for(base: list[Session], members: list[int]) -> st.SearchStrategy[list[Correction]]:
    """A mix of arbitrary corrections (mostly invalid) and plausible ones (mostly valid), so both the
    ignore paths and approved / adjusted / manual sessions are exercised."""
    offsets = st.integers(-3600, 5 * 86400).map(lambda s: BASE + timedelta(seconds=s))
    maybe_time = st.one_of(st.none(), offsets)
    keys = [s.key for s in base]
    ids = st.integers(1, 60)
    arbitrary = st.builds(
        Correction,
        id=ids,
        action=st.sampled_from(["approve", "adjust", "reject", "manual", "bogus"]),
        created_at=offsets,
        session_key=st.one_of(st.none(), st.sampled_from([*keys, "manual:3", "nope"])),
        member_id=st.one_of(st.none(), st.sampled_from(members or [1])),
        centre_id=st.one_of(st.none(), st.integers(1, 3)),
        started_at=maybe_time,
        ended_at=maybe_time,
        minutes=st.one_of(st.none(), st.integers(-5, 3000)),
    )
    strategies = [arbitrary]
    late = BASE + timedelta(days=6)
    if base:

        @st.composite
        def plausible(draw: st.DrawFn) -> Correction:
            target = draw(st.sampled_from(base))
            action = draw(st.sampled_from(["approve", "adjust", "reject"]))
            start = target.started_at + timedelta(minutes=draw(st.integers(-120, 120)))
            end = start + timedelta(minutes=draw(st.integers(1, 900)))
            return Correction(
                id=draw(ids),
                action=action,
                created_at=late + timedelta(minutes=draw(st.integers(0, 600))),
                session_key=target.key,
                started_at=draw(st.sampled_from([None, start])),
                ended_at=end,
                minutes=draw(st.one_of(st.none(), st.integers(0, 60))),
            )

        strategies.append(plausible())

    @st.composite
    def manual(draw: st.DrawFn) -> Correction:
        start = draw(offsets)
        return Correction(
            id=draw(ids),
            action="manual",
            created_at=late + timedelta(minutes=draw(st.integers(0, 600))),
            session_key=None,
            member_id=draw(st.sampled_from(members or [1])),
            centre_id=draw(st.integers(1, 3)),
            started_at=start,
            ended_at=start + timedelta(minutes=draw(st.integers(1, 600))),
            minutes=draw(st.one_of(st.none(), st.integers(0, 60))),
        )

    strategies.append(manual())
    return st.lists(st.one_of(strategies), max_size=12)


@SETTINGS
@given(specs=tap_specs, rules=rules_args, now_after=st.integers(-3600, 2 * 86400), data=st.data())
def test_correction_invariants(specs, rules, now_after, data) -> None:
    taps = make_taps(specs)
    now = (taps[-1].at if taps else BASE) + timedelta(seconds=now_after)
    plain = compute_sessions(taps, rules, now=now)
    base = {s.key: s for s in plain.sessions}
    corrections = data.draw(
        corrections_for(list(plain.sessions), sorted({t.member_id for t in taps})), label="corrections"
    )
    result = compute_sessions(taps, rules, corrections, now=now)

    assert result.roles == plain.roles  # corrections never alter roles
    ignored_ids = [i.correction_id for i in result.ignored_corrections]
    assert len(ignored_ids) == len(set(ignored_ids))
    assert set(ignored_ids) <= {c.id for c in corrections}
    assert {s.key for s in result.sessions if s.source == "kiosk"} == set(base)
    manual_keys = {s.key for s in result.sessions if s.source == "manual"}
    assert manual_keys <= {f"manual:{c.id}" for c in corrections if c.action == "manual"}

    for s in result.sessions:
        assert s.credited_minutes >= 0
        if s.ended_at is not None:
            assert s.ended_at >= s.started_at
            assert s.credited_minutes <= whole_minutes(s.started_at, s.ended_at)
        else:
            assert s.credited_minutes == 0
        if s.source == "kiosk" and s.status != SessionStatus.ADJUSTED:
            # without an adjust, credit never exceeds the wall time between the session's own taps
            assert s.credited_minutes <= observed_span_minutes(base[s.key])
            assert (s.started_at, s.ended_at) == (base[s.key].started_at, base[s.key].ended_at)
    assert_at_most_one_open(result)
    assert_no_overlap(s for s in result.sessions if s.status != SessionStatus.REJECTED)

    # deterministic (any input order) and idempotent
    shuffled_taps = data.draw(st.permutations(taps), label="shuffled taps")
    shuffled_corrections = data.draw(st.permutations(corrections), label="shuffled corrections")
    assert compute_sessions(shuffled_taps, rules, shuffled_corrections, now=now) == result
    assert compute_sessions(taps, rules, corrections, now=now) == result


@SETTINGS
@given(specs=tap_specs, rules=rules_args, flips=st.lists(st.integers(0, 39), max_size=3))
def test_a_screen_is_compared_with_the_record_and_only_a_disagreeing_one_sends_its_session_to_review(
    specs: list[tuple[int, int, int]], rules: CentreRules | dict[int, CentreRules], flips: list[int]
) -> None:
    """Taps whose screens said exactly what the engine records change nothing; a tap whose screen said
    another role leaves the session it opened or closed in review with a ``screen_*`` reason."""
    taps = make_taps(specs)
    now = (taps[-1].at if taps else BASE) + timedelta(hours=1)
    plain = compute_sessions(taps, rules, now=now)
    closed_by = {s.check_out_event_id: s for s in plain.sessions if s.check_out_event_id is not None}

    def honest(t: Tap) -> Shown:
        role = plain.roles[t.event_id]
        return Shown(role, closed_by[t.event_id].credited_minutes if role is TapRole.OUT else None)

    assert compute_sessions([replace(t, shown=honest(t)) for t in taps], rules, now=now) == plain
    flipped = {taps[i].event_id for i in flips if i < len(taps)}
    other = {TapRole.IN: TapRole.OUT, TapRole.OUT: TapRole.IN, TapRole.DUPLICATE: TapRole.IN}
    shown = [
        replace(t, shown=Shown(other[plain.roles[t.event_id]]) if t.event_id in flipped else honest(t))
        for t in taps
    ]
    result = compute_sessions(shown, rules, now=now)
    assert result.roles == plain.roles  # a screen never changes what a tap did
    for event_id in flipped:
        role = plain.roles[event_id]
        key = event_id if role is TapRole.IN else closed_by[event_id].key if role is TapRole.OUT else None
        if key is None:
            continue
        (session,) = [s for s in result.sessions if s.key == key]
        assert session.status is SessionStatus.NEEDS_REVIEW and session.credited_minutes == 0, session
        assert str(session.reason).startswith("screen_"), session
