"""Event upload: idempotent, chain-checked, bulk, and feeding the session engine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from server.models import Kiosk, ServiceSession, TapEvent
from server.sessions.queue import drain_all
from tests.factories import make_kiosk, make_wire_events

PATH = "/api/v1/kiosk/events"


def _upload(signed, kiosk, events):  # type: ignore[no-untyped-def]
    response = signed.post(kiosk, PATH, {"events": events})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _stored(db_session) -> list[TapEvent]:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return list(db_session.scalars(select(TapEvent).order_by(TapEvent.seq)))


def _kiosk(db_session, kiosk) -> Kiosk:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return db_session.get(Kiosk, kiosk.id)


def test_upload_is_idempotent_and_stores_times(signed, world, db_session):
    start = datetime.now(UTC) - timedelta(hours=2)
    events = make_wire_events(
        10,
        member_id=world.member.id,
        credential_hash_hex=world.card.value_hash,
        start=start,
        clock_offset_ms=1500,
    )
    ack = _upload(signed, world.kiosk, events)
    assert len(ack["accepted"]) == 10 and ack["duplicates"] == []
    assert ack["chain"] == "ok" and ack["head_seq"] == 10 and ack["flags"] == []
    again = _upload(signed, world.kiosk, events)
    assert again["accepted"] == [] and sorted(again["duplicates"]) == sorted(e["event_id"] for e in events)
    rows = _stored(db_session)
    assert [r.seq for r in rows] == list(range(1, 11))
    first = rows[0]
    assert first.device_time == start
    assert first.effective_time == start + timedelta(milliseconds=1500)
    assert abs((first.received_at - datetime.now(UTC)).total_seconds()) < 120
    assert first.centre_id == world.centre.id and first.community_id == world.centre.community_id
    assert all(r.chain_ok for r in rows)
    kiosk = _kiosk(db_session, world.kiosk)
    assert (kiosk.last_seq, kiosk.last_hash, kiosk.chain_broken) == (10, events[-1]["hash"], False)


def test_partly_known_batch_stores_only_the_new_events(signed, world, db_session):
    events = make_wire_events(6, member_id=world.member.id)
    _upload(signed, world.kiosk, events[:4])
    ack = _upload(signed, world.kiosk, events[2:])
    assert ack["accepted"] == [e["event_id"] for e in events[4:]]
    assert ack["duplicates"] == [e["event_id"] for e in events[2:4]]
    assert ack["chain"] == "ok" and len(_stored(db_session)) == 6


def test_gap_is_flagged_stored_and_marks_the_kiosk(signed, world, db_session):
    events = make_wire_events(8)
    _upload(signed, world.kiosk, events[:3])
    ack = _upload(signed, world.kiosk, events[5:])  # seq 4 and 5 never arrive
    assert ack["chain"] == "gap"
    assert [(f["seq"], f["reason"]) for f in ack["flags"]] == [(6, "gap")]
    assert len(ack["accepted"]) == 3 and ack["head_seq"] == 8
    rows = {r.seq: r for r in _stored(db_session)}
    assert sorted(rows) == [1, 2, 3, 6, 7, 8]
    assert (rows[6].chain_ok, rows[6].flags) == (False, "gap")
    assert rows[7].chain_ok and rows[8].chain_ok  # re-anchored: one gap, one flag
    assert _kiosk(db_session, world.kiosk).chain_broken


def test_edited_event_is_stored_but_flagged_broken(signed, world, db_session):
    events = make_wire_events(4, member_id=world.member.id)
    events[1]["device_tz"] = "Europe/Paris"  # content changed after it was hashed
    ack = _upload(signed, world.kiosk, events)
    assert ack["chain"] == "broken"
    assert [(f["seq"], f["reason"]) for f in ack["flags"]] == [(2, "hash_mismatch")]
    rows = {r.seq: r for r in _stored(db_session)}
    assert len(rows) == 4 and not rows[2].chain_ok and rows[3].chain_ok
    assert _kiosk(db_session, world.kiosk).chain_broken


def test_history_edited_after_upload_is_flagged_not_overwritten(signed, world, db_session):
    events = make_wire_events(3, member_id=world.member.id)
    _upload(signed, world.kiosk, events)
    original_hash = events[1]["hash"]
    forged = dict(events[1], device_tz="Asia/Tokyo")
    from protocol.chain import compute_hash

    forged["hash"] = compute_hash(
        forged["prev_hash"], {**forged, "device_time": datetime.fromisoformat(forged["device_time"])}
    )
    ack = _upload(signed, world.kiosk, [forged])
    assert ack["duplicates"] == [forged["event_id"]] and ack["accepted"] == []
    assert ack["chain"] == "broken" and ack["flags"][0]["reason"] == "hash_mismatch"
    stored = {r.seq: r for r in _stored(db_session)}
    assert stored[2].hash == original_hash and stored[2].device_tz == "Asia/Shanghai"
    assert _kiosk(db_session, world.kiosk).chain_broken


def test_forked_history_for_a_taken_seq_is_refused_and_flagged(signed, world, db_session):
    events = make_wire_events(3)
    _upload(signed, world.kiosk, events)
    fork = make_wire_events(1, start_seq=2, prev_hash=events[0]["hash"])
    ack = _upload(signed, world.kiosk, fork)
    assert ack["accepted"] == [] and ack["duplicates"] == []
    assert ack["flags"][0]["reason"] == "seq_regression"
    assert len(_stored(db_session)) == 3


def test_events_another_kiosk_already_sent_are_not_stored_twice(signed, world, db_session):
    """A cloned outbox: a second kiosk uploads ids the first one sent. The batch continues the second
    kiosk's chain, so it is inserted as prepared, collides, and is rolled back and decided event by event
    within the same request (server.ingest.store_batch)."""
    clone = make_kiosk(db_session, world.centre)
    db_session.commit()
    events = make_wire_events(3, member_id=world.member.id)
    _upload(signed, world.kiosk, events)
    ack = _upload(signed, clone, events)
    assert ack["accepted"] == [] and sorted(ack["duplicates"]) == sorted(e["event_id"] for e in events)
    assert len(_stored(db_session)) == 3
    assert [r.kiosk_id for r in _stored(db_session)] == [world.kiosk.id] * 3
    again = _upload(signed, clone, make_wire_events(1, start_seq=1, member_id=world.member.id))
    assert len(again["accepted"]) == 1  # the rolled-back attempt left nothing in the way of the next upload


def test_unknown_member_is_kept_with_a_flag(signed, world, db_session):
    events = make_wire_events(1, member_id=987654)
    ack = _upload(signed, world.kiosk, events)
    assert len(ack["accepted"]) == 1
    (row,) = _stored(db_session)
    assert row.member_id is None and "unknown_member:987654" in row.flags


def test_sessions_are_updated_on_ingest(signed, world, db_session):
    start = datetime.now(UTC) - timedelta(hours=3)
    events = make_wire_events(2, member_id=world.member.id, start=start, step_s=90 * 60)
    _upload(signed, world.kiosk, events[:1])
    # Sessions are derived off the acknowledgement path: the upload queues the member, a drain applies it.
    assert db_session.scalars(select(ServiceSession)).all() == []
    assert drain_all(db_session) == 1
    db_session.expire_all()
    (open_session,) = db_session.scalars(select(ServiceSession)).all()
    assert open_session.status == "open" and open_session.ended_at is None
    _upload(signed, world.kiosk, events[1:])
    assert drain_all(db_session) == 1
    db_session.expire_all()
    (closed,) = db_session.scalars(select(ServiceSession)).all()
    assert closed.key == events[0]["event_id"] and closed.status == "closed"
    assert closed.credited_minutes == 90 and closed.member_id == world.member.id
    assert str(closed.check_out_event_id) == events[1]["event_id"]


def test_malformed_and_oversized_requests_are_refused_and_server_keeps_serving(signed, world, db_session):
    bad = signed.post(world.kiosk, PATH, b'{"events": [ {"seq": "one"')
    assert bad.status_code == 422 and bad.get_json()["code"] == "validation_error"
    wrong = signed.post(world.kiosk, PATH, {"events": [{"seq": 1}]})
    assert wrong.status_code == 422 and wrong.get_json()["details"]
    huge = signed.post(world.kiosk, PATH, b'{"events": [' + b" " * (1024 * 1024 + 10) + b"]}")
    assert huge.status_code == 413 and huge.get_json()["code"] == "request_entity_too_large"
    too_many = make_wire_events(501)
    assert signed.post(world.kiosk, PATH, {"events": too_many}).status_code in (413, 422)
    assert db_session.scalar(select(func.count()).select_from(TapEvent)) == 0
    ok = _upload(signed, world.kiosk, make_wire_events(2))
    assert len(ok["accepted"]) == 2
    assert json.loads(json.dumps(ok))["chain"] == "ok"


def test_kiosk_revoked_after_its_signature_was_checked_is_refused_when_the_nonce_is_recorded(
    app, world, db_session
):
    """The SQLite upload checks the signature before taking the write lock and records the nonce inside
    it; a revocation committed in between must still refuse the request (``recheck_status``)."""
    from sqlalchemy import update

    from server.api.auth import check_signature, record_request
    from server.api.errors import ApiError
    from server.db import get_db
    from tests.factories import signed_headers

    raw = json.dumps({"events": make_wire_events(1)}).encode()
    with app.test_request_context(
        PATH, method="POST", data=raw, headers=signed_headers(world.kiosk, "POST", PATH, raw)
    ):
        db = get_db(app).session
        signed = check_signature(db)
        db_session.execute(update(Kiosk).where(Kiosk.id == world.kiosk.id).values(status="revoked"))
        db_session.commit()
        with pytest.raises(ApiError) as refused:
            record_request(db, signed, recheck_status=True)
        assert (refused.value.status, refused.value.code) == (403, "revoked_kiosk")
        db.rollback()


def _rechain(events: list[dict], prev_hash: str = "0" * 64) -> list[dict]:  # type: ignore[type-arg]
    """Hash ``events`` again after a test changed their fields, as the kiosk would have hashed them."""
    from protocol.chain import compute_hash

    for event in events:
        event["prev_hash"] = prev_hash
        at = datetime.fromisoformat(event["device_time"])
        event["hash"] = prev_hash = compute_hash(prev_hash, {**event, "device_time": at})
    return events


def test_a_drifting_or_jumping_kiosk_clock_flags_the_tap(signed, world, db_session):
    """``clock_drift``: the measured offset beyond ``CLOCK_DRIFT_BOUND_S`` (120 s); ``clock_jump``: the offset
    moved by more than that since the kiosk's previous tap — in the batch, or the last batch's head."""
    events = make_wire_events(3, member_id=world.member.id, clock_offset_ms=1_000)
    events[1]["clock_offset_ms"] = 122_000  # beyond the bound, and 121 s from the previous tap
    events[2]["clock_offset_ms"] = 119_000  # within the bound, 3 s from the previous tap
    _upload(signed, world.kiosk, _rechain(events))
    later = make_wire_events(
        1, start_seq=4, prev_hash=events[-1]["hash"], member_id=world.member.id, clock_offset_ms=-2_000
    )  # 121 s from the previous batch's last tap
    ack = _upload(signed, world.kiosk, later)
    assert ack["chain"] == "ok" and ack["flags"] == []  # clock flags are the taps', not the chain's
    flags = {r.seq: r.flags for r in _stored(db_session)}
    assert flags == {1: None, 2: "clock_drift,clock_jump", 3: None, 4: "clock_jump"}
    assert _kiosk(db_session, world.kiosk).last_tap_offset_ms == -2_000


def test_the_clock_drift_bound_is_configuration(app, signed, world, db_session):
    app.config["CLOCK_DRIFT_BOUND_S"] = 10
    events = make_wire_events(2, member_id=world.member.id, clock_offset_ms=-11_000)
    _upload(signed, world.kiosk, events)
    assert [r.flags for r in _stored(db_session)] == ["clock_drift", "clock_drift"]


def test_a_chain_break_flags_the_breaking_tap_for_review(signed, world, db_session):
    events = make_wire_events(4, member_id=world.member.id)
    _upload(signed, world.kiosk, events[:1])
    _upload(signed, world.kiosk, events[2:])  # seq 2 never arrives
    rows = {r.seq: r for r in _stored(db_session)}
    assert (rows[3].chain_ok, rows[3].flags) == (False, "gap") and rows[4].flags is None


def test_a_member_outside_the_roster_is_credited_and_flagged(signed, world, db_session):
    """A tap the kiosk credited to a member its roster does not carry (another community, a unit not
    paired with it) stays the member's, flagged ``outside_roster``; a paired unit's member is in scope."""
    from server.models import UnitCommunity
    from tests.factories import make_member, make_unit

    outsider = make_member(db_session)  # its own community and unit
    paired_unit = make_unit(db_session)
    paired = make_member(db_session, unit=paired_unit)
    db_session.add(UnitCommunity(unit_id=paired_unit.id, community_id=world.centre.community_id))
    db_session.commit()
    first = make_wire_events(1, member_id=outsider.id)
    second = make_wire_events(1, start_seq=2, prev_hash=first[0]["hash"], member_id=paired.id)
    _upload(signed, world.kiosk, first + second)
    rows = _stored(db_session)
    assert [(r.member_id, r.flags) for r in rows] == [(outsider.id, "outside_roster"), (paired.id, None)]


def test_a_credential_the_kiosk_did_not_know_is_resolved_to_its_member(signed, world, db_session):
    """The kiosk records an unknown card (direction ``unknown``, no member); the server knows every
    credential: the taps are the member's (``resolved_member_id``), flagged ``outside_roster``, and form
    the member's session; the stored chain still verifies, since the kiosk's fields are untouched."""
    from tests.factories import make_card, make_member

    visitor = make_member(db_session)  # reports to another community
    card, _ = make_card(db_session, visitor)
    db_session.commit()
    start = datetime.now(UTC) - timedelta(hours=3)
    events = make_wire_events(2, credential_hash_hex=card.value_hash, start=start, step_s=45 * 60)
    unbound = make_wire_events(1, start_seq=3, prev_hash=events[-1]["hash"])  # a card nobody holds
    _upload(signed, world.kiosk, events + unbound)
    rows = _stored(db_session)
    assert [(r.member_id, r.resolved_member_id, r.direction, r.flags) for r in rows] == [
        (None, visitor.id, "unknown", "outside_roster"),  # the kiosk's fields as recorded (and hashed)
        (None, visitor.id, "unknown", "outside_roster"),
        (None, None, "unknown", None),
    ]
    assert drain_all(db_session) == 1
    db_session.expire_all()
    (session,) = db_session.scalars(select(ServiceSession)).all()
    assert (session.member_id, session.centre_id) == (visitor.id, world.centre.id)
    assert (session.status, session.credited_minutes) == ("closed", 45)
    from protocol.chain import verify_chain

    stored = [
        {c: getattr(r, c) for c in ("event_id", "seq", "prev_hash", "hash", "credential_kind", "credential_hash",
                                    "qr_step", "badge_serial", "member_id", "direction", "device_time",
                                    "device_tz", "clock_offset_ms", "trust", "reason")}
        for r in rows
    ]  # fmt: skip
    assert verify_chain(stored).ok
