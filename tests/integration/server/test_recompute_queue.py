"""The session recompute queue: uploads queue members, a drain recomputes them, nothing is lost.

Real uploads through the signed kiosk API (both databases); a real crash (a child process killed with
SIGKILL while it holds a claim); real concurrent workers on PostgreSQL (``SKIP LOCKED``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.chain import compute_hash
from protocol.ids import uuid7
from server.models import Community, RecomputeQueueEntry, ServiceSession, TapEvent
from server.sessions.queue import claim, drain_all, drain_recompute_queue, enqueue_members, queue_depth
from server.sessions.store import recompute_sessions
from tests.factories import make_centre, make_kiosk, make_member, make_wire_events, signed_headers

PATH = "/api/v1/kiosk/events"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _upload(client, kiosk, events):  # type: ignore[no-untyped-def]
    body = json.dumps({"events": events}).encode()
    response = client.post(PATH, data=body, headers=signed_headers(kiosk, "POST", PATH, body))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _sessions(db: Session) -> dict[str, tuple]:
    db.expire_all()
    return {
        s.key: (s.status, s.started_at, s.ended_at, s.credited_minutes, s.check_out_event_id)
        for s in db.scalars(select(ServiceSession))
    }


@pytest.fixture
def setup(db_session):  # type: ignore[no-untyped-def]
    centre = make_centre(db_session, closes_at=None)
    community = db_session.get(Community, centre.community_id)  # members of the kiosk's own roster
    members = [make_member(db_session, community=community) for _ in range(3)]
    kiosk = make_kiosk(db_session, centre)
    db_session.commit()
    return centre, members, kiosk


def test_upload_queues_members_and_a_drain_recomputes_them_once(client, db_session, setup):
    _centre, members, kiosk = setup
    start = datetime.now(UTC) - timedelta(hours=5)
    events = make_wire_events(4, member_id=members[0].id, start=start, step_s=3600)
    _upload(client, kiosk, events[:2])
    _upload(client, kiosk, events[2:])  # the member is queued once, with the earliest tap time
    (entry,) = db_session.scalars(select(RecomputeQueueEntry)).all()
    assert entry.member_id == members[0].id and entry.since == start
    assert _sessions(db_session) == {}
    assert drain_all(db_session) == 1
    assert queue_depth(db_session) == 0
    got = _sessions(db_session)
    assert set(got) == {events[0]["event_id"], events[2]["event_id"]}
    assert {v[0] for v in got.values()} == {"closed"} and {v[3] for v in got.values()} == {60}
    # idempotent: nothing queued → nothing done; a re-sent batch is a duplicate and queues nothing
    assert drain_recompute_queue(db_session) == 0
    _upload(client, kiosk, events[2:])
    assert queue_depth(db_session) == 0
    # queued again by hand (e.g. twice by two workers): the result is the same rows
    enqueue_members(db_session, {members[0].id: start}, now=datetime.now(UTC))
    db_session.commit()
    assert drain_all(db_session) == 1 and _sessions(db_session) == got


def test_incremental_drains_equal_a_whole_history_recompute(client, db_session, setup):
    _centre, members, kiosk = setup
    day0 = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=6)
    events, prev, seq = [], "0" * 64, 0
    # member 0: in at +0 h and out at +8 h every day (quiet nights); member 1: one tap a day, never out
    for day in range(6):
        for member, hours in ((members[0], (0, 8)), (members[1], (3,))):
            for h in hours:
                wire = make_wire_events(
                    1, start_seq=seq + 1, prev_hash=prev, member_id=member.id,
                    start=day0 + timedelta(days=day, hours=h),
                )  # fmt: skip
                events += wire
                prev, seq = wire[0]["hash"], seq + 1
    for i in range(0, len(events), 3):  # small uploads, drained after each: the incremental path
        _upload(client, kiosk, events[i : i + 3])
        drain_all(db_session)
    incremental = _sessions(db_session)
    recompute_sessions(db_session, [m.id for m in members], now=datetime.now(UTC))  # whole history
    db_session.commit()
    assert _sessions(db_session) == incremental
    statuses = sorted(v[0] for v in incremental.values())
    assert statuses.count("closed") == 6 and statuses.count("auto_closed") == 6


CLAIM_AND_HANG = """
import sys, time
from sqlalchemy.orm import Session
from server.db import make_engine
from server.sessions.queue import claim
with Session(make_engine(sys.argv[1])) as db:
    claimed = claim(db, 100)
    print(len(claimed), flush=True)
    time.sleep(600)
"""


def test_a_worker_killed_between_claim_and_commit_loses_nothing(client, db_session, setup, db_url):
    _centre, members, kiosk = setup
    events = make_wire_events(2, member_id=members[1].id, start=datetime.now(UTC) - timedelta(hours=2))
    _upload(client, kiosk, events)
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_HANG, db_url], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "1"  # it holds the claim
        if db_session.get_bind().dialect.name == "postgresql":
            assert claim(db_session, 100) == {}  # claimed rows are skipped, not recomputed twice
            db_session.rollback()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert queue_depth(db_session) == 1
    # PostgreSQL ends the killed worker's backend (and so its row lock) only when it notices the closed
    # socket; until then SKIP LOCKED passes the row by, as a live recomputer would, and a later drain takes it.
    drained, deadline = 0, time.monotonic() + 30
    while drained == 0 and time.monotonic() < deadline:
        drained = drain_all(db_session)
        if drained == 0:
            time.sleep(0.1)
    assert drained == 1
    assert set(_sessions(db_session)) == {events[0]["event_id"]}


def test_concurrent_workers_on_postgresql_take_disjoint_members(pg_database_url):
    from tests.conftest import _truncate_all

    _truncate_all(pg_database_url)
    engine = sa.create_engine(pg_database_url)
    with Session(engine) as db:
        centre = make_centre(db, closes_at=None)
        kiosk = make_kiosk(db, centre)
        members = [make_member(db) for _ in range(6)]
        db.commit()
        at = datetime.now(UTC) - timedelta(hours=1)
        prev = "0" * 64
        rows = []
        for seq, member in enumerate(members, 1):
            wire = {
                "event_id": uuid7(), "seq": seq, "prev_hash": prev, "credential_kind": "card",
                "credential_hash": "ab" * 32, "member_id": member.id, "direction": "in",
                "device_time": at, "device_tz": "Asia/Shanghai", "clock_offset_ms": 0,
            }  # fmt: skip
            prev = compute_hash(prev, wire)
            rows.append(
                TapEvent(
                    **{k: v for k, v in wire.items() if k != "device_time"}, hash=prev, kiosk_id=kiosk.id,
                    centre_id=centre.id, community_id=centre.community_id, device_time=at,
                    effective_time=at, received_at=at, chain_ok=True,
                )
            )  # fmt: skip
        db.add_all(rows)
        enqueue_members(db, {m.id: at for m in members}, now=at)
        db.commit()
    with Session(engine) as first, Session(engine) as second:
        a = claim(first, 3)
        b = claim(second, 10)  # SKIP LOCKED: the other three, without waiting
        assert len(a) == 3 and len(b) == 3 and not set(a) & set(b)
        first.rollback()
        second.rollback()
    with Session(engine) as first, Session(engine) as second:
        assert drain_recompute_queue(first, 4) == 4
        assert drain_recompute_queue(second, 4) == 2
        assert queue_depth(first) == 0
        assert first.scalar(select(sa.func.count()).select_from(ServiceSession)) == 6
    engine.dispose()


def test_the_same_phone_code_at_two_kiosks_flags_the_second_upload(client, db_session, setup):
    centre, members, kiosk_a = setup
    kiosk_b = make_kiosk(db_session, centre)
    db_session.commit()
    at = datetime.now(UTC) - timedelta(minutes=5)

    def phone_tap(kiosk_seq_prev: tuple[int, str], when: datetime) -> dict:
        seq, prev = kiosk_seq_prev
        event = {
            "event_id": str(uuid7()), "seq": seq, "prev_hash": prev, "credential_kind": "qr",
            "credential_hash": "cd" * 32, "qr_step": 5_000_123, "member_id": members[2].id,
            "direction": "in", "device_time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "device_tz": "Asia/Shanghai", "clock_offset_ms": 0, "trust": "high",
        }  # fmt: skip
        event["hash"] = compute_hash(prev, {**event, "device_time": when})
        return event

    first = phone_tap((1, "0" * 64), at)
    second = phone_tap((1, "0" * 64), at + timedelta(seconds=20))
    assert _upload(client, kiosk_a, [first])["chain"] == "ok"
    assert _upload(client, kiosk_b, [second])["chain"] == "ok"  # a replay is a flag, not a chain break
    db_session.expire_all()
    stored = {str(e.event_id): e for e in db_session.scalars(select(TapEvent))}
    assert "qr_replayed" not in (stored[first["event_id"]].flags or "")
    assert "qr_replayed" in (stored[second["event_id"]].flags or "")


def test_a_member_whose_recompute_fails_does_not_hold_the_others_back(client, db_session, setup, monkeypatch):
    """Test double for a fault the engine no longer has (the overflow below is filtered out now): the
    recomputation of one member raises. The others are recomputed, that member goes to the back of the
    queue, and once the fault is gone it is recomputed too."""
    from server.sessions import queue

    _centre, members, kiosk = setup
    start = datetime.now(UTC) - timedelta(hours=5)
    prev, seq = "0" * 64, 1
    for member in members:
        events = make_wire_events(
            2, start_seq=seq, prev_hash=prev, member_id=member.id, start=start, step_s=3600
        )
        _upload(client, kiosk, events)
        prev, seq = events[-1]["hash"], seq + 2
    bad = members[0].id

    def failing_recompute(db, member_ids, **kw):  # type: ignore[no-untyped-def]
        if bad in member_ids:
            raise OverflowError("date value out of range (test double)")
        return recompute_sessions(db, member_ids, **kw)

    monkeypatch.setattr(queue, "recompute_sessions", failing_recompute)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert drain_recompute_queue(db_session, now=later) == 2  # the chunk failed, then one by one
    db_session.expire_all()
    assert db_session.scalars(select(RecomputeQueueEntry.member_id)).all() == [bad]
    assert db_session.get(RecomputeQueueEntry, bad).enqueued_at == later  # moved to the back
    assert {s[0] for s in _sessions(db_session).values()} == {"closed"}
    assert len(_sessions(db_session)) == 2
    assert drain_all(db_session) == 0  # still failing: logged, left queued, nothing else to do

    monkeypatch.setattr(queue, "recompute_sessions", recompute_sessions)  # the fault is gone
    assert drain_all(db_session) == 1 and queue_depth(db_session) == 0
    assert len(_sessions(db_session)) == 3


def test_taps_with_times_no_session_can_use_are_stored_flagged_and_left_out(client, db_session, setup):
    """A kiosk clock near the end of the datetime range, with a large offset: the tap is stored (never a 500
    that would make the kiosk re-send the batch forever), flagged, and left out of sessions, whose
    arithmetic would overflow. A time before year 2 is refused by validation."""
    _centre, members, kiosk = setup
    wild = datetime(9998, 12, 30, tzinfo=UTC)
    event = {
        "event_id": str(uuid7()), "seq": 1, "prev_hash": "0" * 64, "credential_kind": "card",
        "credential_hash": "e" * 64, "member_id": members[0].id, "direction": "in",
        "device_time": wild.isoformat(), "device_tz": "Asia/Shanghai", "clock_offset_ms": 10**12,
    }  # fmt: skip
    event["hash"] = compute_hash(event["prev_hash"], {**event, "device_time": wild})
    ack = _upload(client, kiosk, [event])
    assert ack["accepted"] == [event["event_id"]]
    db_session.expire_all()
    (tap,) = db_session.scalars(select(TapEvent)).all()
    assert tap.flags == "clock_offset_out_of_range,time_out_of_range,future_time,clock_drift"
    assert tap.effective_time == wild and tap.member_id == members[0].id
    assert queue_depth(db_session) == 0  # nothing for sessions to do
    enqueue_members(db_session, {members[0].id: datetime.now(UTC)}, now=datetime.now(UTC))
    db_session.commit()
    assert drain_all(db_session) == 1 and _sessions(db_session) == {}

    ancient = dict(event, seq=2, event_id=str(uuid7()), device_time="0001-12-31T23:00:00+00:00")
    body = json.dumps({"events": [ancient]}).encode()
    response = client.post(PATH, data=body, headers=signed_headers(kiosk, "POST", PATH, body))
    assert response.status_code == 422 and "device_time" in response.get_data(as_text=True)
