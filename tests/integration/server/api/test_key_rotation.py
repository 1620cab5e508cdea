"""``POST /api/v1/kiosk/rotate-key``: a new secret; the old one survives a lost answer and then an overlap."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import server.api.auth as kiosk_auth
from protocol.messages import KeyRotationResponse
from protocol.signing import sign_request
from server.api.rotation import UNCONFIRMED_MAX
from server.models import AuditRecord, Kiosk, KioskCommand

from .conftest import health

ROTATE = "/api/v1/kiosk/rotate-key"
BEAT = "/api/v1/kiosk/heartbeat"
OVERLAP_S = 600  # the default: twice the 300 s skew window


class Clock:
    """Shifts the server's clock (the signature check and the rotation read ``auth._now``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = timedelta()
        real = kiosk_auth._now
        monkeypatch.setattr(kiosk_auth, "_now", lambda: real() + self.offset)

    def timestamp(self) -> int:
        return int(time.time() + self.offset.total_seconds())


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def call(client, kiosk_uid: str, secret: str, path: str, body: dict, clock: Clock):  # type: ignore[no-untyped-def]
    raw = json.dumps(body).encode()
    headers = sign_request(kiosk_uid, bytes.fromhex(secret), "POST", path, raw, timestamp=clock.timestamp())
    return client.post(path, data=raw, headers={**headers, "Content-Type": "application/json"})


def beat(client, kiosk_uid: str, secret: str, clock: Clock, results=()):  # type: ignore[no-untyped-def]
    body = {
        "device_time": datetime.now(UTC).isoformat(),
        "health": health(),
        "roster_cursor": None,
        "command_results": list(results),
    }
    return call(client, kiosk_uid, secret, BEAT, body, clock)


def rotate(client, kiosk_uid: str, secret: str, clock: Clock, **body):  # type: ignore[no-untyped-def]
    response = call(client, kiosk_uid, secret, ROTATE, body, clock)
    assert response.status_code == 200, response.get_data(as_text=True)
    return KeyRotationResponse.model_validate_json(response.get_data())


def test_old_secret_works_during_the_overlap_and_not_after(client, world, clock):
    uid, old = world.kiosk.kiosk_uid, world.kiosk.secret
    answer = rotate(client, uid, old, clock)
    new = answer.kiosk_secret
    assert new != old and answer.kiosk_id == uid and answer.overlap_s == OVERLAP_S

    assert beat(client, uid, old, clock).status_code == 200  # in flight: signed before the switch
    assert beat(client, uid, new, clock).status_code == 200  # first use of the new secret: overlap starts
    clock.offset = timedelta(seconds=OVERLAP_S - 30)
    assert beat(client, uid, old, clock).status_code == 200
    clock.offset = timedelta(seconds=OVERLAP_S + 30)
    late = beat(client, uid, old, clock)
    assert late.status_code == 401 and late.get_json()["code"] == "bad_signature"
    assert beat(client, uid, new, clock).status_code == 200


def test_an_unconfirmed_rotation_keeps_the_old_secret_so_a_lost_answer_locks_nobody_out(client, world, clock):
    uid, old = world.kiosk.kiosk_uid, world.kiosk.secret
    rotate(client, uid, old, clock)  # the answer is "lost": the kiosk never uses the new secret
    clock.offset = timedelta(days=2)
    assert beat(client, uid, old, clock).status_code == 200
    clock.offset = UNCONFIRMED_MAX + timedelta(minutes=1)
    assert beat(client, uid, old, clock).status_code == 401


def test_retry_after_a_lost_answer_replaces_the_unused_secret(client, world, clock, db_session):
    uid, old = world.kiosk.kiosk_uid, world.kiosk.secret
    lost = rotate(client, uid, old, clock).kiosk_secret
    retry = rotate(client, uid, old, clock).kiosk_secret  # still signed with the old secret
    assert retry not in (old, lost)
    refused = beat(client, uid, lost, clock)
    assert refused.status_code == 401  # the lost secret was never delivered: it is void
    assert beat(client, uid, retry, clock).status_code == 200
    # now confirmed: the old secret still verifies (overlap) but can no longer rotate
    assert beat(client, uid, old, clock).status_code == 200
    takeover = call(client, uid, old, ROTATE, {}, clock)
    assert takeover.status_code == 401 and takeover.get_json()["code"] == "superseded_secret"
    db_session.expire_all()
    kiosk = db_session.get(Kiosk, world.kiosk.id)
    assert kiosk.secret == retry and kiosk.previous_secret == old and kiosk.secret_confirmed_at is not None
    actions = db_session.scalars(
        select(AuditRecord).where(AuditRecord.object_type == "kiosk", AuditRecord.object_id == uid)
    ).all()
    assert [a.action for a in actions] == ["kiosk_secret_rotated", "kiosk_secret_rotated"]
    assert [a.after["retry_after_lost_answer"] for a in actions] == [False, True]
    assert all(old not in json.dumps(a.after) and retry not in json.dumps(a.after) for a in actions)


def test_rotate_key_command_round_trip(client, world, clock, db_session):
    """Admin queues ``rotate_key``; the heartbeat delivers it; the kiosk calls rotate-key with the command
    id; the result comes back signed with the new secret and closes the command."""
    db_session.add(KioskCommand(kiosk_id=world.kiosk.id, name="rotate_key", args={}))
    db_session.commit()
    uid, old = world.kiosk.kiosk_uid, world.kiosk.secret
    (command,) = beat(client, uid, old, clock).get_json()["commands"]
    assert command["name"] == "rotate_key"
    new = rotate(client, uid, old, clock, command_id=command["command_id"]).kiosk_secret
    result = {
        "command_id": command["command_id"],
        "name": "rotate_key",
        "ok": True,
        "detail": "rotated",
        "completed_at": datetime.now(UTC).isoformat(),
    }
    answer = beat(client, uid, new, clock, results=[result])
    assert answer.status_code == 200 and answer.get_json()["commands"] == []
    db_session.expire_all()
    row = db_session.scalars(select(KioskCommand)).one()
    assert row.status == "done"
    audit = db_session.scalars(select(AuditRecord).where(AuditRecord.action == "kiosk_secret_rotated")).one()
    assert audit.after["command_id"] == command["command_id"]


def test_rotation_needs_a_valid_signature(client, world, clock, db_session):
    forged = call(client, world.kiosk.kiosk_uid, "ab" * 32, ROTATE, {}, clock)
    assert forged.status_code == 401 and forged.get_json()["code"] == "bad_signature"
    malformed = call(client, world.kiosk.kiosk_uid, world.kiosk.secret, ROTATE, {"command_id": "nope"}, clock)
    assert malformed.status_code == 422
    db_session.expire_all()
    kiosk = db_session.get(Kiosk, world.kiosk.id)
    assert kiosk.secret == world.kiosk.secret and kiosk.previous_secret is None
