"""The kiosk and the server agree: what a screen said is what the server records, whenever it could know.

Random interleavings of taps by two members at three kiosks (two at centre A, one at centre B), with
syncs — upload through the signed kiosk API, recompute, heartbeat presence — between some of them. Real
parts on both sides: :class:`kiosk.service.KioskService` decides (its roster from the server's roster
delta, its presence from :func:`server.presence.presence_for`, the function the heartbeat view calls),
the events go through the ingest API into SQLite or PostgreSQL, and the server's engine recomputes.

Asserted, for every tap whose kiosk had heard the latest heartbeat (every earlier tap of the member at
another kiosk had been uploaded before this kiosk's last sync): the screen's direction and minutes equal
the server's record. For every other tap whose screen the record contradicts: that session is in review
with a ``screen_*`` reason.

The heartbeat is called as a function rather than over HTTP because its view stamps presence with the
real clock, and these taps run on a simulated one (hours pass between them); the HTTP heartbeat and its
protocol gating are tested in ``tests/integration/server/api/test_heartbeat.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hardware.base import CredentialRead
from kiosk.config import config_from_mapping
from kiosk.outcomes import OutcomeKind
from kiosk.service import KioskService
from server.models import Kiosk, ServiceSession
from server.presence import presence_for
from server.roster import roster_delta
from server.sessions.queue import drain_all
from tests.factories import (
    TEST_CREDENTIAL_KEY,
    make_card,
    make_centre,
    make_community,
    make_kiosk,
    make_member,
    make_unit,
    signed_headers,
)

EVENTS_PATH = "/api/v1/kiosk/events"
MAX_MINUTES = 120  # short sessions, so limits are reached inside a few taps
#: Mostly minutes (sessions form and close), some around the debounce and the maximum length.
GAPS_S = [1, 30, 59, 60, 61, 120, 300, 300, 540, 540, 900, 1800, 3600, 7199, 7200, 7201, 9000]
#: (kiosk index, centre index): kiosks 0 and 1 stand at centre A, kiosk 2 at centre B.
KIOSK_CENTRES = (0, 0, 1)


class FakeClock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class TapRecord:
    n: int
    kiosk: int
    member: int
    event_id: str
    kind: OutcomeKind
    minutes: int | None
    elsewhere: str | None
    informed: bool
    uploaded_at: float | None = None  # op index of the sync that uploaded it


@dataclass
class World:
    kiosk_rows: list[Kiosk]
    services: list[KioskService]
    cards: list[str]
    centre_names: list[str]
    clock: FakeClock
    taps: list[TapRecord] = field(default_factory=list)
    last_sync: dict[int, float] = field(default_factory=dict)


def _build(db: Any, tmp: Path, start: dt.datetime) -> World:
    community = make_community(db)
    unit = make_unit(db, community)
    centres = [
        make_centre(db, community, closes_at=None, max_session_minutes=MAX_MINUTES, name=name)
        for name in ("东湖党群服务中心", "西街党群服务中心")
    ]
    kiosk_rows = [make_kiosk(db, centres[c]) for c in KIOSK_CENTRES]
    members = [make_member(db, unit=unit, community=community) for _ in range(2)]
    cards = [make_card(db, m)[1] for m in members]
    db.commit()
    clock = FakeClock(start)
    services = []
    for i, row in enumerate(kiosk_rows):
        config = config_from_mapping(
            {
                "state_dir": str(tmp / f"kiosk{i}"),
                "centre": {"name": centres[KIOSK_CENTRES[i]].name, "code": centres[KIOSK_CENTRES[i]].code},
                "rules": {"debounce_s": 60, "max_session_h": MAX_MINUTES / 60},
                "dev": {"credential_key": TEST_CREDENTIAL_KEY.hex()},
            }
        )
        svc = KioskService(config, clock=clock, start_sync=False)
        svc.roster.apply_delta(roster_delta(db, row, None, now=start))
        services.append(svc)
    return World(kiosk_rows, services, cards, [c.name for c in centres], clock)


def _sync(world: World, k: int, op: float, db: Any, client: Any) -> None:
    """Upload kiosk ``k``'s outbox through the signed API, recompute, then hand it the presence."""
    svc, row = world.services[k], world.kiosk_rows[k]
    pending = svc.outbox.pending(500)
    if pending:
        body = json.dumps({"events": [t.to_wire() for t in pending]}).encode()
        response = client.post(EVENTS_PATH, data=body, headers=signed_headers(row, "POST", EVENTS_PATH, body))
        assert response.status_code == 200, response.get_data(as_text=True)
        ack = response.get_json()
        svc.outbox.mark_acked([*ack["accepted"], *ack["duplicates"]])
        uploaded = {t.event_id for t in pending}
        for record in world.taps:
            if record.event_id in uploaded:
                record.uploaded_at = op
    drain_all(db, now=world.clock.now)
    db.commit()
    db.expire_all()
    svc.apply_presence(presence_for(db, db.get(Kiosk, row.id), now=world.clock.now))
    world.last_sync[k] = op


def _tap(world: World, k: int, m: int) -> None:
    svc = world.services[k]
    heard = world.last_sync.get(k, -1)
    informed = all(
        t.uploaded_at is not None and t.uploaded_at < heard
        for t in world.taps
        if t.member == m and t.kiosk != k
    )
    outcome = svc.on_read(CredentialRead(kind="card", value=world.cards[m], reader_id="sim"))
    assert outcome.recorded and outcome.event_id is not None, outcome
    minutes = None if outcome.kind is not OutcomeKind.OUT else int(outcome.duration_s // 60)
    elsewhere = None
    if outcome.kind is OutcomeKind.IN_ELSEWHERE:
        assert outcome.colour == "amber"
        elsewhere = next(name for name in world.centre_names if name in outcome.message_zh)
    world.taps.append(
        TapRecord(len(world.taps), k, m, outcome.event_id, outcome.kind, minutes, elsewhere, informed)
    )


SCREEN_ROLE = {
    OutcomeKind.IN: "in",
    OutcomeKind.IN_ELSEWHERE: "in",
    OutcomeKind.OUT: "out",
    OutcomeKind.OUT_REVIEW: "out",
    OutcomeKind.DUPLICATE: "duplicate",
}

ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("tap"), st.integers(0, 2), st.integers(0, 1), st.sampled_from(GAPS_S)),
        st.tuples(st.just("sync"), st.integers(0, 2), st.just(0), st.just(0)),
        st.tuples(st.just("sync_all"), st.just(0), st.just(0), st.just(0)),
    ),
    min_size=4,
    max_size=24,
)


def _check(world: World, db: Any) -> int:
    """Assert the agreement; returns how many informed taps there were."""
    rows = db.scalars(select(ServiceSession).where(ServiceSession.source == "kiosk")).all()
    by_in = {str(s.check_in_event_id): s for s in rows}
    by_out = {str(s.check_out_event_id): s for s in rows if s.check_out_event_id is not None}
    informed = 0
    for t in world.taps:
        if t.event_id in by_in:
            role, session = "in", by_in[t.event_id]
        elif t.event_id in by_out:
            role, session = "out", by_out[t.event_id]
        else:
            role, session = "duplicate", None
        said = SCREEN_ROLE[t.kind]
        if role != "out" or session is None:
            agrees = said == role
        elif t.kind is OutcomeKind.OUT_REVIEW:  # the screen said the session goes to review
            agrees = session.status == "needs_review"
        else:
            agrees = said == role and session.credited_minutes == t.minutes
        if t.informed:
            informed += 1
            assert said == role, f"tap {t.n} at kiosk {t.kiosk}: screen said {said}, server recorded {role}"
            if role == "out":
                assert session is not None and session.ended_at is not None
                if t.kind is OutcomeKind.OUT_REVIEW:
                    # the kiosk knew an earlier screen of this session was not recorded as shown: it said
                    # the session goes to review, and showed no minutes
                    assert session.status == "needs_review", (t, session.status)
                else:
                    assert (session.status, session.credited_minutes) == ("closed", t.minutes), t
            if t.elsewhere is not None:
                cut = [s for s in rows if s.ended_at is not None and s.reason == "open_elsewhere"]
                assert any(s.member_id == session.member_id for s in cut if session is not None), t
        if not agrees and session is not None:
            assert session.status == "needs_review" and (session.reason or "").startswith("screen_"), (
                t,
                session,
            )
    return informed


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=ops_strategy)
@example(ops=[("tap", 1, 1, 1), ("tap", 0, 1, 1), ("sync_all", 0, 0, 0), ("tap", 0, 1, 61)])
def test_what_the_screen_said_is_what_the_server_records(app, client, db_session, ops) -> None:
    total_s = sum(gap for kind, _k, _m, gap in ops if kind == "tap")
    # taps in the past (ingest flags times ahead of its clock), ending about now
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=total_s + 600)
    with tempfile.TemporaryDirectory() as tmp:
        world = _build(db_session, Path(tmp), start)
        try:
            for op, (kind, k, m, gap) in enumerate(ops):
                if kind == "tap":
                    world.clock.now += dt.timedelta(seconds=gap)
                    _tap(world, k, m)
                elif kind == "sync":
                    _sync(world, k, op, db_session, client)
                else:  # every kiosk uploads, then every kiosk hears the heartbeat
                    for j in range(len(world.services)):
                        _sync(world, j, op, db_session, client)
                    for j in range(len(world.services)):
                        _sync(world, j, op + 0.5, db_session, client)
            for k in range(len(world.services)):
                _sync(world, k, len(ops), db_session, client)
            informed = _check(world, db_session)
            event(f"informed taps: {min(informed, 5)}{'+' if informed >= 5 else ''}")
            event(f"amber check-ins: {sum(t.kind is OutcomeKind.IN_ELSEWHERE for t in world.taps) > 0}")
            event(
                f"informed check-outs: {sum(t.informed and t.kind is OutcomeKind.OUT for t in world.taps) > 0}"
            )
        finally:
            for svc in world.services:
                svc.outbox.close()
                svc.roster.close()


def test_the_seen_case_agrees_once_the_kiosk_heard_the_heartbeat(app, client, db_session) -> None:
    """In at A, in at B, tap again at A: with B's tap heard, A says IN in amber naming B, and the server
    agrees; without the heartbeat A says OUT and the server's new session at A is in review."""
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    with tempfile.TemporaryDirectory() as tmp:
        world = _build(db_session, Path(tmp), start)
        a, b = 0, 2
        _tap(world, a, 0)
        _sync(world, a, 1, db_session, client)
        world.clock.now += dt.timedelta(minutes=5)
        _tap(world, b, 0)
        _sync(world, b, 3, db_session, client)
        _sync(world, a, 4, db_session, client)  # A hears that the member is open at B
        world.clock.now += dt.timedelta(minutes=4)
        _tap(world, a, 0)
        said = world.taps[-1]
        assert said.kind is OutcomeKind.IN_ELSEWHERE and said.elsewhere == "西街党群服务中心"
        # member 1 does the same, but kiosk A taps before it heard of B
        world.clock.now += dt.timedelta(minutes=1)
        _tap(world, a, 1)
        _sync(world, a, 7, db_session, client)
        world.clock.now += dt.timedelta(minutes=5)
        _tap(world, b, 1)
        _sync(world, b, 9, db_session, client)
        world.clock.now += dt.timedelta(minutes=4)
        _tap(world, a, 1)
        assert (world.taps[-1].kind, world.taps[-1].minutes, world.taps[-1].informed) == (
            OutcomeKind.OUT,
            9,
            False,
        )
        for k in range(3):
            _sync(world, k, 20 + k, db_session, client)
        assert _check(world, db_session) == 3  # both of member 0 at A, and member 1 at A first
        last = db_session.scalars(
            select(ServiceSession).where(ServiceSession.check_in_event_id == _uuid(world.taps[-1].event_id))
        ).one()
        assert (last.status, last.reason, last.credited_minutes) == ("needs_review", "screen_out", 0)
        for svc in world.services:
            svc.outbox.close()
            svc.roster.close()


def _uuid(text: str) -> Any:
    import uuid

    return uuid.UUID(text)
