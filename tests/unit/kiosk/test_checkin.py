"""The kiosk's check-in decision, as tables: each row is (previous state, tap time, rules) → decision."""

from __future__ import annotations

import datetime as dt

import pytest

from kiosk.checkin import HERE, Decision, MemberState, MemberStates, ServerView, decide, next_state
from protocol.sessionrules import CentreRules as Rules
from protocol.sessionrules import open_session

T0 = dt.datetime(2025, 3, 3, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
S = dt.timedelta(seconds=1)
H = dt.timedelta(hours=1)
DEFAULT = Rules()
CLOSING = Rules(closes_at=dt.time(21, 0))  # 21:00 Shanghai = 13:00 UTC


def _in(at: dt.datetime, rules: Rules = DEFAULT) -> MemberState:
    return MemberState(open_session(HERE, at, rules), at)


def _out(at: dt.datetime) -> MemberState:
    return MemberState(None, at)


CASES = [
    # (id, state, now, rules, decision, duration, previous)
    ("first tap is IN", None, T0, DEFAULT, Decision.IN, None, None),
    ("59 s after IN is duplicate", _in(T0), T0 + 59 * S, DEFAULT, Decision.DUPLICATE, 59 * S, Decision.IN),
    ("exactly debounce after IN toggles", _in(T0), T0 + 60 * S, DEFAULT, Decision.OUT, 60 * S, None),
    ("an hour after IN is OUT", _in(T0), T0 + H, DEFAULT, Decision.OUT, H, None),
    (
        "30 s after OUT is duplicate (already out)",
        _out(T0),
        T0 + 30 * S,
        DEFAULT,
        Decision.DUPLICATE,
        None,
        Decision.OUT,
    ),
    ("2 min after OUT is IN", _out(T0), T0 + 120 * S, DEFAULT, Decision.IN, None, None),
    ("exactly at max length is OUT", _in(T0), T0 + 12 * H, DEFAULT, Decision.OUT, 12 * H, None),
    ("past max length opens a new session", _in(T0), T0 + 12 * H + S, DEFAULT, Decision.IN, None, None),
    ("exactly at closing time is OUT", _in(T0, CLOSING), T0 + 12 * H, CLOSING, Decision.OUT, 12 * H, None),
    (
        "past closing time opens a new session",
        _in(T0, CLOSING),
        T0 + 12 * H + S,
        CLOSING,
        Decision.IN,
        None,
        None,
    ),
    (
        "zero debounce never duplicates",
        _in(T0),
        T0 + S,
        Rules(debounce=dt.timedelta(0)),
        Decision.OUT,
        S,
        None,
    ),
    (
        "check-in after closing runs to tomorrow's closing",
        _in(T0 + 13 * H, CLOSING),  # 22:00 local
        T0 + 14 * H,
        CLOSING,
        Decision.OUT,
        H,
        None,
    ),
]


@pytest.mark.parametrize(
    ("state", "now", "rules", "decision", "duration", "previous"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decision_table(state, now, rules, decision, duration, previous):
    verdict = decide(member_id=7, revoked=False, locked=False, state=state, rules=rules, now=now)
    assert verdict.decision is decision
    assert verdict.duration == duration
    assert verdict.previous == previous
    assert verdict.member_id == 7


@pytest.mark.parametrize(
    ("member_id", "revoked", "locked", "expected", "wire"),
    [
        (None, False, False, Decision.UNKNOWN, "unknown"),
        (5, True, False, Decision.REVOKED, "rejected"),
        (5, False, True, Decision.LOCKED, "rejected"),
        (None, False, True, Decision.LOCKED, "rejected"),
    ],
)
def test_refusals_come_before_toggling(member_id, revoked, locked, expected, wire):
    verdict = decide(
        member_id=member_id, revoked=revoked, locked=locked, state=_in(T0), rules=DEFAULT, now=T0 + H
    )
    assert verdict.decision is expected
    assert verdict.decision.wire_direction == wire
    assert verdict.reason


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        decide(
            member_id=1, revoked=False, locked=False, state=None, rules=DEFAULT, now=dt.datetime(2025, 1, 1)
        )


def test_next_state_only_changes_on_toggle():
    s0 = _in(T0)
    dup = decide(member_id=1, revoked=False, locked=False, state=s0, rules=DEFAULT, now=T0 + S)
    assert next_state(s0, dup) is s0
    out = decide(member_id=1, revoked=False, locked=False, state=s0, rules=DEFAULT, now=T0 + H)
    assert next_state(s0, out) == _out(T0 + H)
    assert out.reason == "shown:out:60"


def test_member_states_rebuild():
    states = MemberStates()
    assert states.rebuild([(1, "in", T0), (2, "out", T0)], DEFAULT) == 2
    assert states.get(1) == _in(T0)
    assert states.get(2) == _out(T0)
    assert states.get(None) is None
    assert states.open_count() == 1


def test_open_elsewhere_is_an_in_naming_the_centre():
    """The heartbeat said the member is open at centre 9: a tap here is IN, and names centre 9."""
    states = MemberStates()
    elsewhere = MemberState(open_session(9, T0, DEFAULT), None)
    states.apply_presence(4, T0 + S, {7: ServerView(elsewhere, T0)}, {9: "东湖党群服务中心"})
    verdict = decide(
        member_id=7,
        revoked=False,
        locked=False,
        state=states.get(7, DEFAULT),
        rules=DEFAULT,
        now=T0 + H,
        centre_names=states.centre_names,
    )
    assert verdict.decision is Decision.IN
    assert verdict.elsewhere == "东湖党群服务中心"
    assert verdict.reason == "shown:in:elsewhere"


def test_own_taps_after_the_heartbeat_are_replayed_on_the_servers_view():
    """Server: open here since T0 (another kiosk). This kiosk's own tap at T0+H (after the server's last
    tap) is a check-out, so the next tap is a check-in — not the check-out the server view alone says."""
    states = MemberStates()
    states.apply_presence(4, T0 + S, {7: ServerView(_in(T0), T0)}, {})
    first = decide(
        member_id=7, revoked=False, locked=False, state=states.get(7, DEFAULT), rules=DEFAULT, now=T0 + H
    )
    assert first.decision is Decision.OUT and first.duration == H
    states.record(7, T0 + H, first)
    second = decide(
        member_id=7, revoked=False, locked=False, state=states.get(7, DEFAULT), rules=DEFAULT, now=T0 + 2 * H
    )
    assert second.decision is Decision.IN


def test_rules_validate():
    with pytest.raises(ValueError):
        Rules(debounce=-S)
    with pytest.raises(ValueError):
        Rules(max_length=dt.timedelta(0))


def test_sequence_matches_the_server_engine_roles():
    """A member's day through decide/next_state gives the same roles the server engine documents."""
    times = [T0, T0 + 10 * S, T0 + H, T0 + H + 30 * S, T0 + 2 * H, T0 + 15 * H]
    state, roles = None, []
    for at in times:
        verdict = decide(member_id=3, revoked=False, locked=False, state=state, rules=CLOSING, now=at)
        roles.append(verdict.decision.value)
        state = next_state(state, verdict)
    assert roles == ["in", "duplicate", "out", "duplicate", "in", "in"]


def test_a_check_out_of_a_session_holding_an_unrecorded_screen_shows_no_minutes():
    """Another kiosk at this centre opened the session at T0; this kiosk, not yet told, showed its own
    tap at T0+S as a check-in, which the server records as a duplicate. Once the heartbeat says the
    session runs from T0, the next check-out here says the session goes to review instead of minutes."""
    states = MemberStates()
    first = decide(member_id=7, revoked=False, locked=False, state=None, rules=DEFAULT, now=T0 + S)
    assert first.decision is Decision.IN
    states.record(7, T0 + S, first)
    states.apply_presence(4, T0 + 2 * S, {7: ServerView(_in(T0), T0 + S)}, {})
    state = states.get(7, DEFAULT)
    assert state is not None and state.doubted
    out = decide(member_id=7, revoked=False, locked=False, state=state, rules=DEFAULT, now=T0 + H)
    assert out.decision is Decision.OUT and out.review and out.duration is None
    assert out.reason == "shown:out"  # the server compares the role only: no minutes were shown


def test_own_check_in_that_opened_the_servers_session_is_no_doubt():
    states = MemberStates()
    first = decide(member_id=7, revoked=False, locked=False, state=None, rules=DEFAULT, now=T0)
    states.record(7, T0, first)
    states.apply_presence(4, T0 + S, {7: ServerView(_in(T0), T0)}, {})
    out = decide(
        member_id=7, revoked=False, locked=False, state=states.get(7, DEFAULT), rules=DEFAULT, now=T0 + H
    )
    assert out.decision is Decision.OUT and not out.review and out.duration == H
