"""Replay detection on ingest: the same phone code from two kiosks, the same badge at two places at once.

``flag_qr_replays`` is tested directly with the ingest's row dicts (the ingest's one-line hook is listed in
docs/readme-qr.md); flags are set on the rows before they are inserted, as append-only events require.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from protocol.flags import TapFlag
from protocol.hashing import credential_hash
from server.models import utcnow
from server.qr.replay import flag_qr_replays, replays
from tests.factories import TEST_CREDENTIAL_KEY, make_kiosk

PHONE_HASH = credential_hash(TEST_CREDENTIAL_KEY, "qr", "phone:17")
BADGE_HASH = credential_hash(TEST_CREDENTIAL_KEY, "qr", "badge:AB12CD")


def row(at, *, step=None, serial=None, chash=PHONE_HASH, kind="qr", flags=None):  # type: ignore[no-untyped-def]
    return {
        "event_id": uuid.uuid4(),
        "credential_kind": kind,
        "credential_hash": chash,
        "qr_step": step,
        "badge_serial": serial,
        "effective_time": at,
        "device_time": at,
        "flags": flags,
    }


def test_same_phone_code_from_a_second_kiosk_is_flagged(db_session):  # type: ignore[no-untyped-def]
    a, b = make_kiosk(db_session), make_kiosk(db_session)
    now = utcnow()
    first = row(now, step=100)
    assert flag_qr_replays(db_session, a.id, [first]) == 0
    assert first["flags"] is None
    second = row(now + timedelta(seconds=20), step=100, flags="clock_drift")
    other_step = row(now + timedelta(seconds=20), step=101)
    card = row(now, kind="card", chash="ab" * 32)
    assert flag_qr_replays(db_session, b.id, [second, other_step, card]) == 1
    assert second["flags"] == f"clock_drift,{TapFlag.QR_REPLAYED}"
    assert other_step["flags"] is None and card["flags"] is None
    db_session.commit()
    [use] = replays(db_session)
    assert use.event_id == second["event_id"] and use.replay_of == first["event_id"]


def test_same_kiosk_twice_is_not_a_cross_kiosk_replay(db_session):  # type: ignore[no-untyped-def]
    a = make_kiosk(db_session)
    now = utcnow()
    flag_qr_replays(db_session, a.id, [row(now, step=5)])
    again = row(now, step=5)
    assert flag_qr_replays(db_session, a.id, [again]) == 0 and again["flags"] is None


def test_replay_uploaded_days_later_is_still_caught(db_session):  # type: ignore[no-untyped-def]
    a, b = make_kiosk(db_session), make_kiosk(db_session)
    now = utcnow()
    flag_qr_replays(db_session, a.id, [row(now, step=7)])
    late = row(now + timedelta(days=3), step=7)  # kiosk B was offline for days
    assert flag_qr_replays(db_session, b.id, [late]) == 1


def test_badge_at_two_kiosks_within_minutes_is_flagged_but_not_hours_apart(db_session):  # type: ignore[no-untyped-def]
    a, b = make_kiosk(db_session), make_kiosk(db_session)
    now = utcnow()
    flag_qr_replays(db_session, a.id, [row(now, serial="AB12CD", chash=BADGE_HASH)])
    soon = row(now + timedelta(minutes=3), serial="AB12CD", chash=BADGE_HASH)
    later = row(now + timedelta(hours=3), serial="AB12CD", chash=BADGE_HASH)
    assert flag_qr_replays(db_session, b.id, [soon]) == 1 and soon["flags"] == TapFlag.BADGE_ELSEWHERE
    assert flag_qr_replays(db_session, b.id, [later]) == 0 and later["flags"] is None
