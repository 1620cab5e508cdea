"""Constraints live in the database: each test makes the database itself refuse bad data, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from server.models import Correction, Credential, Member, ServiceSession, TapEvent, User
from tests.factories import (
    make_card,
    make_centre,
    make_community,
    make_kiosk,
    make_member,
    make_unit,
    make_user,
    utc,
)


def _tap(kiosk, seq: int, **kw) -> TapEvent:  # type: ignore[no-untyped-def]
    fields = dict(
        event_id=uuid.uuid4(),
        kiosk_id=kiosk.id,
        centre_id=kiosk.centre_id,
        community_id=kiosk.community_id,
        seq=seq,
        prev_hash="0" * 64,
        hash="1" * 64,
        credential_kind="card",
        credential_hash="a" * 64,
        direction="in",
        device_time=utc(2026, 3, 1, 1),
        device_tz="Asia/Shanghai",
        effective_time=utc(2026, 3, 1, 1),
    )
    return TapEvent(**{**fields, **kw})


def test_event_ids_and_kiosk_sequence_are_unique(db_session):
    kiosk = make_kiosk(db_session)
    first = _tap(kiosk, 1)
    db_session.add(first)
    db_session.commit()
    db_session.expunge_all()  # so the database, not the identity map, sees the duplicate
    db_session.add(_tap(kiosk, 2, event_id=first.event_id))
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()
    db_session.add(_tap(kiosk, 1))
    with pytest.raises(IntegrityError):
        db_session.commit()


def test_only_one_active_credential_per_value_but_revoked_history_is_kept(db_session):
    member_a = make_member(db_session)
    member_b = make_member(db_session)
    cred, uid = make_card(db_session, member_a)
    db_session.commit()
    with pytest.raises(IntegrityError):
        make_card(db_session, member_b, uid=uid)
    db_session.rollback()
    cred = db_session.get(Credential, cred.id)
    cred.status, cred.revoked_at, cred.revoked_reason = "revoked", datetime.now(UTC), "lost"
    db_session.commit()
    make_card(db_session, member_b, uid=uid)  # the same card may now be bound again
    db_session.commit()
    rows = db_session.scalars(sa.select(Credential).where(Credential.value_hash == cred.value_hash)).all()
    assert sorted(r.status for r in rows) == ["active", "revoked"]


def test_revocation_must_be_consistent(db_session):
    member = make_member(db_session)
    with pytest.raises(IntegrityError):
        make_card(db_session, member, status="revoked")  # revoked without a revoked_at


def test_foreign_keys_are_enforced(db_session):
    community = make_community(db_session)
    db_session.add(Member(member_no="X1", name="李*", unit_id=999_999, community_id=community.id))
    with pytest.raises(IntegrityError):
        db_session.commit()


@pytest.mark.parametrize("status", ["OPEN", "done", ""])
def test_session_status_is_checked(db_session, status):
    member = make_member(db_session)
    centre = make_centre(db_session)
    db_session.add(
        ServiceSession(
            key=str(uuid.uuid4()),
            member_id=member.id,
            unit_id=member.unit_id,
            centre_id=centre.id,
            community_id=centre.community_id,
            started_at=utc(2026, 1, 1),
            status=status,
        )
    )
    with pytest.raises(IntegrityError):
        db_session.commit()


def test_credited_minutes_never_negative_and_sessions_end_after_start(db_session):
    member = make_member(db_session)
    centre = make_centre(db_session)
    base = dict(
        member_id=member.id,
        unit_id=member.unit_id,
        centre_id=centre.id,
        community_id=centre.community_id,
        status="closed",
    )
    db_session.add(ServiceSession(key="a", started_at=utc(2026, 1, 1), credited_minutes=-1, **base))
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()
    db_session.add(ServiceSession(key="b", started_at=utc(2026, 1, 1), ended_at=utc(2025, 12, 31), **base))
    with pytest.raises(IntegrityError):
        db_session.commit()


@pytest.mark.parametrize(
    ("role", "scope"),
    [("community_staff", {}), ("unit_secretary", {}), ("admin", {"community": True}), ("superuser", {})],
)
def test_user_role_and_scope_must_match(db_session, role, scope):
    community = make_community(db_session)
    extra = {"community_id": community.id} if scope.get("community") else {}
    with pytest.raises(IntegrityError):
        make_user(db_session, role=role, **extra)


def test_tap_events_are_append_only_in_the_database(db_session):
    kiosk = make_kiosk(db_session)
    db_session.add(_tap(kiosk, 1))
    db_session.commit()
    for statement in (sa.update(TapEvent).values(direction="out"), sa.delete(TapEvent)):
        with pytest.raises(DBAPIError, match="append-only"):
            db_session.execute(statement)
        db_session.rollback()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(TapEvent)) == 1


def test_corrections_are_append_only_and_need_a_reason(db_session):
    member = make_member(db_session)
    centre = make_centre(db_session)
    user = make_user(db_session)
    db_session.commit()
    fields = dict(
        member_id=member.id,
        centre_id=centre.id,
        community_id=centre.community_id,
        action="approve",
        user_id=user.id,
        session_key="k",
    )
    db_session.add(Correction(reason="", **fields))
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()
    db_session.add(Correction(reason="paper sign-in sheet checked / 核对纸质签到表", **fields))
    db_session.commit()
    with pytest.raises(DBAPIError, match="append-only"):
        db_session.execute(sa.update(Correction).values(reason="changed my mind"))
    db_session.rollback()


def test_times_are_stored_utc_and_come_back_aware(db_session):
    kiosk = make_kiosk(db_session)
    local = datetime(2026, 3, 1, 8, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    event = _tap(kiosk, 1, device_time=local, effective_time=local + timedelta(seconds=2))
    db_session.add(event)
    db_session.commit()
    db_session.expunge_all()
    stored = db_session.get(TapEvent, event.event_id)
    assert stored.device_time == utc(2026, 3, 1, 0, 30)
    assert stored.device_time.tzinfo is not None and stored.device_time.utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="naive"):
        db_session.add(_tap(kiosk, 2, device_time=datetime(2026, 3, 1, 8, 30)))
        db_session.commit()
    db_session.rollback()


def test_unit_pairing_is_unique(db_session):
    community = make_community(db_session)
    unit = make_unit(db_session, community)
    from server.models import UnitCommunity

    db_session.add(UnitCommunity(unit_id=unit.id, community_id=community.id))
    with pytest.raises(IntegrityError):
        db_session.commit()


def test_admin_user_without_scope_is_accepted(db_session):
    user = make_user(db_session, role="auditor")
    db_session.commit()
    assert db_session.get(User, user.id).role == "auditor"
