"""Incremental recomputation from a quiet point equals whole-history recomputation (hypothesis).

Simulates what the recompute queue does: taps arrive in uploads (in any time order), after each upload
the store keeps its sessions before the restart point and replaces the rest with an engine run from
:func:`server.sessions.window.restart_index`; after *every* upload that must equal the whole-history
run at that moment. Only the recent part of the history is "loaded" (a random lookback), as in
:func:`server.sessions.store.recompute_sessions`, so the fall-back to the whole history is exercised too.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from server.sessions import CentreRules, Session, Tap, compute_sessions
from server.sessions.window import quiet_gap, restart_index

from .session_cases import event_uuid

BASE = datetime(2024, 3, 4, 0, 0, tzinfo=UTC)
SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

gaps = st.one_of(st.integers(0, 120), st.integers(0, 8 * 3600), st.integers(10 * 3600, 40 * 3600))
taps_spec = st.lists(
    st.tuples(st.sampled_from([1, 1, 2, 3]), gaps, st.integers(0, 3)), min_size=1, max_size=30
)
rules_for = st.fixed_dictionaries(
    {
        c: st.builds(
            CentreRules,
            debounce=st.integers(0, 300).map(lambda s: timedelta(seconds=s)),
            max_length=st.integers(30, 14 * 60).map(lambda m: timedelta(minutes=m)),
            closes_at=st.one_of(st.none(), st.builds(time, st.integers(0, 23), st.sampled_from([0, 30]))),
        )
        for c in (1, 2, 3)
    }
)


def whole(taps: list[Tap], rules: dict[int, CentreRules], now: datetime) -> dict[str, Session]:
    return {s.key: s for s in compute_sessions(taps, rules, now=now).sessions}


@SETTINGS
@given(
    spec=taps_spec,
    rules=rules_for,
    lookback_h=st.integers(0, 200),
    now_steps=st.lists(st.integers(0, 30 * 3600), min_size=4, max_size=4),
)
def test_incremental_recompute_equals_whole_history(spec, rules, lookback_h, now_steps):
    taps, at, batch_of = [], BASE, {}
    for i, (centre, gap, batch) in enumerate(spec):
        at += timedelta(seconds=gap)
        tap = Tap(event_uuid(f"t{i}", at), 7, centre, at)
        taps.append(tap)
        batch_of[tap.event_id] = i * 4 // len(spec) if batch is None else batch
    gap = quiet_gap(rules.values())
    stored: dict[str, Session] = {}
    known: list[Tap] = []
    now = BASE
    incremental_runs = 0
    for batch in range(4):
        new = [t for t in taps if batch_of[t.event_id] == batch]
        if not new:
            continue
        known = sorted([*known, *new], key=lambda t: (t.at, t.event_id))
        now = max(now, known[-1].at) + timedelta(seconds=now_steps[batch])
        since = min(t.at for t in new)
        loaded = [t for t in known if t.at >= since - timedelta(hours=lookback_h)]
        start = restart_index(loaded, since, gap)
        if start is None:
            stored = whole(known, rules, now)
        else:
            incremental_runs += 1
            window_start = loaded[start].at
            kept = {k: s for k, s in stored.items() if s.started_at < window_start}
            stored = kept | whole(loaded[start:], rules, now)
        assert stored == whole(known, rules, now)
    event("incremental run" if incremental_runs else "whole history only")


def test_restart_needs_two_quiet_points_before_the_first_new_tap():
    rules = CentreRules(debounce=timedelta(seconds=60), max_length=timedelta(hours=12))
    gap = quiet_gap([rules])
    day = [BASE + timedelta(days=d, hours=h) for d in range(4) for h in (9, 17)]
    taps = [Tap(event_uuid(f"d{i}", at), 1, 1, at) for i, at in enumerate(day)]
    # new tap on day 3 morning (index 6): quiet points at 2, 4, 6 → restart at the one before, 4
    assert restart_index(taps, day[6], gap) == 4
    # only one quiet point at or before the first new tap (index 2): load more history
    assert restart_index(taps, day[2], gap) is None
    assert restart_index(taps[2:], day[6], gap) == 2  # index 0 of a partial load is never trusted
    assert restart_index(taps[4:], day[6], gap) is None
