"""The session engine's table of cases, run through the database on both backends.

Each case's taps become ``tap_events`` rows and its corrections ``corrections`` rows, ``recompute_sessions``
persists the engine's output, and the ``service_sessions`` rows read back must equal the case's expected
sessions. Recomputing twice must change nothing, and a tap removed from the input must make its session
vanish from the table (the "delete vanished keys" path).

Cases whose point is an input the database cannot hold (a naive datetime, two corrections with one id,
an action outside the check constraint, a manual correction without member or centre) are engine-only:
the database refuses them before the engine could, and ``tests/unit/server`` covers them.
"""

from __future__ import annotations

import uuid
from datetime import time, timedelta
from typing import Any

from sqlalchemy import insert, select

from server.models import Correction, Member, ServiceCentre, ServiceSession, TapEvent
from server.sessions import Session, SessionStatus
from server.sessions.store import recompute_sessions
from tests.factories import make_community, make_kiosk, make_member, make_unit, make_user, utc
from tests.unit.server.session_cases import (
    CASES,
    Case,
    build_corrections,
    build_now,
    build_taps,
    expected_roles,
    expected_sessions,
)

_DB_ONLY_REFUSES = {"naive_datetime", "duplicate_id", "unknown_action", "missing_member_or_centre"}


def _storable(case: Case) -> bool:
    return not any(reason in _DB_ONLY_REFUSES for _cid, reason in case.expected_ignored)


STORABLE = [c for c in CASES if _storable(c)]


def _centre_spec(case: Case, centre: int) -> dict[str, Any]:
    if "centres" in case.rules:
        specs = {int(k): v for k, v in case.rules["centres"].items()}
        return specs.get(centre, {})
    return case.rules


def _centre_columns(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "debounce_seconds": int(spec.get("debounce_s", 60)),
        "max_session_minutes": round(spec.get("max_length_h", 12) * 60),
        "closes_at": time.fromisoformat(spec["closes_at"]) if spec.get("closes_at") else None,
        "timezone": spec.get("tz", "Asia/Shanghai"),
    }


def _load_case(db, case: Case, user_id: int) -> tuple[dict[int, Member], dict[int, ServiceCentre]]:  # type: ignore[no-untyped-def]
    taps = build_taps(case)
    community = make_community(db)
    unit = make_unit(db, community)
    member_nos = {t.member_id for t in taps} | {c.get("member", 1) for c in case.corrections} | {1}
    members = {n: make_member(db, unit=unit, community=community) for n in sorted(member_nos)}
    centre_nos = {t.centre_id for t in taps} | {c.get("centre", 1) for c in case.corrections} | {1}
    centres = {}
    for n in sorted(centre_nos):
        centre = ServiceCentre(
            code=f"case{uuid.uuid4().hex[:10]}",
            name=f"中心{n}",
            community_id=community.id,
            **_centre_columns(_centre_spec(case, n)),
        )
        db.add(centre)
        db.flush()
        centres[n] = centre
    kiosks = {n: make_kiosk(db, centre) for n, centre in centres.items()}
    # every kiosk showed what the engine records (a screen that disagreed would send its session to review)
    shown = expected_roles(case)
    rows = []
    for seq, tap in enumerate(taps, start=1):
        rows.append(
            {
                "event_id": uuid.UUID(tap.event_id),
                "kiosk_id": kiosks[tap.centre_id].id,
                "centre_id": centres[tap.centre_id].id,
                "community_id": community.id,
                "seq": seq,
                "prev_hash": f"{seq - 1:064x}",
                "hash": f"{seq:064x}",
                "credential_kind": "card",
                "credential_hash": "ab" * 32,
                "member_id": members[tap.member_id].id,
                "direction": str(shown[tap.event_id]),
                "device_time": tap.at,
                "device_tz": "Asia/Shanghai",
                "clock_offset_ms": 0,
                "effective_time": tap.at,
                "received_at": tap.at,
                "chain_ok": True,
            }
        )
    if rows:
        db.execute(insert(TapEvent), rows)
    for c, raw in zip(build_corrections(case), case.corrections, strict=True):
        db.add(
            Correction(
                id=c.id,
                session_key=c.session_key,
                action=c.action,
                reason="case",
                member_id=members[raw.get("member", 1)].id,
                centre_id=centres[raw.get("centre", 1)].id,
                community_id=community.id,
                started_at=c.started_at,
                ended_at=c.ended_at,
                minutes=c.minutes,
                user_id=user_id,
                created_at=c.created_at,
            )
        )
    db.flush()
    return members, centres


def _read_back(db, members, centres) -> tuple[Session, ...]:  # type: ignore[no-untyped-def]
    member_no = {m.id: n for n, m in members.items()}
    centre_no = {c.id: n for n, c in centres.items()}
    db.expire_all()
    rows = db.scalars(select(ServiceSession).where(ServiceSession.member_id.in_(member_no))).all()
    sessions = [
        Session(
            key=r.key,
            member_id=member_no[r.member_id],
            centre_id=centre_no[r.centre_id],
            check_in_event_id=None if r.check_in_event_id is None else str(r.check_in_event_id),
            check_out_event_id=None if r.check_out_event_id is None else str(r.check_out_event_id),
            started_at=r.started_at,
            ended_at=r.ended_at,
            status=SessionStatus(r.status),
            credited_minutes=r.credited_minutes,
            reason=r.reason,
            source=r.source,  # type: ignore[arg-type]
        )
        for r in rows
    ]
    return tuple(sorted(sessions, key=lambda s: (s.started_at, s.key)))


def test_the_table_has_storable_cases():
    assert len(STORABLE) >= 20, "most engine cases must also run through the database"


def test_every_case_through_the_database(db_session):
    """All cases in one database per backend (each in its own rolled-back transaction: fast, isolated)."""
    user_id = make_user(db_session, password_hash="x").id  # argon2 once would still cost a second per run
    db_session.commit()
    failures = []
    for case in STORABLE:
        members, centres = _load_case(db_session, case, user_id)
        member_ids = [m.id for m in members.values()]
        recompute_sessions(db_session, member_ids, now=build_now(case))
        db_session.flush()
        first = _read_back(db_session, members, centres)
        ids_before = dict(db_session.execute(select(ServiceSession.key, ServiceSession.id)).tuples().all())
        recompute_sessions(db_session, member_ids, now=build_now(case))  # idempotent: same rows, same ids
        db_session.flush()
        second = _read_back(db_session, members, centres)
        ids_after = dict(db_session.execute(select(ServiceSession.key, ServiceSession.id)).tuples().all())
        if first != expected_sessions(case):
            failures.append(f"{case.name}: got {first}, expected {expected_sessions(case)}")
        elif second != first or ids_after != ids_before:
            failures.append(f"{case.name}: recomputation changed the stored rows")
        db_session.rollback()
    assert failures == []


def test_vanished_sessions_are_deleted_and_changed_ones_updated(db_session):
    community = make_community(db_session)
    member = make_member(db_session, community=community)
    centre = ServiceCentre(code="VANISH1", name="中心", community_id=community.id, closes_at=None)
    db_session.add(centre)
    db_session.flush()
    kiosk = make_kiosk(db_session, centre)
    user = make_user(db_session)
    t0 = utc(2024, 3, 4, 1)
    ev = [
        uuid.UUID(int=(int((t0 + timedelta(minutes=m)).timestamp() * 1000) << 80) | (7 << 76) | (2 << 62) | m)
        for m in (0, 45)
    ]
    for seq, (event_id, minutes) in enumerate(zip(ev, (0, 45), strict=True), start=1):
        db_session.execute(
            insert(TapEvent),
            [
                {
                    "event_id": event_id,
                    "kiosk_id": kiosk.id,
                    "centre_id": centre.id,
                    "community_id": community.id,
                    "seq": seq,
                    "prev_hash": "0" * 64,
                    "hash": "1" * 64,
                    "credential_kind": "card",
                    "credential_hash": "ab" * 32,
                    "member_id": member.id,
                    "direction": "in",
                    "device_time": t0 + timedelta(minutes=minutes),
                    "device_tz": "Asia/Shanghai",
                    "clock_offset_ms": 0,
                    "effective_time": t0 + timedelta(minutes=minutes),
                    "received_at": t0,
                    "chain_ok": True,
                }
            ],
        )
    now = t0 + timedelta(hours=2)
    recompute_sessions(db_session, [member.id], now=now)
    (closed,) = db_session.scalars(select(ServiceSession)).all()
    assert closed.status == "closed" and closed.credited_minutes == 45
    db_session.add(
        Correction(
            session_key=str(ev[0]),
            action="reject",
            reason="not here",
            member_id=member.id,
            centre_id=centre.id,
            community_id=community.id,
            user_id=user.id,
            created_at=now,
        )
    )
    db_session.add(
        Correction(
            action="manual",
            reason="forgot card",
            member_id=member.id,
            centre_id=centre.id,
            community_id=community.id,
            user_id=user.id,
            created_at=now,
            started_at=t0 + timedelta(hours=1),
            ended_at=t0 + timedelta(hours=1, minutes=30),
        )
    )
    db_session.flush()
    recompute_sessions(db_session, [member.id], now=now)
    db_session.commit()
    db_session.expire_all()
    rows = {r.source: r for r in db_session.scalars(select(ServiceSession))}
    assert (
        rows["kiosk"].id == closed.id
        and rows["kiosk"].status == "rejected"
        and rows["kiosk"].credited_minutes == 0
    )
    assert rows["manual"].status == "approved" and rows["manual"].credited_minutes == 30
    # A tap uploaded late, earlier than the others, turns the old check-in into a check-out: the old key
    # (and the manual session, which now overlaps an open one) must vanish from the table.
    late = t0 - timedelta(minutes=30)
    late_id = uuid.UUID(int=(int(late.timestamp() * 1000) << 80) | (7 << 76) | (2 << 62) | 99)
    db_session.execute(
        insert(TapEvent),
        [
            {
                "event_id": late_id,
                "kiosk_id": kiosk.id,
                "centre_id": centre.id,
                "community_id": community.id,
                "seq": 3,
                "prev_hash": "0" * 64,
                "hash": "2" * 64,
                "credential_kind": "card",
                "credential_hash": "ab" * 32,
                "member_id": member.id,
                "direction": "in",
                "device_time": late,
                "device_tz": "Asia/Shanghai",
                "clock_offset_ms": 0,
                "effective_time": late,
                "received_at": now,
                "chain_ok": True,
            }
        ],
    )
    recompute_sessions(db_session, [member.id], now=now)
    db_session.commit()
    db_session.expire_all()
    rows = {r.key: r for r in db_session.scalars(select(ServiceSession))}
    assert set(rows) == {str(late_id), str(ev[1])}
    assert rows[str(late_id)].credited_minutes == 30 and rows[str(ev[1])].status == "open"
